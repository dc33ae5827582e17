"""benchmarks/summarise_rules.py: per-rule / per-method / per-stage sums of Snakemake benchmark files."""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from summarise_rules import compare, job_key, main, summarise  # noqa: E402

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(root, rel, s, cpu, rss=100.0):
    f = root / rel
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(HEADER + f"{s}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t90\t{cpu}\n")


@pytest.fixture
def bench(tmp_path):
    root = tmp_path / "benchmarks"
    _bench(root, "compress/fmnist_edges2shoes/omgd-vem-lam1-seed0.tsv", 60.0, 58.0)
    _bench(root, "compress/fmnist_edges2shoes/omgd-none-lam0-seed1.tsv", 40.0, 39.0)
    _bench(root, "compress/fmnist_sneaker2boot/gan_compression-crd-lam1-seed0.tsv", 7.0, 6.5)
    _bench(root, "method_stage/fmnist_uncond/gcc/vem-lam1-seed0/distill.tsv", 300.0, 290.0, rss=1800.0)
    _bench(root, "method_stage/fmnist_uncond/gcc/shared-seed0/prune.tsv", 5.0, 4.0)
    _bench(root, "method_stage/fmnist_sneaker2boot/gan_compression/none-lam0-seed0/supernet.tsv", 50.0, 49.0)
    _bench(root, "tune/omgd.tsv", 2.0, 1.5)
    _bench(root, "prepare_data/fmnist_uncond.tsv", 3.0, 2.0)
    return root


def test_groups_by_rule_method_and_stage(bench):
    rule, totals = summarise(bench)
    assert rule.loc["compress", "count"] == 3 and rule.loc["compress", "sum"] == 107.0
    assert rule.loc["method_stage", "sum"] == 355.0 and rule.loc["method_stage", "max"] == 300.0
    assert rule.loc["compress", "cpu_sum"] == 103.5
    assert list(rule.index[:2]) == ["method_stage", "compress"]                        # largest sum first
    assert totals == {"jobs": 8, "wall_s": 467.0, "cpu_s": 450.0, "peak_rss_mb": 1800.0}

    method, _ = summarise(bench, "method")
    assert method.loc["compress/omgd", "sum"] == 100.0 and method.loc["compress/omgd", "mean"] == 50.0
    assert method.loc["compress/gan_compression", "sum"] == 7.0
    assert method.loc["method_stage/gcc", "sum"] == 305.0
    assert method.loc["tune/omgd", "sum"] == 2.0 and method.loc["prepare_data", "sum"] == 3.0

    stage, _ = summarise(bench, "stage")
    assert stage.loc["method_stage/gcc/distill", "sum"] == 300.0
    assert stage.loc["method_stage/gcc/prune", "sum"] == 5.0
    assert stage.loc["method_stage/gan_compression/supernet", "count"] == 1
    assert stage.loc["compress/omgd", "count"] == 2                       # only method_stage splits by stage


def test_job_key_and_errors(tmp_path, bench, capsys):
    assert job_key(Path("render_table/4.tsv"), "stage") == "render_table"
    assert job_key(Path("evaluate_run/t/cagc-none-lam0-seed2.tsv"), "method") == "evaluate_run/cagc"
    with pytest.raises(ValueError, match="'rules'"):
        summarise(bench, "rules")
    with pytest.raises(SystemExit, match="no benchmark files"):
        summarise(tmp_path / "nothing")
    main([str(bench), "--by", "stage"])
    out = capsys.readouterr().out
    assert re.search(r"^\| method_stage/gcc/distill +\| +1 \| +300 \|", out, re.M)
    assert "8 jobs; 467 core-seconds" in out


def test_before_and_after_pairs_the_same_jobs(tmp_path, bench, capsys):
    after = tmp_path / "after"
    _bench(after, "compress/fmnist_edges2shoes/omgd-vem-lam1-seed0.tsv", 45.0, 44.0)
    _bench(after, "compress/fmnist_edges2shoes/omgd-none-lam0-seed1.tsv", 35.0, 34.0)
    _bench(after, "prepare_data/fmnist_uncond.tsv", 1.5, 1.0)
    _bench(after, "figure/fig2.tsv", 4.0, 3.0)                          # a job the before run lacks
    table, totals = compare(bench, after)
    assert list(table.index) == ["compress", "prepare_data"]             # only jobs both runs have
    assert table.loc["compress", "count"] == 2
    assert table.loc["compress", "before"] == 100.0 and table.loc["compress", "after"] == 80.0
    assert table.loc["compress", "change_%"] == -20.0 and table.loc["prepare_data", "change_%"] == -50.0
    assert totals == {"paired": 3, "before_s": 103.0, "after_s": 81.5, "only_before": 5, "only_after": 1}
    method, _ = compare(bench, after, "method")
    assert method.loc["compress/omgd", "after"] == 80.0
    main([str(after), "--before", str(bench)])
    out = capsys.readouterr().out
    assert "3 jobs in both runs: 103 -> 82 core-seconds (-20.9 %); 5 jobs only before, 1 only after" in out
    with pytest.raises(SystemExit, match="no job has a benchmark file under both"):
        compare(bench, tmp_path / "after" / "figure")

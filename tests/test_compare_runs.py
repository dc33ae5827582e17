"""scripts/compare_runs.py: the local-vs-SLURM check (full and --subset)."""

import json
import subprocess
import sys

from .conftest import ROOT

SCRIPT = str(ROOT / "scripts" / "compare_runs.py")


def _run_dir(d, runs, tables, fd=1.25, latency=2.0):
    for rel in runs:
        p = d / "results" / "runs" / rel / "metrics.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"metric": {"fd": fd}, "seed": 0, "config_hash": "abc", "seconds": 3.0}))
    for t in tables:
        (d / "results" / f"table{t}.csv").write_text(
            f"task,fd,latency_ms,speedup\nx,{fd},{latency},x{latency:.2f} (MACs x3.0)\n")
    return d


def _compare(*args):
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True)


def test_identical_runs_pass_and_a_changed_metric_is_named(tmp_path):
    a = _run_dir(tmp_path / "a", ["t/omgd/vem/seed0", "t/omgd/none/seed0"], [1, 4])
    b = _run_dir(tmp_path / "b", ["t/omgd/vem/seed0", "t/omgd/none/seed0"], [1, 4])
    r = _compare(a, b)
    assert r.returncode == 0 and "2 metrics files and the tables identical" in r.stdout
    _run_dir(b, ["t/omgd/vem/seed0"], [1, 4], latency=2.5)      # measured latency differs between any two runs
    assert _compare(a, b).returncode == 0
    _run_dir(b, ["t/omgd/vem/seed0"], [], fd=1.5)
    r = _compare(a, b)
    assert r.returncode == 1 and "t/omgd/vem/seed0/metrics.json: metric differs" in r.stdout
    _run_dir(b, ["t/omgd/vem/seed0"], [4], fd=1.5)
    r = _compare(a, b)
    assert "table table4.csv differs" in r.stdout and "table1.csv" not in r.stdout


def test_subset_needs_only_what_b_built(tmp_path):
    a = _run_dir(tmp_path / "a", ["t/omgd/vem/seed0", "t/omgd/none/seed0"], [1, 4])
    b = _run_dir(tmp_path / "b", ["t/omgd/vem/seed0"], [1])
    assert _compare(a, b).returncode == 1                        # a full comparison sees what B lacks
    r = _compare("--subset", a, b)
    assert r.returncode == 0 and "1 metrics files" in r.stdout
    _run_dir(b, ["t/omgd/crd/seed0"], [])                        # B may not have what A lacks
    r = _compare("--subset", a, b)
    assert r.returncode == 1 and "only in B" in r.stdout and "crd" in r.stdout
    empty = tmp_path / "empty"
    (empty / "results").mkdir(parents=True)
    r = _compare("--subset", a, empty)
    assert r.returncode == 1 and "no results/**/metrics.json" in r.stdout

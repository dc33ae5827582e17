"""Paper tables rendered from synthetic metrics.json records with chosen values.

Expected numbers come from numpy (mean, std with ddof 1) and a Welch t-test written out here; the
expected layout (row order, which rows each table keeps, which paper rows may appear) follows the
paper's tables and the harness's rule "only configured methods/add-ons appear".
"""

from __future__ import annotations

import json
import math
import os
import re
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from vem.stats import min_detectable_effect  # noqa: E402
from vem.tables import load_metrics, render, summarise  # noqa: E402

PAPER_BLOCK = "paper (real datasets, Inception FID / DRN-D-105 mIoU; NOT comparable with the rows above)"
TASKS = {  # task -> (paper task, metric name, higher is better)
    "fmnist_sneaker2boot": ("horse2zebra", "FD-FMNIST", False),
    "fmnist_scenes": ("cityscapes", "mIoU-FMNIST-scenes", True),
}


def write_record(root, task, method, addon, seed, value, lambda_mi=None, macs=1.23e6, params=4567):
    """A record shaped like the one ``vem evaluate`` writes (vem/cli.py cmd_evaluate)."""
    paper_task, metric, hib = TASKS[task]
    lam = None if addon == "none" else (0.1 if lambda_mi is None else lambda_mi)
    rec = {
        "schema": "vem-metrics/1", "task": task, "scale": "mini", "paper_task": paper_task, "method": method,
        "addon": addon, "lambda_mi": lam, "seed": seed, "config_hash": "0" * 16, "train_seconds": 1.0,
        "versions": {}, "metric": {"name": metric, "value": value, "higher_is_better": hib},
        "cost": {"macs": macs, "params": params, "input": [1, 1, 32, 32]},
        "protocol": {"checkpoint_selection": "final iteration (no selection on test)", "eval_split": "test"},
        "eval_seconds": 0.1,
    }
    d = root / task / f"{method}_{addon}_{lam}" / f"seed{seed}"
    d.mkdir(parents=True, exist_ok=True)
    p = d / "metrics.json"
    p.write_text(json.dumps(rec))
    return p


# chosen FD values (lower is better): VEM clearly better, VID overlapping, CRD clearly worse
S2B = {("original", "none"): [5.0, 6.0, 7.5], ("omgd", "none"): [20.0, 21.0, 22.0],
       ("omgd", "vid"): [19.0, 21.5, 23.0], ("omgd", "crd"): [30.0, 31.0, 33.0],
       ("omgd", "vem"): [10.0, 11.0, 12.0]}


@pytest.fixture
def s2b_metrics(tmp_path):
    paths = []
    # written in scrambled order: the table must sort
    for (method, addon) in [("omgd", "vem"), ("omgd", "crd"), ("original", "none"), ("omgd", "vid"),
                            ("omgd", "none")]:
        for seed, v in enumerate(S2B[(method, addon)]):
            paths.append(write_record(tmp_path / "results", "fmnist_sneaker2boot", method, addon, seed, v,
                                      macs=56e6 if method == "original" else 1.23e6))
    return paths


def welch_p(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return 2 * stats.t.sf(abs(t), df)


def measured(df):
    return df[df["block"].str.startswith("measured")].reset_index(drop=True)


def paper(df):
    return df[df["block"] == PAPER_BLOCK].reset_index(drop=True)


def test_table4_stats_order_and_verdicts(tmp_path, s2b_metrics):
    out = tmp_path / "tables" / "table4.csv"
    written = render(4, s2b_metrics, out)
    assert written == [str(out), str(out.with_suffix(".md")), str(out.with_suffix(".tex"))]
    df = pd.read_csv(out)
    m = measured(df)
    assert m["method"].tolist() == ["OMGD", "OMGD + VID", "OMGD + CRD", "OMGD + VEM"]
    assert (m["block"] == "measured (mini scale)").all()
    for _, r in m.iterrows():
        addon = {"OMGD": "none", "OMGD + VID": "vid", "OMGD + CRD": "crd", "OMGD + VEM": "vem"}[r["method"]]
        vals = np.array(S2B[("omgd", addon)])
        assert r["mean"] == pytest.approx(vals.mean(), rel=1e-12)
        assert r["std"] == pytest.approx(vals.std(ddof=1), rel=1e-12)
        assert r["n"] == 3 and r["seeds"] == "0 1 2"
        assert r["value"] == f"{vals.mean():.3f} ± {vals.std(ddof=1):.3f} (n=3)"
        assert r["MACs"] == "1.23M" and r["params"] == "4.57k"
        assert "lower is better" in r["metric"]
        if addon != "none":
            base = np.array(S2B[("omgd", "none")])
            assert r["delta_vs_method"] == pytest.approx(vals.mean() - base.mean())
            assert r["p_value"] == pytest.approx(welch_p(vals, base), rel=1e-6)
            # the paired effect and its 95 % interval are scipy's paired t over the matching seeds
            ref = stats.ttest_rel(vals, base)
            ci = ref.confidence_interval(0.95)
            assert (r["delta_ci_low"], r["delta_ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
            assert r["p_paired"] == pytest.approx(ref.pvalue, rel=1e-9)
            assert r["delta_pct"] == pytest.approx(100 * (vals - base).mean() / base.mean())
            sd = (vals - base).std(ddof=1)
            assert r["mde80"] == pytest.approx(min_detectable_effect(sd, 3))   # tested against simulation
            assert r["mde80_pct"] == pytest.approx(100 * r["mde80"] / base.mean())
            assert f"{r['delta_paired']:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]" in r["effect"]
    verdict = dict(zip(m["method"], m["verdict"].fillna("")))
    assert verdict["OMGD"] == ""
    assert verdict["OMGD + VEM"].startswith("better than OMGD (p=")
    assert verdict["OMGD + VID"].startswith("no significant difference")
    assert verdict["OMGD + CRD"].startswith("worse than OMGD (p=")
    # paper block: only the measured method/add-ons on the measured paper task, labelled not comparable
    p = paper(df)
    assert len(p) == 4
    assert p["task"].unique().tolist() == ["horse2zebra"]
    assert p["method"].tolist() == ["OMGD", "OMGD + VID", "OMGD + CRD", "OMGD + VEM"]
    assert p["mean"].tolist() == [57.14, 65.73, 70.59, 50.83]
    assert len(df) == len(m) + len(p)
    md = out.with_suffix(".md").read_text()
    assert md.startswith("# Table 4")
    assert "## Measured here" in md and "## Published in the paper" in md
    assert "OMGD + CRD" in md and "CAT" not in md and "GAN-Compression" not in md
    assert not [f for f in os.listdir(out.parent) if f.endswith(".tmp")]
    tex = out.with_suffix(".tex").read_text()
    blocks = tex.split("\\begin{table}")
    assert len(blocks) == 3 and "not comparable" in blocks[2] and "not comparable" not in blocks[1]
    assert "\\toprule" in tex and "fmnist\\_sneaker2boot" in tex
    assert "OMGD & 1.23M & FD-FMNIST (lower is better) & $21.000 \\pm 1.000$" in blocks[1]
    # the best compressed model of the task (lowest FD: OMGD + VEM, 11.000) in bold, nothing else
    assert blocks[1].count("\\mathbf") == 1 and "$\\mathbf{11.000 \\pm 1.000}$" in blocks[1]
    assert "$-10.000$ $[-10.000, -10.000]$" in blocks[1]


def test_table2_paper_layout(tmp_path, s2b_metrics):
    out = tmp_path / "table2.csv"
    render(2, s2b_metrics, out)
    df = pd.read_csv(out)
    m = measured(df)
    # the paper's table 2 has Original, OMGD, OMGD + VEM only (no VID/CRD rows)
    assert m["method"].tolist() == ["Original", "OMGD", "OMGD + VEM"]
    orig = np.array(S2B[("original", "none")])
    assert m.loc[0, "mean"] == pytest.approx(orig.mean()) and m.loc[0, "std"] == pytest.approx(orig.std(ddof=1))
    assert m.loc[0, "MACs"] == "56.00M"
    assert pd.isna(m.loc[0, "verdict"])  # Original is never tested against itself
    p = paper(df)
    # horse2zebra only (summer2winter not measured), and no DMAD/GCC/CAT/... rows: only omgd was run
    assert p["task"].unique().tolist() == ["horse2zebra"]
    assert p["method"].tolist() == ["Original", "OMGD", "OMGD + VEM"]
    assert p["mean"].tolist() == [61.53, 57.14, 50.83]
    for name in ("DMAD", "GCC", "CAT", "Co-Evolution", "GAN-Compression"):
        assert not df["method"].str.startswith(name).any()
    md = out.with_suffix(".md").read_text()
    assert "## Measured here" in md and "## Published in the paper" in md
    assert "not comparable" in md


def test_table_with_one_seed_has_no_test(tmp_path):
    paths = [write_record(tmp_path, "fmnist_sneaker2boot", "omgd", a, 0, v) for a, v in (("none", 3.0), ("vem", 2.0))]
    render(4, paths, tmp_path / "t.csv")
    m = measured(pd.read_csv(tmp_path / "t.csv"))
    assert m["value"].tolist() == ["3.000 (n=1)", "2.000 (n=1)"]
    assert m.loc[1, "verdict"] == "n < 2 seeds: no test"
    assert pd.isna(m.loc[0, "std"])


def test_a_scored_subset_of_the_test_inputs_is_said_in_the_table(tmp_path):
    paths = [write_record(tmp_path, "fmnist_sneaker2boot", "omgd", a, 0, v) for a, v in (("none", 3.0), ("vem", 2.0))]
    rec = json.loads(paths[1].read_text())
    rec["protocol"]["subset"] = "the first 300 of 1000 test inputs (eval.test_images): not the protocol"
    paths[1].write_text(json.dumps(rec))
    render(4, paths, tmp_path / "t.csv")
    m = measured(pd.read_csv(tmp_path / "t.csv"))
    assert m.loc[0, "checkpoint"] == "final iteration (no selection on test)"
    assert m.loc[1, "checkpoint"] == ("final iteration (no selection on test); the first 300 of 1000 test inputs "
                                      "(eval.test_images): not the protocol")
    md = (tmp_path / "t.md").read_text()          # the Markdown twin says the scale, the subset and the seeds
    assert "## Measured here: measured (mini scale)" in md
    row = next(ln for ln in md.splitlines() if "OMGD + VEM" in ln)
    assert "the first 300 of 1000 test inputs" in row and re.search(r"\|\s+0\s+\|", row)   # checkpoint, seeds


def test_seeds_scored_under_different_protocols_are_not_averaged(tmp_path):
    """The seeds of one row share their protocol (backend, feature network, split, images, selection rule);
    the iteration a selection chose may differ per seed and stays out of the row's checkpoint text."""
    paths = [write_record(tmp_path, "fmnist_sneaker2boot", "omgd", "vem", s, v) for s, v in ((0, 2.0), (1, 2.5))]
    for i, p in enumerate(paths):
        rec = json.loads(p.read_text())
        rec["protocol"].update(checkpoint_selection=f"best of 3 training snapshots selected on the VAL split "
                                                    f"(held out of train; test read once): iteration {100 * (i + 1)}",
                               evalnet_sha256="a" * 64, n_images=1000)
        p.write_text(json.dumps(rec))
    s = summarise(load_metrics(paths))
    assert s.loc[0, "checkpoint"] == ("best of 3 training snapshots selected on the VAL split (held out of train; "
                                      "test read once)") and s.loc[0, "n"] == 2
    rec = json.loads(paths[1].read_text())
    rec["protocol"]["evalnet_sha256"] = "b" * 64                  # another feature network for seed 1
    paths[1].write_text(json.dumps(rec))
    with pytest.raises(ValueError, match="were scored under different protocols") as e:
        summarise(load_metrics(paths))
    assert str(paths[1]) in str(e.value)


def test_non_finite_value_raises(tmp_path, s2b_metrics):
    bad = write_record(tmp_path / "bad", "fmnist_sneaker2boot", "omgd", "vem", 9, float("nan"))
    with pytest.raises(ValueError, match="non-finite") as e:
        render(4, [*s2b_metrics, bad], tmp_path / "t.csv")
    assert str(bad) in str(e.value)
    assert not (tmp_path / "t.csv").exists()


def test_table_without_its_rows_raises(tmp_path):
    paths = [write_record(tmp_path, "fmnist_scenes", "omgd", "none", s, 40.0 + s) for s in range(2)]
    with pytest.raises(ValueError, match="table 2"):
        render(2, paths, tmp_path / "t2.csv")


@pytest.fixture
def sweep_metrics(tmp_path):
    rng = np.random.default_rng(0)
    values = {}
    paths = []
    for addon, lam in [("vem", 0.05), ("none", None), ("vem", 0.1), ("vem", 0.01)]:
        for seed in range(3):
            v = float(40 + 5 * (lam or 0) * 10 + rng.normal())
            values.setdefault((addon, lam), []).append(v)
            paths.append(write_record(tmp_path / "r", "fmnist_scenes", "omgd", addon, seed, v, lambda_mi=lam))
    return paths, values


def test_table5_keeps_every_lambda(tmp_path, sweep_metrics):
    paths, values = sweep_metrics
    render(5, paths, tmp_path / "t5.csv")
    m = measured(pd.read_csv(tmp_path / "t5.csv"))
    assert m["method"].tolist() == ["OMGD", "OMGD + VEM", "OMGD + VEM", "OMGD + VEM"]
    assert m["lambda_mi"].iloc[1:].tolist() == [0.01, 0.05, 0.1]
    for lam, mean in zip([None, 0.01, 0.05, 0.1], m["mean"]):
        key = ("none", None) if lam is None else ("vem", lam)
        assert mean == pytest.approx(np.mean(values[key]), rel=1e-12)
    assert "higher is better" in m.loc[0, "metric"]
    p = paper(pd.read_csv(tmp_path / "t5.csv"))
    assert p["lambda_mi"].fillna(-1).tolist() == [-1, 0.01, 0.05, 0.1]
    md = (tmp_path / "t5.md").read_text()
    assert "lambda_mi" in md


def test_table4_keeps_only_default_lambda(tmp_path, sweep_metrics):
    paths, values = sweep_metrics
    render(4, paths, tmp_path / "t4.csv")
    m = measured(pd.read_csv(tmp_path / "t4.csv"))
    assert m["method"].tolist() == ["OMGD", "OMGD + VEM"]
    assert m.loc[1, "mean"] == pytest.approx(np.mean(values[("vem", 0.1)]), rel=1e-12)
    # the higher-is-better metric flips the verdict's sense: compare with an explicit Welch test
    p = welch_p(values[("vem", 0.1)], values[("none", None)])
    assert m.loc[1, "p_value"] == pytest.approx(p, rel=1e-6)
    # the paper's table 4 has no cityscapes rows: no paper block at all
    assert paper(pd.read_csv(tmp_path / "t4.csv")).empty
    assert "## Published in the paper" not in (tmp_path / "t4.md").read_text()


def test_higher_is_better_verdict(tmp_path):
    paths = []
    for addon, vals in (("none", [40.0, 41.0, 42.0]), ("vem", [50.0, 51.0, 52.0])):
        paths += [write_record(tmp_path, "fmnist_scenes", "omgd", addon, s, v) for s, v in enumerate(vals)]
    render(4, paths, tmp_path / "t.csv")
    m = measured(pd.read_csv(tmp_path / "t.csv"))
    assert m.loc[1, "verdict"].startswith("better than OMGD")  # higher mIoU is better


def test_curve_change_column(tmp_path):
    paths = [write_record(tmp_path, "fmnist_sneaker2boot", "omgd", "none", s, 20.0 + s) for s in range(2)]
    curves = []
    for p, last in zip(paths, (9.0, 11.0)):
        c = p.parent / "curve.csv"
        c.write_text("iter,val\n0,30\n25,20\n50,12\n75,10\n100," + str(last) + "\n")
        curves.append(c)
    render(4, paths, tmp_path / "t.csv", curves=curves)
    m = measured(pd.read_csv(tmp_path / "t.csv"))
    # change over the last quarter: (v_100 - v_75) / |v_75|, averaged over seeds
    assert m.loc[0, "val_change_last_quarter"] == pytest.approx(np.mean([(9 - 10) / 10, (11 - 10) / 10]))
    # share of the curve's range moved in the last quarter, worst seed: |11 - 10| / (30 - 10)
    assert m.loc[0, "last_quarter_share"] == pytest.approx(max(1 / 21, 1 / 20))


def test_paired_test_over_matching_seeds(tmp_path):
    """Seeds share init and batches: a consistent per-seed gain is significant although the seed spread
    hides it from Welch's test; the table reports both p-values."""
    base = [10.0, 20.0, 30.0]
    vem = [9.0, 19.2, 28.9]          # better on every seed by ~1, spread across seeds 10
    noisy = [11.0, 18.0, 31.0]       # no consistent direction
    paths = []
    for addon, vals in (("none", base), ("vem", vem), ("vid", noisy)):
        paths += [write_record(tmp_path, "fmnist_sneaker2boot", "omgd", addon, s, v) for s, v in enumerate(vals)]
    render(4, paths, tmp_path / "t.csv")
    m = measured(pd.read_csv(tmp_path / "t.csv")).set_index("method")
    assert m.loc["OMGD + VEM", "p_value"] > 0.5  # Welch cannot see it
    assert m.loc["OMGD + VEM", "p_paired"] == pytest.approx(stats.ttest_rel(vem, base).pvalue, rel=1e-9)
    assert m.loc["OMGD + VEM", "verdict"].startswith("better than OMGD (p=")
    assert "paired over 3 seeds" in m.loc["OMGD + VEM", "verdict"]
    assert m.loc["OMGD + VID", "verdict"].startswith("no significant difference")


def test_dose_response_table(tmp_path):
    """Every lambda of every add-on, its paired effect (scipy) and the gradient probe averaged over seeds."""
    from vem.tables import render_dose_response

    base = [20.0, 21.0, 22.5]
    paths = [write_record(tmp_path, "fmnist_sneaker2boot", "omgd", "none", s, v) for s, v in enumerate(base)]
    for lam, shift in ((0.1, 0.0), (10.0, -2.0)):
        for s, v in enumerate(base):
            p = write_record(tmp_path, "fmnist_sneaker2boot", "omgd", "vem", s, v + shift + 0.1 * s, lambda_mi=lam)
            rec = json.loads(p.read_text())
            rec["gradient_probe"] = {"ratio_out": lam * 1e-3 * (s + 1), "ratio_params": lam * 2e-3,
                                     "cos_to_positive": -0.5, "share_points_away_from_positive": 1.0}
            p.write_text(json.dumps(rec))
            paths.append(p)
    out = tmp_path / "dr.csv"
    assert render_dose_response(paths, out) == [str(out), str(out.with_suffix(".md"))]
    df = pd.read_csv(out)
    assert df["method"].tolist() == ["OMGD", "OMGD + VEM", "OMGD + VEM"]
    assert df["lambda_mi"].fillna(-1).tolist() == [-1, 0.1, 10.0]
    hi = df.iloc[2]
    vals = np.array(base) - 2.0 + 0.1 * np.arange(3)
    ci = stats.ttest_rel(vals, base).confidence_interval(0.95)
    assert (hi["delta_ci_low"], hi["delta_ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert hi["probe_ratio_out"] == pytest.approx(10.0 * 1e-3 * 2) and hi["probe_ratio_params"] == pytest.approx(0.02)
    assert hi["probe_cos_to_positive"] == -0.5 and math.isnan(df.iloc[0]["probe_ratio_out"])
    assert "Dose-response" in out.with_suffix(".md").read_text()


def test_control_table_compares_each_addon_alone_with_no_distillation(tmp_path):
    """Each add-on-only arm against no distillation (scipy's paired t); frozen against learned VEM."""
    from vem.tables import render_control

    cells = {("none", ""): [10.0, 11.0, 12.0], ("none", "nodistill"): [200.0, 190.0, 210.0],
             ("vid", "nodistill"): [20.0, 22.0, 21.0], ("vem", "nodistill"): [199.0, 191.0, 211.5],
             ("vem", "nodistill+frozen"): [200.5, 190.0, 209.0]}
    paths = []
    for (addon, arms), vals in cells.items():
        for s, v in enumerate(vals):
            p = write_record(tmp_path / (arms or "full"), "fmnist_sneaker2boot", "omgd", addon, s, v)
            rec = json.loads(p.read_text())
            rec["arms"] = arms.split("+") if arms else []
            p.write_text(json.dumps(rec))
            paths.append(p)
    out = tmp_path / "control.csv"
    render_control(paths, out)
    df = pd.read_csv(out).set_index("arm")
    assert list(df.index) == ["the method in full (reference)", "no distillation at all",
                              "VID as the only teacher signal", "VEM as the only teacher signal",
                              "VEM as the only teacher signal, energy net frozen at init"]
    base = cells[("none", "nodistill")]
    vid = df.loc["VID as the only teacher signal"]
    ref = stats.ttest_rel(cells[("vid", "nodistill")], base)
    assert vid["p_paired"] == pytest.approx(ref.pvalue) and vid["transfer"].startswith("transfers information")
    assert df.loc["VEM as the only teacher signal"]["transfer"].startswith("no measurable transfer")
    frozen = df.loc["VEM as the only teacher signal, energy net frozen at init"]
    assert frozen["learned_minus_frozen"] == pytest.approx(np.mean(np.subtract(cells[("vem", "nodistill")],
                                                                               cells[("vem", "nodistill+frozen")])))
    assert pd.isna(df.loc["the method in full (reference)"]["transfer"])
    # each row says its scale, seeds and which checkpoint was scored
    assert set(df["block"]) == {"measured (mini scale)"} and set(df["checkpoint"]) == {
        "final iteration (no selection on test)"} and df["seeds"].astype(str).str.match(r"^\d( \d)*$").all()


def test_summary_is_generated_from_the_run(tmp_path, s2b_metrics):
    from vem.tables import render, render_summary

    t4 = tmp_path / "table4.csv"
    render(4, s2b_metrics, t4)
    meta = {"commit": "abc123def456", "date": "2026-12-02 10:00 UTC", "config_hash": "0123456789abcdef",
            "tasks": ["fmnist_sneaker2boot"], "seeds": [0, 1, 2], "overrides": {}, "scale": "mini"}
    out = render_summary([t4.with_suffix(".md")], [], ["results/figures/figure2.png"], meta, tmp_path / "s.md")
    text = open(out).read()
    assert "`abc123def456`" in text and "`0123456789abcdef`" in text and "not comparable" in text
    assert "## Table 4" in text and "OMGD + VEM" in text and "[figure2](figures/figure2.png)" in text

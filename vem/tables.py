"""Render the paper's tables from per-run metrics files (CSV + a Markdown twin).

Measured rows are grouped by (task, method, add-on, lambda_MI) over seeds: mean, std (ddof 1) and n.
Each add-on row is compared with the same method without add-on. Runs with the same seed share the
student's initialisation and batch order, so the verdict uses a paired t-test over the seeds both rows
have (``p_paired``; Welch's test over all seeds, ``p_value``, where fewer than 2 seeds match): "better" /
"worse" only at p < 0.05, otherwise "no significant difference".
The paper's own numbers (real datasets, Inception FID / DRN mIoU) follow in a separate block labelled
as such; they are never comparable with the mini numbers. Only configured methods/add-ons appear.
"""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .methods import label
from .stats import min_detectable_effect, paired_effect, seeds_needed
from .tuning import TRIAL_ARM
from .utils import atomic_write_text

TITLES = {
    1: "Table 1: pix2pix (U-Net) compression on the paired tasks",
    2: "Table 2: CycleGAN (ResNet) compression on the unpaired tasks",
    3: "Table 3: unconditional GAN compression (SAGAN: Original, Slimming, GCC, GCC + VEM; StyleGAN2: Original, "
       "CAGC, CAGC + VEM)",
    4: "Table 4: mutual-information add-ons (none / VID / CRD / VEM) per method and task",
    5: "Table 5: sensitivity to lambda_MI (labels -> scene task)",
}
ADDON_ORDER = {"none": 0, "vid": 1, "crd": 2, "vem": 3}
# the gradient probe's per-run summary (metrics.json "gradient_probe", vem.mi.probe), averaged over seeds
PROBE_KEYS = ("ratio_out", "ratio_params", "cos_to_positive", "share_points_away_from_positive")
# per comparison row (add-on vs the same method alone); see vem.stats
CMP_COLUMNS = ["delta_vs_method", "p_value", "p_paired", "delta_paired", "delta_ci_low", "delta_ci_high", "delta_pct",
               "mde80", "mde80_pct", "seeds_for_5pct"]
def _fmt_count(x: float, unit: str = "") -> str:
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f}{suf}{unit}"
    return f"{x:.0f}{unit}"


def _paper_convention(cost: dict) -> dict:
    """The MACs in the original code's own counting convention (``macs_<method>`` beside the harness's count:
    ``macs_gcc``, ``macs_cat``, ``macs_gan_compression``), NaN where there is none."""
    keys = sorted(k for k in cost if k.startswith("macs_") and k != "macs_harness")
    if not keys:
        return {"macs_paper": math.nan, "macs_paper_key": ""}
    return {"macs_paper": float(cost[keys[0]]), "macs_paper_key": keys[0].removeprefix("macs_")}


def _latency(lat: dict) -> dict:
    """The latency a table shows: the compiled (TorchScript) median where measured, else eager; the measured
    speed-up over the Original and the MACs ratio of the same measurement (vem.metrics.latency)."""
    backend = next((b for b in ("torchscript", "eager", "onnx") if f"{b}_ms" in lat), None)
    if backend is None:
        return {"latency_ms": math.nan, "speedup": math.nan, "macs_ratio": math.nan, "latency_backend": ""}
    return {"latency_ms": float(lat[f"{backend}_ms"]), "speedup": float(lat.get(f"speedup_{backend}", math.nan)),
            "macs_ratio": float(lat.get("macs_ratio", math.nan)), "latency_backend": backend}


# what a number's protocol is, for the seeds of one row to be averaged (the selected iteration may differ)
PROTOCOL_KEYS = ("backend_id", "evalnet_sha256", "mode", "eval_split", "n_images", "subset")


def _selection_rule(text: str) -> str:
    """A checkpoint selection without the iteration it chose (``...: iteration 400``): the same for every seed."""
    return re.sub(r": iteration -?\d+$", "", text or "")


def load_metrics(paths) -> pd.DataFrame:
    rows = []
    for p in paths:
        m = json.loads(Path(p).read_text())
        rule = _selection_rule(m["protocol"].get("checkpoint_selection", ""))
        rows.append({
            "task": m["task"], "scale": m["scale"], "paper_task": m["paper_task"], "method": m["method"],
            "addon": m["addon"], "arms": "+".join(m.get("arms") or []), "lambda_mi": m.get("lambda_mi"),
            "seed": m.get("seed"),
            "metric": m["metric"]["name"], "value": m["metric"]["value"],
            "higher_is_better": m["metric"]["higher_is_better"], "macs": m["cost"]["macs"],
            "params": m["cost"]["params"],
            "protocol": "; ".join(x for x in (rule, m["protocol"].get("subset")) if x),   # eval.test_images said
            "eval_protocol": json.dumps({"selection": rule, **{k: m["protocol"].get(k) for k in PROTOCOL_KEYS}},
                                        sort_keys=True),
            **_paper_convention(m["cost"]), **_latency(m.get("latency") or {}),
            "path": str(p), **{f"probe_{k}": m.get("gradient_probe", {}).get(k, math.nan) for k in PROBE_KEYS},
        })
    df = pd.DataFrame(rows)
    if not df.empty:
        bad = df[~np.isfinite(df["value"].astype(float))]
        if len(bad):
            raise ValueError(f"non-finite metric in {bad['path'].tolist()[0]}")
    return df


def _welch(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    from scipy import stats

    if np.std(a) == 0 and np.std(b) == 0:
        return 0.0 if np.mean(a) != np.mean(b) else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def _base_arms(arms: str) -> str:
    """The arms of the row an add-on row is compared with: the same, less the add-on's own options
    ('frozen', a tuning trial 't<k>')."""
    return "+".join(a for a in arms.split("+") if a and a != "frozen" and not TRIAL_ARM.fullmatch(a))


def _row_label(r) -> str:
    """The method column: the method + add-on, and which tuning trial a tuned row ran (vem.tuning)."""
    m = TRIAL_ARM.fullmatch(str(r.get("arms", "")))
    return label(r["method"], r["addon"]) + (f" (tuned: trial {m.group(1)})" if m else "")


def summarise(df: pd.DataFrame, curves: dict | None = None) -> pd.DataFrame:
    keys = ["task", "scale", "paper_task", "method", "addon", "arms", "lambda_mi"]
    df = df.copy()
    df["lambda_mi"] = df["lambda_mi"].astype(float).fillna(0.0)
    out = []
    for k, g in df.groupby(keys, sort=False, dropna=False):
        if g["eval_protocol"].nunique() > 1:       # a mean over seeds scored differently is no number
            other = g[g["eval_protocol"] != g["eval_protocol"].iloc[0]]
            raise ValueError(f"the seeds of {' '.join(str(x) for x in k[:5])} were scored under different "
                             f"protocols: {g['path'].iloc[0]} ({g['eval_protocol'].iloc[0]}) vs "
                             f"{other['path'].iloc[0]} ({other['eval_protocol'].iloc[0]})")
        vals = g["value"].to_numpy(float)
        row = dict(zip(keys, k))
        row.update(metric=g["metric"].iloc[0], higher_is_better=bool(g["higher_is_better"].iloc[0]),
                   # mean over seeds: a searched student's size differs per seed (GAN-Compression)
                   macs=float(g["macs"].astype(float).mean()), params=int(round(g["params"].astype(float).mean())),
                   macs_paper=float(g["macs_paper"].astype(float).mean()), macs_paper_key=g["macs_paper_key"].iloc[0],
                   **{k: float(g[k].astype(float).mean()) for k in ("latency_ms", "speedup", "macs_ratio")},
                   latency_backend=g["latency_backend"].iloc[0],
                   n=len(vals),
                   mean=float(vals.mean()), std=float(vals.std(ddof=1)) if len(vals) > 1 else float("nan"),
                   seeds=" ".join(str(s) for s in sorted(g["seed"].tolist())), _values=vals,
                   _by_seed=dict(zip(g["seed"].tolist(), vals.tolist())),
                   _seeds=g["seed"].tolist(), _paths=g["path"].tolist(),
                   checkpoint=g["protocol"].iloc[0],
                   **{f"probe_{k}": float(np.nanmean(g[f"probe_{k}"])) if g[f"probe_{k}"].notna().any() else math.nan
                      for k in PROBE_KEYS})
        if curves:
            ch = [curves[p] for p in g["path"] if p in curves]
            row["val_change_last_quarter"] = float(np.mean([c[0] for c in ch])) if ch else float("nan")
            row["last_quarter_share"] = float(np.max([c[1] for c in ch])) if ch else float("nan")
        out.append(row)
    s = pd.DataFrame(out)
    # compare every add-on row with the same method alone: paired over matching seeds (Welch if < 2 match)
    cmp = []
    for _, r in s.iterrows():
        base = s[(s.task == r.task) & (s.method == r.method) & (s.addon == "none") & (s.arms == _base_arms(r.arms))]
        if r.addon == "none" or r.method == "original" or base.empty:
            cmp.append({"verdict": ""})
            continue
        b = base.iloc[0]
        d = r["mean"] - b["mean"]
        p = _welch(r["_values"], b["_values"])
        e = paired_effect(r["_by_seed"], b["_by_seed"])
        test, how = (e["p"], f"paired over {e['n']} seeds") if not math.isnan(e["p"]) else (p, "Welch")
        better = d > 0 if r.higher_is_better else d < 0
        if math.isnan(test):
            v = "n < 2 seeds: no test"
        elif test < 0.05:
            v = f"{'better' if better else 'worse'} than {label(r.method, 'none')} (p={test:.3f}, {how})"
        else:
            v = f"no significant difference (p={test:.2f}, {how})"
        ref = abs(b["mean"])
        mde = min_detectable_effect(e["sd"], e["n"])
        cmp.append({"delta_vs_method": d, "p_value": p, "p_paired": e["p"], "verdict": v,
                    "delta_paired": e["mean"], "delta_ci_low": e["ci_low"], "delta_ci_high": e["ci_high"],
                    "delta_pct": 100 * e["mean"] / ref if ref else math.nan,
                    "mde80": mde, "mde80_pct": 100 * mde / ref if ref else math.nan,
                    "seeds_for_5pct": seeds_needed(0.05 * ref, e["sd"])})
    cmp = pd.DataFrame(cmp, index=s.index)
    for col in CMP_COLUMNS:
        s[col] = cmp[col] if col in cmp else math.nan
    s["verdict"] = cmp["verdict"]
    # within a task: the Original, then each method (in the order its runs were given) with its add-ons
    rank = {m: i + 1 for i, m in enumerate(dict.fromkeys(m for m in s["method"] if m != "original"))}
    s["order"] = s["method"].map(rank).fillna(0) * 10 + s["addon"].map(ADDON_ORDER).fillna(9)
    s["_armed"] = s["arms"] != ""   # an add-on's tuned / control rows after its default ones
    return s.sort_values(["task", "order", "_armed", "lambda_mi"], kind="stable").drop(columns=["order", "_armed"])


def _effect_text(r) -> str:
    if not np.isfinite(r.get("delta_paired", np.nan)):
        return ""
    ci = f" [{r['delta_ci_low']:+.3f}, {r['delta_ci_high']:+.3f}]" if np.isfinite(r["delta_ci_low"]) else ""
    return f"{r['delta_paired']:+.3f}{ci} ({r['delta_pct']:+.1f} %)"


def _mde_text(r) -> str:
    if not np.isfinite(r.get("mde80", np.nan)):
        return ""
    n5 = r["seeds_for_5pct"]
    n5 = "> 1000" if n5 is None or (isinstance(n5, float) and math.isnan(n5)) else int(n5)
    return f"{r['mde80']:.3f} ({r['mde80_pct']:.1f} %; 5 %: {n5} seeds)"


def _display(r) -> str:
    if r["n"] > 1:
        return f"{r['mean']:.3f} ± {r['std']:.3f} (n={r['n']})"
    return f"{r['mean']:.3f} (n=1)"


def select(s: pd.DataFrame, table: int, sweep_task: str | None = None) -> pd.DataFrame:
    if s.empty:
        return s
    if table == 1:
        keep = s["paper_task"].isin(["edges2shoes", "cityscapes"]) & s["addon"].isin(["none", "vid", "vem"])
    elif table == 2:
        keep = s["paper_task"].isin(["horse2zebra", "summer2winter"]) & s["addon"].isin(["none", "vem"])
    elif table == 3:
        keep = s["paper_task"].isin(["celeba", "ffhq"]) & s["addon"].isin(["none", "vem"])
    elif table == 4:
        keep = s["method"] != "original"
    elif table == 5:
        task = sweep_task or s.loc[s["paper_task"] == "cityscapes", "task"].iloc[0]
        keep = (s["task"] == task) & (s["method"] != "original") & s["addon"].isin(["none", "vem"])
    else:
        raise ValueError(f"unknown table {table}")
    # arms: only table 4 shows tuned rows (trial arms t<k>) beside the default ones; no table shows controls
    tuned = s["arms"].map(lambda a: bool(TRIAL_ARM.fullmatch(str(a))))
    keep &= (s["arms"] == "") | (tuned if table == 4 else False)
    sel = s[keep]
    if table in (1, 2, 4):
        # one lambda per add-on: the configured default (the sweep's other values belong to table 5)
        sel = sel[(sel["addon"] == "none") | (sel["arms"] != "") | sel.apply(lambda r: _is_default(r, s), axis=1)]
    return sel


def _is_default(r, s) -> bool:
    same = s[(s.task == r.task) & (s.method == r.method) & (s.addon == r.addon) & (s.arms == "")]
    # the default lambda is the one with most runs, ties -> the largest (0.1 is the paper's default)
    counts = same.groupby("lambda_mi")["n"].sum()
    best = counts[counts == counts.max()].index.max()
    return r.lambda_mi == best


def paper_table(table: int) -> pd.DataFrame:
    """The paper's published rows of Table ``table`` (``vem/paper/table<N>.csv``; no add-on = ``none``)."""
    from io import StringIO

    p = pd.read_csv(StringIO(resources.files("vem").joinpath(f"paper/table{table}.csv").read_text()),
                    dtype={"lambda_mi": float})
    p["addon"] = p["addon"].fillna("none")
    return p


def paper_rows(table: int, measured: pd.DataFrame) -> pd.DataFrame:
    p = paper_table(table)
    if measured.empty:
        return p.iloc[0:0]
    keep = p["paper_task"].isin(measured["paper_task"]) & p["method"].isin(measured["method"]) \
        & p["addon"].isin(measured["addon"])
    return p[keep]


def _paper_value(paper: pd.DataFrame, r, table: int) -> float:
    """The published number of a measured paper-scale row (NaN where the paper has none)."""
    m = paper[(paper["paper_task"] == r["paper_task"]) & (paper["method"] == r["method"])
              & (paper["addon"] == r["addon"])]
    if r["addon"] != "none" and m["lambda_mi"].notna().any():
        m = m[np.isclose(m["lambda_mi"].fillna(-1), float(r["lambda_mi"] or -1))]
    return float(m["value"].iloc[0]) if len(m) else float("nan")


def render(table: int, metrics, out, quality=(), curves=(), sweep_task: str | None = None) -> list[str]:
    df = load_metrics(metrics)
    curve_change = _curve_changes(curves, metrics)
    s = select(summarise(df, curve_change), table, sweep_task)
    if s.empty:
        raise ValueError(f"table {table}: none of the {len(df)} metrics files belong to it")
    rows = []
    for _, r in s.iterrows():
        metric_note = r["metric"] + (" (higher is better)" if r["higher_is_better"] else " (lower is better)")
        rows.append({
            "block": f"measured ({r['scale']} scale)", "task": r["task"], "stands_for": r["paper_task"],
            "method": _row_label(r),
            "lambda_mi": "" if r["addon"] == "none" else r["lambda_mi"],
            "MACs": _fmt_count(r["macs"]), "params": _fmt_count(r["params"]), "metric": metric_note,
            "MACs_original_code": (f"{_fmt_count(r['macs_paper'])} ({r['macs_paper_key']})"
                                   if np.isfinite(r["macs_paper"]) else ""),
            "latency_ms": round(r["latency_ms"], 3) if np.isfinite(r["latency_ms"]) else "",
            "speedup": (f"x{r['speedup']:.2f} (MACs x{r['macs_ratio']:.1f})" if np.isfinite(r["speedup"]) else ""),
            "mean": r["mean"], "std": r["std"], "n": r["n"], "value": _display(r),
            **{c: r[c] for c in CMP_COLUMNS}, "effect": _effect_text(r), "mde": _mde_text(r),
            "verdict": r["verdict"],
            "val_change_last_quarter": r.get("val_change_last_quarter", float("nan")),
            "last_quarter_share": r.get("last_quarter_share", float("nan")),
            "checkpoint": r["checkpoint"], "seeds": r["seeds"],
        })
    for q in quality or ():
        qd = json.loads(Path(q).read_text())
        if qd.get("kind") == "segmenter" and table in (1, 5) and "fmnist_scenes" in set(s["task"]):
            rows.append({"block": "measured (mini scale)", "task": "fmnist_scenes", "stands_for": "cityscapes",
                         "method": "Real data (segmenter on real test scenes)", "metric": "mIoU-FMNIST-scenes",
                         "mean": qd["real_test_miou"], "n": 1, "value": f"{qd['real_test_miou']:.3f} (n=1)"})
    measured = pd.DataFrame(rows)
    paper = paper_rows(table, s)
    paper_scale = bool(len(s)) and set(s["scale"]) == {"paper"}
    if paper_scale:  # measured at the paper's scale: the published value and the difference on each row
        pv = [_paper_value(paper, r, table) for _, r in s.iterrows()]
        measured.loc[: len(pv) - 1, "paper_value"] = pv
        measured["delta_vs_paper"] = measured["mean"] - measured["paper_value"]
    paper_out = pd.DataFrame({
        "block": ("paper (published)" if paper_scale else
                  "paper (real datasets, Inception FID / DRN-D-105 mIoU; NOT comparable with the rows above)"),
        "task": paper["paper_task"], "stands_for": paper["paper_task"],
        "method": [label(m, a, t) for m, a, t in zip(paper["method"], paper["addon"], paper["title"])],
        "lambda_mi": paper["lambda_mi"].astype(object).fillna("") if table == 5 else "",
        "MACs": paper["macs"].astype(object).fillna(""), "params": paper["params"].astype(object).fillna(""),
        "metric": paper["metric"],
        "mean": paper["value"], "value": paper["value"].map(lambda v: f"{v:.2f}"),
        "note": paper["note"].astype(object).fillna(""),
    })
    full = pd.concat([measured, paper_out], ignore_index=True)
    out = Path(out)
    atomic_write_text(out, full.to_csv(index=False))
    md = out.with_suffix(".md")
    cols = ["task", "stands_for", "method", "lambda_mi", "MACs", "params", "latency_ms", "speedup", "metric", "value",
            "effect", "mde", "verdict", "seeds", "checkpoint", "val_change_last_quarter", "last_quarter_share"]
    if measured["MACs_original_code"].astype(str).ne("").any():
        cols.insert(cols.index("MACs") + 1, "MACs_original_code")
    if paper_scale:
        cols[cols.index("verdict"):cols.index("verdict")] = ["paper_value", "delta_vs_paper"]
    if table != 5:
        cols.remove("lambda_mi")
    scales = sorted(set(measured["block"].astype(str)))
    text = [f"# {TITLES[table]}", "",
            f"## Measured here: {', '.join(scales)}", "",
            "Mean ± std over seeds (n). `effect`: the paired difference to the same method without add-on over "
            "matching seeds (same initialisation and batches), its 95 % confidence interval and its size relative "
            "to the method alone. `mde`: the smallest difference this many seeds detect with 80 % power at the "
            "5 % level, given the observed paired spread (relative size; seeds that would resolve 5 %). "
            "`verdict`: the paired t-test (Welch's test if < 2 seeds match). "
            "`val_change_last_quarter`: relative change of the held-out val metric over the last quarter of "
            "training, mean over seeds; `last_quarter_share`: that change as a share of the whole curve's range, "
            "worst seed (near 0 = the curve has flattened; a noisy flat curve stays below ~0.2; a searched "
            "student's: its supernet's widest sub-network). MACs, params: mean over seeds (a searched student's "
            "size differs per seed). `latency_ms`: measured CPU latency at batch 1 (TorchScript, one thread, "
            "median of interleaved runs; `results/latency.csv` has every backend); `speedup`: the Original's "
            "latency over the student's in the same measurement, beside the MACs ratio. `checkpoint`: which "
            "snapshot was scored and, where not every test input was, which part."
            + (" Rows `(tuned: trial k)`: the add-on with the hyper-parameters its tuning chose on the val split "
               "(`results/tuning/<method>.md`: every trial, the same budget per add-on); the rows without it keep "
               "the configured (paper-default) values." if s["arms"].ne("").any() else ""), "",
            measured.reindex(columns=cols).astype(object).fillna("").to_markdown(index=False, floatfmt=".3f"), ""]
    if len(paper_out):
        text += [("## Published in the paper" if paper_scale else
                  "## Published in the paper (real datasets at 256 px; not comparable with the rows above)"), "",
                 paper_out.reindex(columns=["task", "method", "lambda_mi", "MACs", "params", "metric", "value",
                                            "note"]).to_markdown(index=False), ""]
    atomic_write_text(md, "\n".join(text))
    tex = out.with_suffix(".tex")
    atomic_write_text(tex, _latex(table, measured, paper_out, paper_scale))
    return [str(out), str(md), str(tex)]


_TEX_ESCAPE = {c: "\\" + c for c in "&%$#_{}"} | {"~": r"\textasciitilde{}", "^": r"\^{}", "\\": r"\textbackslash{}"}


def _tex(x) -> str:
    return "".join(_TEX_ESCAPE.get(c, c) for c in str(x))


def _latex(table: int, measured: pd.DataFrame, paper_out: pd.DataFrame, paper_scale: bool) -> str:
    """The table as LaTeX (booktabs): measured rows (mean \\pm std, the paired effect with its interval, the
    best compressed model of each task in bold), then the paper's numbers in a block of their own."""
    rows = []
    best = {}
    comp = measured[measured["mean"].notna() & ~measured["method"].astype(str).str.startswith(("Original", "Real"))]
    for task, g in comp.groupby("task"):
        hib = "higher is better" in str(g["metric"].iloc[0])
        best[task] = g["mean"].max() if hib else g["mean"].min()
    for _, r in measured.iterrows():
        v = f"{r['mean']:.3f}" + (f" \\pm {r['std']:.3f}" if r.get("n", 1) > 1 and np.isfinite(r.get("std", np.nan))
                                   else "")
        v = f"$\\mathbf{{{v}}}$" if best.get(r["task"]) == r["mean"] else f"${v}$"
        e = ""
        if np.isfinite(r.get("delta_paired", np.nan)):
            e = f"${r['delta_paired']:+.3f}$"
            if np.isfinite(r.get("delta_ci_low", np.nan)):
                e += f" $[{r['delta_ci_low']:+.3f}, {r['delta_ci_high']:+.3f}]$"
        lam = r.get("lambda_mi", "")
        rows.append({"Task": _tex(r["task"]), "Method": _tex(r["method"]),
                     "$\\lambda_{MI}$": _tex("" if pd.isna(lam) else lam),
                     "MACs": _tex(r.get("MACs", "") if pd.notna(r.get("MACs", "")) else ""),
                     "Metric": _tex(r["metric"]), "Value": v, "$\\Delta$ [95\\% CI]": e})
    body = pd.DataFrame(rows)
    if table != 5:
        body = body.drop(columns=["$\\lambda_{MI}$"])
    scale = "paper" if paper_scale else "mini"
    parts = [f"% {TITLES[table]} (generated by vem.tables; measured at {scale} scale)",
             "\\begin{table}[t]", "\\centering", f"\\caption{{{_tex(TITLES[table])}: measured here ({scale} scale)}}",
             body.to_latex(index=False, escape=False, column_format="l" * len(body.columns)).strip(), "\\end{table}"]
    if len(paper_out):
        p = pd.DataFrame({"Task": paper_out["task"].map(_tex), "Method": paper_out["method"].map(_tex),
                          "Metric": paper_out["metric"].map(_tex), "Value": paper_out["value"].map(_tex)})
        cap = ("published in the paper" if paper_scale else
               "published in the paper (real datasets at 256 px; not comparable with the measured table)")
        parts += ["", "\\begin{table}[t]", "\\centering", f"\\caption{{{_tex(TITLES[table])}: {cap}}}",
                  p.to_latex(index=False, escape=False, column_format="llll").strip(), "\\end{table}"]
    return "\n".join(parts) + "\n"


def _curve_changes(curves, metrics) -> dict:
    """metrics path -> (relative change of the val metric over the last quarter of its run's curve,
    |that change| / (max - min of the whole curve): the share of the curve's range still moving). A run whose
    student has no curve of its own (GAN-Compression's exported sub-network: one val point) is judged by its
    supernet's widest sub-network (``val_largest``)."""
    out = {}
    by_dir = {str(Path(c).parent): c for c in curves or ()}
    for m in metrics:
        c = by_dir.get(str(Path(m).parent))
        if not c:
            continue
        df = pd.read_csv(c)
        col = "val"
        if df["val"].notna().sum() < 2 and "val_largest" in df:   # a searched student: its supernet's curve
            col = "val_largest"
        df = df.dropna(subset=[col]).drop_duplicates("iter", keep="last")
        if len(df) < 2:
            continue
        it = df["iter"].to_numpy()
        v = df[col].to_numpy(float)
        ref = v[np.searchsorted(it, it[-1] * 0.75, side="left")]
        span = float(v.max() - v.min())
        out[str(m)] = (float((v[-1] - ref) / abs(ref)) if ref else float("nan"),
                       float(abs(v[-1] - ref) / span) if span > 0 else 0.0)
    return out


def render_dose_response(metrics, out) -> list[str]:
    """The lambda_MI dose-response (CSV + Markdown): per task, method and add-on, every lambda's value over
    seeds, its paired effect against the method alone with the 95 % interval, and the gradient probe's
    ratio ||grad add-on|| / ||grad method loss|| beside it (Adam follows the summed gradient: the loss share
    alone says little about how far the add-on moves the student)."""
    s = summarise(load_metrics(metrics))
    s = s[s["method"] != "original"]
    if s.empty:
        raise ValueError("dose-response: no runs")
    s = s.assign(_o=s["addon"].map(ADDON_ORDER).fillna(9)).sort_values(["task", "method", "_o", "lambda_mi"],
                                                                        kind="stable")
    rows = [{"task": r["task"], "stands_for": r["paper_task"], "method": label(r["method"], r["addon"]),
             "lambda_mi": "" if r["addon"] == "none" else r["lambda_mi"], "metric": r["metric"],
             "mean": r["mean"], "std": r["std"], "n": r["n"], "value": _display(r), "effect": _effect_text(r),
             "verdict": r["verdict"], **{c: r[c] for c in CMP_COLUMNS},
             **{f"probe_{k}": r[f"probe_{k}"] for k in PROBE_KEYS}} for _, r in s.iterrows()]
    df = pd.DataFrame(rows)
    out = Path(out)
    atomic_write_text(out, df.to_csv(index=False))
    md = out.with_suffix(".md")
    cols = ["task", "method", "lambda_mi", "value", "effect", "verdict", "probe_ratio_params", "probe_ratio_out",
            "probe_cos_to_positive"]
    text = ["# Dose-response: each add-on's weight lambda_MI", "",
            "Per task and method: the method alone, then every add-on at every lambda_MI (mean ± std over seeds), "
            "its paired difference to the method alone with the 95 % interval, the paired t-test's verdict, and "
            "the gradient probe averaged over training and seeds: `probe_ratio_params` / `probe_ratio_out` = "
            "||grad add-on|| / ||grad method loss|| at the student's parameters / output, `probe_cos_to_positive` "
            "= cos(-grad_s add-on, t+ - s) (< 0: the add-on pushes the student away from the positive).", "",
            df.reindex(columns=cols).astype(object).fillna("").to_markdown(index=False, floatfmt=".4g"), ""]
    atomic_write_text(md, "\n".join(text))
    return [str(out), str(md)]


CONTROL_ROWS = {("none", ""): "the method in full (reference)", ("none", "nodistill"): "no distillation at all",
                ("vid", "nodistill"): "VID as the only teacher signal",
                ("crd", "nodistill"): "CRD as the only teacher signal",
                ("vem", "nodistill"): "VEM as the only teacher signal",
                ("vem", "nodistill+frozen"): "VEM as the only teacher signal, energy net frozen at init"}


def render_latency(metrics, out) -> list[str]:
    """``results/latency.csv``: every evaluated generator's measured CPU latency per backend, its speed-up over
    the Original measured in the same interleaved run and the MACs ratio; ``.md``: means over seeds."""
    rows = []
    for p in metrics:
        m = json.loads(Path(p).read_text())
        lat = m.get("latency")
        if not lat:
            raise ValueError(f"{p} has no latency record (evaluate it again with this version)")
        row = {"task": m["task"], "scale": m["scale"], "method": m["method"], "addon": m["addon"],
               "arms": "+".join(m.get("arms") or []), "lambda_mi": m.get("lambda_mi"), "seed": m.get("seed"),
               "macs": m["cost"]["macs"], "params": m["cost"]["params"],
               "original_macs": lat.get("original_macs", m["cost"]["macs"] if m["method"] == "original" else None),
               "macs_ratio": lat.get("macs_ratio", 1.0 if m["method"] == "original" else None)}
        for b in ("eager", "torchscript", "onnx"):
            row[f"{b}_ms"] = lat.get(f"{b}_ms")
            row[f"{b}_iqr_ms"] = lat.get(f"{b}_iqr_ms")
            row[f"original_{b}_ms"] = lat.get(f"original_{b}_ms")
            row[f"speedup_{b}"] = lat.get(f"speedup_{b}", 1.0 if m["method"] == "original" and f"{b}_ms" in lat
                                          else None)
        row.update(torchscript_export=lat.get("torchscript", ""), onnx_export=lat.get("onnx", ""),
                   input="x".join(str(v) for v in lat["input"]), threads=lat["threads"], runs=lat["runs"],
                   cpu=lat["cpu"], torch=lat["torch"], path=str(p))
        rows.append(row)
    df = pd.DataFrame(rows)
    out = Path(out)
    atomic_write_text(out, df.to_csv(index=False))
    keys = ["task", "method", "addon", "arms", "lambda_mi"]
    g = df.assign(lambda_mi=df["lambda_mi"].astype(float).fillna(0.0)).groupby(keys, sort=False, dropna=False)
    num = ["macs", "macs_ratio", "eager_ms", "torchscript_ms", "onnx_ms", "speedup_eager", "speedup_torchscript",
           "speedup_onnx"]
    summary = g[num].mean(numeric_only=False).reset_index()
    summary.insert(len(keys), "n", g.size().to_numpy())
    summary["method"] = [label(m, a) for m, a in zip(summary["method"], summary["addon"])]
    summary = summary.drop(columns=["addon"])
    summary["macs"] = summary["macs"].map(_fmt_count)
    text = ["# Measured latency", "",
            f"CPU latency at batch 1 ({df['threads'].iloc[0]} thread(s), {df['cpu'].iloc[0]}, torch "
            f"{df['torch'].iloc[0]}): median of {df['runs'].iloc[0]} interleaved runs after warm-up, in ms; each "
            "student is timed interleaved with its task's Original in the same process, so `speedup_*` (the "
            "Original's median over the student's) is measured under the same conditions; `macs_ratio` is the "
            "Original's MACs over the student's (torchprofile). The paper reports MACs only. Mean over seeds (n).",
            "", summary.astype(object).where(summary.notna(), "").to_markdown(index=False, floatfmt=".3f"), ""]
    md = out.with_suffix(".md")
    atomic_write_text(md, "\n".join(text))
    return [str(out), str(md)]


def render_control(metrics, out) -> list[str]:
    """The positive control (CSV + Markdown): per task and method, the student with the method's own
    distillation terms off and each add-on as its only teacher signal, against the same student with no
    distillation at all (paired over seeds, 95 % interval); VEM with a frozen energy net against the learned
    one; the method in full as a reference. A working add-on transfers the teacher's information: better than
    no distillation, with an interval that excludes 0."""
    s = summarise(load_metrics(metrics))
    s = s[[(a, arms) in CONTROL_ROWS for a, arms in zip(s["addon"], s["arms"])]]
    if s.empty:
        raise ValueError("control: no runs of its arms")
    order = {k: i for i, k in enumerate(CONTROL_ROWS)}
    s = s.assign(_o=[order[(a, arms)] for a, arms in zip(s["addon"], s["arms"])])
    s = s.sort_values(["task", "method", "_o"], kind="stable")
    rows = []
    for _, r in s.iterrows():
        key = (r["addon"], r["arms"])
        row = {"block": f"measured ({r['scale']} scale)", "task": r["task"], "method": label(r["method"], "none"),
               "arm": CONTROL_ROWS[key], "addon": r["addon"], "arms": r["arms"], "metric": r["metric"],
               "seeds": r["seeds"], "checkpoint": r["checkpoint"], "mean": r["mean"], "std": r["std"],
               "n": r["n"], "value": _display(r), **{c: r[c] for c in CMP_COLUMNS},
               "effect_vs_no_distillation": _effect_text(r) if r["arms"] else "",
               "transfer": _transfer(r) if r["arms"] and r["addon"] != "none" else "",
               "probe_cos_to_positive": r["probe_cos_to_positive"]}
        if key == ("vem", "nodistill+frozen"):
            learned = s[(s.task == r.task) & (s.method == r.method) & (s.addon == "vem") & (s.arms == "nodistill")]
            if len(learned):
                e = paired_effect(learned.iloc[0]["_by_seed"], r["_by_seed"])
                row["learned_minus_frozen"] = e["mean"]
                row["learned_minus_frozen_ci"] = (f"[{e['ci_low']:+.3f}, {e['ci_high']:+.3f}]"
                                                  if np.isfinite(e["ci_low"]) else "")
        rows.append(row)
    df = pd.DataFrame(rows)
    out = Path(out)
    atomic_write_text(out, df.to_csv(index=False))
    cols = ["task", "method", "arm", "value", "effect_vs_no_distillation", "transfer", "learned_minus_frozen",
            "learned_minus_frozen_ci", "probe_cos_to_positive"]
    text = ["# Positive control: does each add-on transfer the teacher's information?", "",
            "Per task and method: the student trained with the method's own distillation terms switched off "
            "(its GAN / reconstruction-to-data terms stay as the method has them) and the add-on as the only "
            "teacher signal, against the same student with no distillation at all - paired over seeds, the "
            "difference with its 95 % interval. `transfer`: better than no distillation at p < 0.05 (the "
            "interval excludes 0), worse, or no measurable transfer. `learned_minus_frozen`: VEM with its "
            "energy network learned minus frozen at initialisation (information transfer vs mere "
            "regularisation). `probe_cos_to_positive`: the gradient probe's cos(-grad_s add-on, t+ - s), "
            "averaged over training and seeds.", "",
            df.reindex(columns=cols).astype(object).fillna("").to_markdown(index=False, floatfmt=".4g"), ""]
    atomic_write_text(out.with_suffix(".md"), "\n".join(text))
    return [str(out), str(out.with_suffix(".md"))]


def _transfer(r) -> str:
    p = r["p_paired"]
    if not np.isfinite(p):
        return "n < 2 seeds: no test"
    better = r["delta_paired"] > 0 if r["higher_is_better"] else r["delta_paired"] < 0
    if p < 0.05:
        return f"{'transfers information' if better else 'worse than no distillation'} (p={p:.3f})"
    return f"no measurable transfer (p={p:.2f})"


def render_summary(tables_md, extra_md, figures, meta: dict, out) -> str:
    """``results/summary.md``: what a run found, generated from it - the commit, date and configuration it
    ran under, then every rendered table (and the control / dose-response where built) and the figures."""
    lines = ["# Results of this run", "",
             f"- commit: `{meta.get('commit', 'unknown')}`", f"- rendered: {meta.get('date', '')}",
             f"- configuration: `{meta.get('config_hash', '')}` (tasks {', '.join(meta.get('tasks', []))}; "
             f"seeds {meta.get('seeds')}; overrides {meta.get('overrides') or 'none'})",
             f"- scale: {meta.get('scale')} - "
             + ("mini numbers (FD-FMNIST, mIoU-FMNIST-scenes) are not comparable with the paper's FID / mIoU"
                if meta.get("scale") == "mini" else "paper-scale numbers beside the published ones"), ""]
    for p in [*tables_md, *extra_md]:
        text = Path(p).read_text().strip().splitlines()
        if not (text and text[0].startswith("# ")):
            text = [f"# {Path(p).stem}", *text]
        lines += [("#" + ln if ln.startswith("#") else ln) for ln in text] + [""]   # one level deeper
    if figures:
        rel = [Path(f).relative_to("results") if str(f).startswith("results/") else Path(f) for f in figures]
        lines += ["## Figures", "", *(f"- [{r.stem}]({r})" for r in rel), ""]
    out = Path(out)
    atomic_write_text(out, "\n".join(lines))
    return str(out)

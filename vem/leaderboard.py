"""``results/leaderboard.html``: one static page, one row per task x method x add-on (x arms, lambda_MI).

Each row: the metric's mean over seeds with its 95 % confidence interval (t interval; none for one seed),
the verdict against the same method alone (the tables' paired test), MACs, params, the measured latency and
speed-up over the Original (vem.metrics.latency), a thumbnail of the run's samples, links to each seed's
metrics.json and samples; the paper's published number in its own labelled column (mini rows: the number of
the paper task they stand for, never comparable). Sortable columns (click a header; again: descending) and a
text filter; no server, no external resources - it opens from the results folder.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

import pandas as pd

from .methods import label
from .stats import mean_ci
from .tables import TITLES, _fmt_count, load_metrics, paper_table, summarise
from .utils import atomic_write_text

COLUMNS = ["task", "scale", "stands for", "method", "lambda_MI", "metric", "mean", "95% CI", "n", "verdict",
           "MACs", "params", "latency (ms)", "speed-up", "MACs ratio", "paper (published)", "samples", "runs"]
NUMERIC = {"lambda_MI", "mean", "n", "MACs", "params", "latency (ms)", "speed-up", "MACs ratio",
           "paper (published)"}


def _paper_numbers() -> pd.DataFrame:
    return pd.concat([paper_table(t).assign(table=t) for t in TITLES], ignore_index=True)


def _paper_value(paper: pd.DataFrame, paper_task: str, method: str, addon: str) -> tuple[float, str]:
    hit = paper[(paper.paper_task == paper_task) & (paper.method == method) & (paper.addon == addon)]
    if hit.empty:
        return math.nan, ""
    r = hit.iloc[0]
    return float(r["value"]), f"{r['metric']} {r['value']:.2f} (Table {int(r['table'])})"


def _rel(path: str, base: Path) -> str:
    return os.path.relpath(Path(path).resolve(), base.resolve()).replace(os.sep, "/")


def rows(metrics, out: Path) -> list[dict]:
    df = load_metrics(metrics)
    s = summarise(df)
    paper = _paper_numbers()
    base = Path(out).parent
    out_rows = []
    for _, r in s.iterrows():
        lo, hi = mean_ci(r["_values"])
        pv, ptxt = _paper_value(paper, r.paper_task, r.method, r.addon)
        samples = [str(Path(p).with_name("samples.png")) for p in r["_paths"]]
        samples = [p for p in samples if Path(p).is_file()]
        title = label(r.method, r.addon) + (f" ({r.arms})" if r.arms else "")
        out_rows.append({
            "task": r.task, "scale": r.scale, "stands for": r.paper_task, "method": title,
            "lambda_MI": "" if r.addon == "none" else float(r.lambda_mi), "metric": r.metric
            + (" (higher is better)" if r.higher_is_better else " (lower is better)"),
            "mean": float(r["mean"]), "95% CI": "" if math.isnan(lo) else f"[{lo:.3f}, {hi:.3f}]", "n": int(r.n),
            "verdict": r.verdict, "MACs": float(r.macs), "params": float(r.params),
            "latency (ms)": float(r.latency_ms), "speed-up": float(r.speedup), "MACs ratio": float(r.macs_ratio),
            "paper (published)": pv, "_paper_text": ptxt,
            "_samples": [_rel(p, base) for p in samples],
            "_runs": [("" if seed is None or seed != seed else str(int(seed)), _rel(p, base))
                      for seed, p in zip(r["_seeds"], r["_paths"])],
        })
    return out_rows


def _cell(col: str, row: dict) -> str:
    v = row.get(col, "")
    if col == "samples":
        if not row["_samples"]:
            return "<td></td>"
        src = html.escape(row["_samples"][0])
        return (f'<td><a href="{src}"><img class="thumb" src="{src}" alt="samples of {html.escape(row["method"])}"'
                ' loading="eager"></a></td>')
    if col == "runs":
        links = " ".join(f'<a href="{html.escape(p)}">{"seed " + s if s else "metrics"}</a>'
                         for s, p in row["_runs"])
        return f"<td>{links}</td>"
    if col in NUMERIC:
        if v == "" or (isinstance(v, float) and math.isnan(v)):
            return '<td data-v=""></td>'
        shown = {"MACs": lambda x: _fmt_count(x), "params": lambda x: _fmt_count(x),
                 "speed-up": lambda x: f"x{x:.2f}", "MACs ratio": lambda x: f"x{x:.1f}",
                 "n": lambda x: str(int(x)), "paper (published)": lambda x: row["_paper_text"],
                 "lambda_MI": lambda x: f"{x:g}"}.get(col, lambda x: f"{x:.3f}")(v)
        return f'<td class="num" data-v="{v!r}">{html.escape(shown)}</td>'
    return f"<td>{html.escape(str(v))}</td>"


SCRIPT = """
const table = document.getElementById('board');
const tbody = table.tBodies[0];
function key(td, numeric) {
  if (!numeric) return td.textContent.trim().toLowerCase();
  const v = td.dataset.v;
  return v === '' || v === undefined ? null : parseFloat(v);
}
function sortBy(i) {
  const th = table.tHead.rows[0].cells[i];
  const numeric = th.classList.contains('num');
  const dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
  for (const c of table.tHead.rows[0].cells) delete c.dataset.dir;
  th.dataset.dir = dir;
  const rows = Array.from(tbody.rows);
  rows.sort((a, b) => {
    const x = key(a.cells[i], numeric), y = key(b.cells[i], numeric);
    if (x === null && y === null) return 0;
    if (x === null) return 1;          // empty cells last, either direction
    if (y === null) return -1;
    const c = x < y ? -1 : x > y ? 1 : 0;
    return dir === 'asc' ? c : -c;
  });
  for (const r of rows) tbody.appendChild(r);
}
Array.from(table.tHead.rows[0].cells).forEach((th, i) => th.addEventListener('click', () => sortBy(i)));
document.getElementById('filter').addEventListener('input', (e) => {
  const words = e.target.value.toLowerCase().split(/\\s+/).filter(Boolean);
  let shown = 0;
  for (const r of tbody.rows) {
    const text = r.textContent.toLowerCase();
    const ok = words.every((w) => text.includes(w));
    r.style.display = ok ? '' : 'none';
    shown += ok;
  }
  document.getElementById('count').textContent = shown + ' of ' + tbody.rows.length + ' rows';
});
document.getElementById('count').textContent = tbody.rows.length + ' of ' + tbody.rows.length + ' rows';
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 6px; vertical-align: middle; }
th { cursor: pointer; background: #f3f3f3; position: sticky; top: 0; user-select: none; }
th[data-dir=asc]::after { content: ' \\25B2'; } th[data-dir=desc]::after { content: ' \\25BC'; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th.paper { background: #fff0c8; }
img.thumb { width: 96px; height: 96px; object-fit: cover; image-rendering: pixelated; }
.mini { color: #555; }
"""


def render(metrics, out, meta: dict | None = None) -> str:
    out = Path(out)
    data = rows(metrics, out)
    if not data:
        raise ValueError("leaderboard: no metrics files given")
    head = "".join(f'<th class="{"num" if c in NUMERIC else ""}{" paper" if c.startswith("paper") else ""}">'
                   f"{html.escape(c)}</th>" for c in COLUMNS)
    body = []
    for r in data:
        cells = "".join(_cell(c, r) for c in COLUMNS)
        body.append(f'<tr class="{html.escape(r["scale"])}">{cells}</tr>')
    scales = sorted({r["scale"] for r in data})
    note = ("Mini rows (Fashion-MNIST analogues at 32 px, FD-FMNIST / mIoU of the harness's own networks) are NOT "
            "comparable with the paper's numbers, which stand in their own column for the task they stand for."
            if "mini" in scales else "Paper-scale rows: the published number in its own column.")
    meta_txt = html.escape(json.dumps(meta or {}, sort_keys=True))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>VEM harness leaderboard</title>
<style>{STYLE}</style></head><body>
<h1>Leaderboard: MI add-ons x compression methods</h1>
<p>{html.escape(note)} Mean over seeds with its 95 % t interval; verdict: paired test against the same method without
add-on; latency: CPU, batch 1, TorchScript, one thread, speed-up over the task's Original measured in the same run
(results/latency.md). Click a column to sort; type to filter (all words must match).</p>
<p><input id="filter" type="search" placeholder="filter, e.g. sneaker2boot vem" size="40"> <span id="count"></span></p>
<table id="board"><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
<p class="mini">run: {meta_txt}</p>
<script>{SCRIPT}</script>
</body></html>
"""
    atomic_write_text(out, page)
    return str(out)

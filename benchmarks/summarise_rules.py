"""Summarise Snakemake benchmark files per rule (or per rule and method, or per method stage).

``python benchmarks/summarise_rules.py results/benchmarks [--by rule|method|stage]``

Each job's benchmark file gives its wall seconds (``s``, what the tables sum as core-seconds: every job rule runs
one thread) and its CPU seconds (``cpu_time``, a lower bound: Snakemake samples the job's processes every second
for 30 s, then every 30 s, so what a job spends after its last sample is missing). ``--by method`` splits the
method rules (``method_stage``, ``compress``, ``evaluate_run``, ``tune``) by method, ``--by stage`` splits
``method_stage`` further by stage (``method_stage/gcc/distill``).
"""

import argparse
from pathlib import Path

import pandas as pd

# where a benchmark file's path names the method: rule -> function of the path's parts below the rule's folder
_METHOD_OF = {
    "method_stage": lambda parts: parts[1],  # {task}/{method}/{variant}/{stage}.tsv
    "compress": lambda parts: parts[1].split("-")[0],  # {task}/{method}-{addon}-lam...-seed{seed}.tsv
    "evaluate_run": lambda parts: parts[1].split("-")[0],
    "tune": lambda parts: parts[0].removesuffix(".tsv"),  # {method}.tsv
}


def job_key(rel: Path, by: str) -> str:
    """The group a benchmark file (path relative to the benchmarks folder) is summed under."""
    rule, *rest = rel.parts
    rule = rule.removesuffix(".tsv")
    if by == "rule" or rule not in _METHOD_OF or not rest:
        return rule
    key = f"{rule}/{_METHOD_OF[rule](rest)}"
    if by == "stage" and rule == "method_stage":
        key += "/" + rest[-1].removesuffix(".tsv")
    return key


def summarise(root, by: str = "rule") -> tuple[pd.DataFrame, dict]:
    """(per-group table: count, sum/mean/max of wall s, sum of cpu s; totals) of the benchmark files under root."""
    if by not in ("rule", "method", "stage"):
        raise ValueError(f"--by must be rule, method or stage, not {by!r}")
    rows = []
    for f in sorted(Path(root).rglob("*.tsv")):
        d = pd.read_csv(f, sep="\t")
        rows.append({"group": job_key(f.relative_to(root), by), "s": float(d["s"].iloc[0]),
                     "cpu_s": float(d["cpu_time"].iloc[0]) if "cpu_time" in d else float("nan"),
                     "max_rss_mb": float(d["max_rss"].iloc[0])})
    if not rows:
        raise SystemExit(f"no benchmark files under {root}")
    df = pd.DataFrame(rows)
    table = df.groupby("group").agg(count=("s", "size"), sum=("s", "sum"), mean=("s", "mean"), max=("s", "max"),
                                    cpu_sum=("cpu_s", "sum"))
    table = table.sort_values("sum", ascending=False).round(1)
    totals = {"jobs": len(df), "wall_s": float(df["s"].sum()), "cpu_s": float(df["cpu_s"].sum()),
              "peak_rss_mb": float(df["max_rss_mb"].max())}
    return table, totals


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="results/benchmarks")
    ap.add_argument("--by", choices=["rule", "method", "stage"], default="rule")
    args = ap.parse_args(argv)
    table, totals = summarise(args.root, args.by)
    print(table.rename_axis(args.by).to_markdown())
    print(f"\n{totals['jobs']} jobs; {totals['wall_s']:.0f} core-seconds (the jobs' wall seconds summed), "
          f"{totals['cpu_s']:.0f} CPU seconds sampled; peak RSS {totals['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()

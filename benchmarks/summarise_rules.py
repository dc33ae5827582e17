"""Summarise Snakemake benchmark files per rule (or per rule and method, or per method stage).

``python benchmarks/summarise_rules.py results/benchmarks [--by rule|method|stage]``

Each job's benchmark file gives its wall seconds (``s``, what the tables sum as core-seconds: every job rule runs
one thread) and its CPU seconds (``cpu_time``, a lower bound: Snakemake samples the job's processes every second
for 30 s, then every 30 s, so what a job spends after its last sample is missing). ``--by method`` splits the
method rules (``method_stage``, ``compress``, ``evaluate_run``, ``tune``) by method, ``--by stage`` splits
``method_stage`` further by stage (``method_stage/gcc/distill``).

``python benchmarks/summarise_rules.py AFTER/results/benchmarks --before BEFORE/results/benchmarks`` pairs the
jobs of two runs by their benchmark file's path (the same job) and tabulates, per group, the paired jobs' wall
seconds before and after and the change; jobs only one run has are counted, not compared (a run stopped early).
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


def jobs(root, by: str = "rule") -> pd.DataFrame:
    """One row per benchmark file under root: its path (``job``), group, wall s, CPU s, peak RSS."""
    if by not in ("rule", "method", "stage"):
        raise ValueError(f"--by must be rule, method or stage, not {by!r}")
    rows = []
    for f in sorted(Path(root).rglob("*.tsv")):
        d = pd.read_csv(f, sep="\t")
        rel = f.relative_to(root)
        rows.append({"job": rel.as_posix(), "group": job_key(rel, by), "s": float(d["s"].iloc[0]),
                     "cpu_s": float(d["cpu_time"].iloc[0]) if "cpu_time" in d else float("nan"),
                     "max_rss_mb": float(d["max_rss"].iloc[0])})
    if not rows:
        raise SystemExit(f"no benchmark files under {root}")
    return pd.DataFrame(rows)


def summarise(root, by: str = "rule") -> tuple[pd.DataFrame, dict]:
    """(per-group table: count, sum/mean/max of wall s, sum of cpu s; totals) of the benchmark files under root."""
    df = jobs(root, by)
    table = df.groupby("group").agg(count=("s", "size"), sum=("s", "sum"), mean=("s", "mean"), max=("s", "max"),
                                    cpu_sum=("cpu_s", "sum"))
    table = table.sort_values("sum", ascending=False).round(1)
    totals = {"jobs": len(df), "wall_s": float(df["s"].sum()), "cpu_s": float(df["cpu_s"].sum()),
              "peak_rss_mb": float(df["max_rss_mb"].max())}
    return table, totals


def compare(before_root, after_root, by: str = "rule") -> tuple[pd.DataFrame, dict]:
    """(per-group table of the jobs both runs have: count, before and after wall s summed, change in %;
    totals, with the numbers of jobs only one run has)."""
    before, after = jobs(before_root, by), jobs(after_root, by)
    both = before.merge(after, on=["job", "group"], suffixes=("_before", "_after"))
    if both.empty:
        raise SystemExit(f"no job has a benchmark file under both {before_root} and {after_root}")
    table = both.groupby("group").agg(count=("job", "size"), before=("s_before", "sum"), after=("s_after", "sum"))
    table["change_%"] = 100.0 * (table["after"] / table["before"] - 1.0)
    table = table.sort_values("before", ascending=False).round(1)
    totals = {"paired": len(both), "before_s": float(both["s_before"].sum()), "after_s": float(both["s_after"].sum()),
              "only_before": len(before) - len(both), "only_after": len(after) - len(both)}
    return table, totals


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="results/benchmarks")
    ap.add_argument("--by", choices=["rule", "method", "stage"], default="rule")
    ap.add_argument("--before", help="another run's benchmarks folder: compare the jobs both runs have")
    args = ap.parse_args(argv)
    if args.before:
        table, totals = compare(args.before, args.root, args.by)
        print(table.rename_axis(args.by).to_markdown())
        change = 100.0 * (totals["after_s"] / totals["before_s"] - 1.0)
        print(f"\n{totals['paired']} jobs in both runs: {totals['before_s']:.0f} -> {totals['after_s']:.0f} "
              f"core-seconds ({change:+.1f} %); {totals['only_before']} jobs only before, "
              f"{totals['only_after']} only after")
        return
    table, totals = summarise(args.root, args.by)
    print(table.rename_axis(args.by).to_markdown())
    print(f"\n{totals['jobs']} jobs; {totals['wall_s']:.0f} core-seconds (the jobs' wall seconds summed), "
          f"{totals['cpu_s']:.0f} CPU seconds sampled; peak RSS {totals['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()

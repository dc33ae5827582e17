"""Summarise Snakemake benchmark files per rule: ``python benchmarks/summarise_rules.py results/benchmarks``."""

import sys
from pathlib import Path

import pandas as pd


def main(root="results/benchmarks"):
    rows = []
    for f in Path(root).rglob("*.tsv"):
        d = pd.read_csv(f, sep="\t")
        rel = f.relative_to(root)
        rows.append({"rule": rel.parts[0].removesuffix(".tsv"), "job": str(rel), "s": float(d["s"].iloc[0]),
                     "max_rss_mb": float(d["max_rss"].iloc[0])})
    if not rows:
        raise SystemExit(f"no benchmark files under {root}")
    df = pd.DataFrame(rows)
    print(df.groupby("rule")["s"].agg(["count", "sum", "mean", "max"]).sort_values("sum", ascending=False)
          .round(1).to_markdown())
    print(f"\ntotal core-seconds {df['s'].sum():.0f}; peak RSS {df['max_rss_mb'].max():.0f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:])

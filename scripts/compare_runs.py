"""Compare two runs of the same workflow config (e.g. local vs SLURM): every metrics.json and table.

    python scripts/compare_runs.py [--subset] RUN_DIR_A RUN_DIR_B

Each RUN_DIR is a working directory holding ``results/``. Metric values, costs, config hashes and seeds
must be identical; timings and paths may differ (the tables' measured-latency columns included). With
--subset, B built only some of A's targets: every metrics file and table B has must be in A and identical
(B must have at least one of each). Exit status 1 lists every difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

SAME = ("metric", "cost", "config_hash", "seed", "task", "method", "addon", "lambda_mi")
TIMED = ("latency_ms", "speedup")  # table columns measured in wall-clock time: they differ between any two runs


def compare(a: Path, b: Path, subset: bool = False) -> list[str]:
    errs = []
    ma = sorted(p.relative_to(a) for p in (a / "results").rglob("metrics.json"))
    mb = sorted(p.relative_to(b) for p in (b / "results").rglob("metrics.json"))
    for d, m in ((a, ma), (b, mb)):
        if not m:
            errs.append(f"{d}: no results/**/metrics.json")
    if subset:
        if set(mb) - set(ma):
            errs.append(f"metrics files only in B: {sorted(set(mb) - set(ma))}")
    elif set(ma) != set(mb):
        errs.append(f"different metrics files: only in A {sorted(set(ma) - set(mb))}, "
                    f"only in B {sorted(set(mb) - set(ma))}")
    for rel in sorted(set(ma) & set(mb)):
        ja, jb = (json.loads((d / rel).read_text()) for d in (a, b))
        for k in SAME:
            if ja.get(k) != jb.get(k):
                errs.append(f"{rel}: {k} differs: {ja.get(k)!r} vs {jb.get(k)!r}")
    ref = b if subset else a
    tables = sorted(p.name for p in (ref / "results").glob("table*.csv"))
    if not tables:
        errs.append(f"{ref}: no results/table*.csv")
    for t in tables:
        fa, fb = a / "results" / t, b / "results" / t
        if not (fa.is_file() and fb.is_file()):
            errs.append(f"table {t} missing in {b if fa.is_file() else a}")
            continue
        try:
            ta, tb = (pd.read_csv(f).drop(columns=list(TIMED), errors="ignore") for f in (fa, fb))
            pd.testing.assert_frame_equal(ta, tb, check_exact=True)
        except AssertionError as e:
            errs.append(f"table {t} differs: {str(e).splitlines()[0]}")
    return errs


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    subset = "--subset" in argv
    if subset:
        argv.remove("--subset")
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    a, b = map(Path, argv)
    errs = compare(a, b, subset)
    for e in errs:
        print(e)
    n = len(list(((b if subset else a) / "results").rglob("metrics.json")))
    print(f"compare_runs: {n} metrics files and the tables {'identical' if not errs else 'DIFFER'}")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())

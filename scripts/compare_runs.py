"""Compare two runs of the same workflow config (e.g. local vs SLURM): every metrics.json and table.

    python scripts/compare_runs.py RUN_DIR_A RUN_DIR_B

Each RUN_DIR is a working directory holding ``results/``. Metric values, costs, config hashes and seeds
must be identical; timings and paths may differ. Exit status 1 lists every difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

SAME = ("metric", "cost", "config_hash", "seed", "task", "method", "addon", "lambda_mi")


def compare(a: Path, b: Path) -> list[str]:
    errs = []
    ma = sorted(p.relative_to(a) for p in (a / "results").rglob("metrics.json"))
    mb = sorted(p.relative_to(b) for p in (b / "results").rglob("metrics.json"))
    if not ma:
        errs.append(f"{a}: no results/**/metrics.json")
    if set(ma) != set(mb):
        errs.append(f"different metrics files: only in A {sorted(set(ma) - set(mb))}, "
                    f"only in B {sorted(set(mb) - set(ma))}")
    for rel in sorted(set(ma) & set(mb)):
        ja, jb = (json.loads((d / rel).read_text()) for d in (a, b))
        for k in SAME:
            if ja.get(k) != jb.get(k):
                errs.append(f"{rel}: {k} differs: {ja.get(k)!r} vs {jb.get(k)!r}")
    tables = sorted(p.name for p in (a / "results").glob("table*.csv"))
    if not tables:
        errs.append(f"{a}: no results/table*.csv")
    for t in tables:
        fb = b / "results" / t
        if not fb.is_file():
            errs.append(f"table {t} missing in {b}")
            continue
        try:
            pd.testing.assert_frame_equal(pd.read_csv(a / "results" / t), pd.read_csv(fb), check_exact=True)
        except AssertionError as e:
            errs.append(f"table {t} differs: {str(e).splitlines()[0]}")
    return errs


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    a, b = map(Path, argv)
    errs = compare(a, b)
    for e in errs:
        print(e)
    n = len(list((a / "results").rglob("metrics.json")))
    print(f"compare_runs: {n} metrics files and the tables {'identical' if not errs else 'DIFFER'}")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())

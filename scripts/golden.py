#!/usr/bin/env python3
"""Golden values of the smoke preset: every metric its DAG produces, pinned, so that any change to the
numerics shows up in review.

    python scripts/golden.py check  results tests/golden/smoke.json   # CI, after the smoke run
    python scripts/golden.py update results tests/golden/smoke.json   # re-pin: say why in the commit
    python scripts/golden.py update-machine results tests/golden/smoke.json   # pins of this machine's kind

``check`` compares each metrics.json value under ``results/`` (teachers and runs) with its pin: equal to the
last bit passes; within ``rtol`` (1e-3) passes with a warning - a machine whose float kernels sum in another
order (another CPU / BLAS) drifts a little over the smoke run's few iterations; anything further, a run
missing or a run not pinned fails and names it. A change of the numerics moves the smoke metrics by far more
than 1e-3 (a changed loss term, initialisation or random stream acts like a new seed).

Machines whose float kernels differ (CPU vendor x the SIMD path torch takes: "AuthenticAMD AVX512") can drift
by more than that over the smoke run (CycleGAN cells by up to 1e-1; the tuning may then choose another trial,
so another set of runs exists). ``profiles`` holds the complete pins of such a kind of machine, taken on one
with ``update-machine``; ``check`` uses its own kind's profile where there is one, else the shared ``values``.
``update`` re-pins ``values`` and drops every profile (after a deliberate change they are stale; re-take them
on each kind of machine).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RTOL = 1e-3


def collect(results: Path) -> dict[str, float]:
    out = {}
    for p in sorted(results.glob("**/metrics.json")):
        m = json.loads(p.read_text())
        if "metric" in m:
            out[str(p.relative_to(results))] = float(m["metric"]["value"])
    return out


def machine() -> str:
    """The kind of machine, as far as float order goes: CPU vendor and torch's SIMD path."""
    import torch

    vendor = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{vendor} {torch.backends.cpu.get_cpu_capability()}"


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("check", "update", "update-machine"):
        print("usage: golden.py check|update|update-machine RESULTS_DIR PINS.json", file=sys.stderr)
        return 2
    mode, results, pins_path = argv[0], Path(argv[1]), Path(argv[2])
    got = collect(results)
    if not got:
        print(f"golden: no metrics.json under {results}", file=sys.stderr)
        return 1
    if mode == "update":
        pins_path.parent.mkdir(parents=True, exist_ok=True)
        pins_path.write_text(json.dumps({"rtol": RTOL, "values": got}, indent=1, sort_keys=True) + "\n")
        print(f"golden: pinned {len(got)} metrics in {pins_path}")
        return 0
    pins = json.loads(pins_path.read_text())
    kind = machine()
    if mode == "update-machine":
        pins.setdefault("profiles", {})[kind] = got
        pins_path.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
        print(f"golden: pinned {len(got)} metrics for machines of kind {kind!r} in {pins_path}")
        return 0
    profile = pins.get("profiles", {}).get(kind, {})
    rtol, want = float(pins["rtol"]), profile or pins["values"]
    print(f"golden: machine kind {kind!r}: " + (f"its own pins for {len(profile)} metrics" if profile
                                                 else "no pins of its own, the shared ones"))
    bad, drift, same = [], [], 0
    for key in sorted(set(want) | set(got)):
        if key not in got:
            bad.append(f"  {key}: pinned {want[key]!r}, not produced")
        elif key not in want:
            bad.append(f"  {key}: {got[key]!r}, not pinned")
        elif got[key] == want[key]:
            same += 1
        else:
            rel = abs(got[key] - want[key]) / max(abs(want[key]), 1e-12)
            (drift if rel <= rtol else bad).append(f"  {key}: pinned {want[key]!r}, got {got[key]!r} "
                                                   f"(relative {rel:.2e})")
    print(f"golden: {same} of {len(want)} pinned metrics identical to the last bit")
    if drift:
        print(f"golden: {len(drift)} within rtol {rtol:g} (another machine's float order?):\n" + "\n".join(drift))
    if bad:
        print(f"golden: {len(bad)} differ beyond rtol {rtol:g} - the numerics changed; if deliberately, re-pin "
              "with `python scripts/golden.py update results tests/golden/smoke.json` and say why in the "
              "commit:\n" + "\n".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Cost of each MI add-on: seconds per student iteration with the add-on, relative to the method alone.

    python benchmarks/addon_overhead.py [--iters 20] [--out benchmarks/addon_overhead.json]

Runs OMGD's ``distill`` stage (as ``python -m vem stage`` does, val scoring left out) for every add-on on
fmnist_edges2shoes (online teachers trained inside the stage) and fmnist_sneaker2boot (needs the default
workflow's outputs: resources/data, results/evalnets and the sneaker2boot OMGD teacher). Reports the median
iteration time, the ratio to the method alone and the share of each iteration spent in the add-on's own
work (fit_step + loss). CPU timings are noisy: compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ADDONS = ["none", "vid", "crd", "vem"]


def _mini(task, iters, teacher=None):
    from benchmarks.timing import TimedContext, median_after_warmup
    from vem.config import resolve
    from vem.data.taskdata import TaskData
    from vem.methods import get_method

    data = TaskData(ROOT / f"resources/data/{task}.npz", task)
    over = {"omgd.iters": iters + 1, "omgd.share_teachers": False} if teacher is None else \
        {"omgd.teacher.snapshot_every": iters + 1, "omgd.n_dis": 1}
    cfg = resolve(task, {**over, "omgd.eval_every": 10**6, "addon.crd.nce_k": 1024}, method="omgd")
    method = get_method("omgd")
    stage = method.final(cfg)
    inputs = {"perceptual": ROOT / "results/evalnets/perceptual.pt", **({"teacher": teacher} if teacher else {})}
    res = {}
    for addon in ADDONS:
        ctx = TimedContext(cfg=cfg, method="omgd", stage=stage, data=data, seed=0, inputs=inputs,
                           evalnet=ROOT / "results/evalnets/feature.pt", addon=addon)
        method.run_stage(stage.name, ctx)
        res[addon] = (median_after_warmup(ctx.step_seconds), median_after_warmup(ctx.addon_seconds))
    return {"ms_per_iter": {a: 1e3 * v[0] for a, v in res.items()},
            "ratio_vs_none": {a: v[0] / res["none"][0] for a, v in res.items()},
            "addon_share": {a: v[1] / v[0] for a, v in res.items() if a != "none"}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/addon_overhead.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = {"threads": args.threads,
           "mini_paired_fmnist_edges2shoes": _mini("fmnist_edges2shoes", args.iters),
           "mini_unpaired_fmnist_sneaker2boot": _mini(
               "fmnist_sneaker2boot", args.iters, ROOT / "results/runs/fmnist_sneaker2boot/omgd/shared/teacher.pt")}
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

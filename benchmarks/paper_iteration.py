"""Time of one paper-scale OMGD training iteration (the paper preset's recipe, 256 px), on CPU or GPU.

    python benchmarks/paper_iteration.py [--task edges2shoes] [--addon none,vem] [--iters 5] [--device auto]
                                         [--set omgd.batch=2 ...]

Builds a small synthetic copy of the task's dataset (random 256x256 images in the real layout) and random
stand-in VGG16 weights in a temporary folder, then runs OMGD's ``distill`` stage exactly as
``python -m vem stage`` does at paper scale (paired: the online wide unet_256 ngf 64 + deep unet_deepest_256
ngf 16 teachers and the discriminator, updated every ``n_dis`` iterations, and the unet_256 ngf 16 student
with SSIM/VGG16 style+feature/TV/channel distillation + the add-on; unpaired: a mobile_resnet_9blocks ngf 64
teacher forward and the ngf 16 student). Val-curve scoring (Inception/DRN) is left out. The first iteration
warms up; the median of the ``--iters`` others is reported, with the online teachers' share (paired) and the
add-on's, and on a GPU the peak of the memory allocated. Several add-ons (``--addon none,vid,crd,vem``) share one
process, one dataset and one set of weights; one JSON object per add-on is printed. ``--set key=value`` overrides
the recipe (the tests shrink it; measurements use the preset's).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_set(items) -> dict:
    """``["key=value", ...]`` -> ``{key: value}``, each value read as ``python -m vem ... --set`` reads it."""
    from vem.config import override_value

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set wants key=value (got {item!r})")
        out[key] = override_value(value)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="edges2shoes")
    ap.add_argument("--addon", default="vem", help="one or several of none, vid, crd, vem, comma-separated")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override (repeatable)")
    args = ap.parse_args()
    addons = args.addon.split(",")
    bad = [a for a in addons if a not in ("none", "vid", "crd", "vem")]
    if bad:
        raise SystemExit(f"--addon: {bad[0]!r} is not one of none, vid, crd, vem")
    if args.iters < 1:
        raise SystemExit(f"--iters must be >= 1 (got {args.iters})")
    sets = parse_set(args.set)
    dev = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    if dev == "cuda":
        torch.set_default_device("cuda")
    import baselines.omgd.train as omgd
    from benchmarks.stand_ins import stand_in_vgg16, synthetic_dataset
    from benchmarks.timing import TimedContext, median_after_warmup
    from vem.config import resolve
    from vem.data.folders import prepare_paper_task
    from vem.data.taskdata import open_task_data
    from vem.methods import get_method
    from vem.models import build, from_config
    from vem.utils import atomic_save_torch, versions

    paired = args.task == "edges2shoes"
    n = args.iters + 1
    over = {"omgd.iters": n, "omgd.eval_every": n} if paired else {"omgd.teacher.snapshot_every": n,
                                                                  "omgd.n_dis": 1, "omgd.eval_every": n}
    cfg = resolve(args.task, {**over, **sets}, method="omgd")
    tmpdir = tempfile.TemporaryDirectory(prefix="paper-iteration-")   # removed at exit (VGG16 alone is 528 MB)
    tmp = Path(tmpdir.name)
    # CRD draws nce_k negatives from the training split: list twice as many (the task index holds part of the
    # training files out as the val split)
    n_listed = 2 * (cfg["addon"]["crd"]["nce_k"] + 1) if "crd" in addons else None
    root = synthetic_dataset(args.task, tmp, n_listed=n_listed)
    prepare_paper_task(args.task, root, tmp / f"{args.task}.json", log=lambda m: None)
    stand_in_vgg16(tmp / "vgg16.pth")
    data = open_task_data(tmp / f"{args.task}.json", args.task, cfg, seed=0)
    inputs = {"perceptual": tmp / "vgg16.pth"}
    if not paired:
        rec = from_config(cfg["omgd"]["teacher"], 3, 3)
        with torch.device("cpu"):
            sd = build(rec).state_dict()
        atomic_save_torch(tmp / "teacher.pt", {"generator": rec, "state_dict": sd,
                                               "snapshots": [{"iter": 1, "val": 0.0, "state_dict": sd}]})
        inputs["teacher"] = tmp / "teacher.pt"
    method = get_method("omgd")
    stage = method.final(cfg)
    step = omgd.OnlineTeachers.step
    for addon in addons:
        ctx = TimedContext(cfg=cfg, method="omgd", stage=stage, data=data, seed=0, inputs=inputs,
                           evalnet=tmp / "none", addon=addon)
        omgd.OnlineTeachers.step = ctx.timed("online_teachers", step)   # the online teachers' share (paired)
        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        method.run_stage(stage.name, ctx)
        teachers = ctx.span_seconds.get("online_teachers", [])
        out = {"task": args.task, "addon": addon, "device": dev,
               "device_name": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
               "threads": torch.get_num_threads(), "batch": cfg["omgd"]["batch"], "n_dis": cfg["omgd"]["n_dis"],
               "iters": args.iters, "overrides": sets, "seconds_per_iter": median_after_warmup(ctx.step_seconds),
               "seconds_per_iter_max": max(ctx.step_seconds[1:]),
               "online_teachers_seconds": median_after_warmup(teachers) if teachers else 0.0,
               "addon_seconds": median_after_warmup(ctx.addon_seconds) if ctx.addon_seconds else 0.0,
               "peak_GiB": torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else None,
               "versions": {k: v for k, v in versions().items() if k in ("torch", "python")}}
        print(json.dumps(out), flush=True)
        del ctx                # the next add-on's peak without this one's leftovers
        gc.collect()
        if dev == "cuda":
            torch.cuda.empty_cache()
    tmpdir.cleanup()


if __name__ == "__main__":
    main()

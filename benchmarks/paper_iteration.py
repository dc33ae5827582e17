"""Time of one paper-scale training iteration (the paper preset's recipe, 256 px), on CPU or GPU.

    python benchmarks/paper_iteration.py [--task edges2shoes] [--addon vem] [--iters 5] [--device auto]

Builds a small synthetic copy of the task's dataset (random 256x256 images in the real layout) and random
stand-in VGG16 weights in a temporary folder, then runs OMGD exactly as ``compress`` does at paper scale
(paired: the online wide unet_256 ngf 64 + deep unet_deepest_256 ngf 16 teachers and the discriminator,
updated every ``n_dis`` iterations, and the unet_256 ngf 16 student with SSIM/VGG16 style+feature/TV/channel
distillation + the add-on; unpaired: a mobile_resnet_9blocks ngf 64 teacher forward and the ngf 16
student). Val-curve scoring (Inception/DRN) is left out. One warm-up iteration, then ``--iters`` timed ones.
Prints one JSON object (device, versions, seconds per iteration split into data / teachers / student).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synthetic_dataset(task: str, root: Path) -> Path:
    from vem.data.paper_datasets import DATASET_OF

    d = root / DATASET_OF[task]
    rng = np.random.default_rng(0)

    def save(path, arr):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)

    if task in ("edges2shoes",):
        for split, n in (("train", 16), ("val", 2)):
            for i in range(n):
                save(d / split / f"{i}_AB.jpg", rng.integers(0, 256, (256, 512, 3), dtype=np.uint8))
    elif task in ("horse2zebra", "summer2winter"):
        for folder, n in (("trainA", 16), ("trainB", 16), ("testA", 2), ("testB", 2)):
            for i in range(n):
                save(d / folder / f"{i}.jpg", rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
    else:
        raise SystemExit(f"--task must be edges2shoes, horse2zebra or summer2winter (got {task})")
    (d / ".complete").write_text("synthetic\n")
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="edges2shoes")
    ap.add_argument("--addon", default="vem", choices=["none", "vid", "crd", "vem"])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = ap.parse_args()
    dev = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    if dev == "cuda":
        torch.set_default_device("cuda")
    from torchvision.models import vgg16

    import baselines.omgd as omgd
    from vem.config import resolve
    from vem.data.folders import prepare_paper_task
    from vem.models import build_generator
    from vem.train import open_task_data
    from vem.utils import atomic_save_torch, versions

    tmpdir = tempfile.TemporaryDirectory(prefix="paper-iteration-")   # removed at exit (VGG16 alone is 528 MB)
    tmp = Path(tmpdir.name)
    root = synthetic_dataset(args.task, tmp)
    prepare_paper_task(args.task, root, tmp / f"{args.task}.json", log=lambda m: None)
    with torch.device("cpu"):
        torch.save(vgg16(weights=None).state_dict(), tmp / "vgg16.pth")
    cfg = resolve(args.task)
    data = open_task_data(tmp / f"{args.task}.json", args.task, cfg, seed=0)
    omgd.ValScorer = lambda *a, **k: None          # no val scoring in the timed loop
    teacher = None
    if data.spec.kind == "unpaired":
        t = cfg["teachers"]["omgd"]
        G = build_generator(t["arch"], ngf=t["ngf"], norm=t["norm"], n_blocks=t["n_blocks"])
        teacher = tmp / "teacher.pt"
        atomic_save_torch(teacher, {"generator": {"arch": t["arch"], "in_nc": 3, "out_nc": 3, "ngf": t["ngf"],
                                                  "norm": t["norm"], "num_downs": 8, "n_blocks": t["n_blocks"]},
                                    "state_dict": {k: v.cpu() for k, v in G.state_dict().items()},
                                    "snapshots": [{"iter": 1, "val": 0.0, "state_dict": G.state_dict()}]})
    m = omgd.OMGD(cfg, data, args.addon, 0, tmp / "vgg16.pth", None, teacher)
    xa = data.tensor("train", "A")
    xb = data.tensor("train", "B") if data.spec.kind == "paired" else None

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    times = {"data": [], "teachers": [], "student": [], "total": []}
    for it in range(1, args.iters + 2):
        sync()
        t0 = time.perf_counter()
        idx = data.batch_indices(m.gen, m.o["batch"])
        a = xa[idx]
        b = xb[idx] if xb is not None else None
        sync()
        t1 = time.perf_counter()
        if b is not None:
            t_w, t_d, f_w = m.teachers.step(it, a, b)
            outs, positive = [t_w, t_d], (b if cfg["addon"]["positive"] == "gt" else t_w)
        else:
            with torch.no_grad():
                t_out, t_feats = m.wide.forward_features(a)
            outs, f_w, positive = [t_out], [f.mean((2, 3)) for f in t_feats], t_out
        sync()
        t2 = time.perf_counter()
        m._student_step(it, a, idx, outs, f_w, positive)
        sync()
        t3 = time.perf_counter()
        if it > 1:   # the first iteration warms up allocators / cuDNN
            for k, v in (("data", t1 - t0), ("teachers", t2 - t1), ("student", t3 - t2), ("total", t3 - t0)):
                times[k].append(v)
    out = {"task": args.task, "addon": args.addon, "device": dev,
           "device_name": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
           "threads": torch.get_num_threads(), "batch": m.o["batch"], "n_dis": m.o["n_dis"], "iters": args.iters,
           "seconds_per_iter": {k: statistics.mean(v) for k, v in times.items()},
           "seconds_per_iter_max": max(times["total"]),
           "versions": {k: v for k, v in versions().items() if k in ("torch", "python")}}
    print(json.dumps(out))
    tmpdir.cleanup()


if __name__ == "__main__":
    main()

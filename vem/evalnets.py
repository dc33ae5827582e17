"""Train the evaluation/perceptual networks on real Fashion-MNIST (train split only) and record quality."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from .data import fmnist
from .data.tasks import SUPER_CLASSES, to_tensor
from .metrics.miou import miou
from .models import FeatureNet, PerceptualNet, Segmenter
from .utils import progress, seed_all


def _pad(x: np.ndarray) -> torch.Tensor:
    return F.pad(torch.from_numpy(x).float().unsqueeze(1) / 127.5 - 1, (2, 2, 2, 2), value=-1.0)


def train_classifier(kind: str, cfg: dict, seed: int, fm_dir=None) -> tuple[dict, dict]:
    """kind: "feature" (FeatureNet) or "perceptual" (PerceptualNet). Returns (checkpoint, quality)."""
    seed_all(seed)
    fm = fmnist.load(fm_dir)
    x_tr, y_tr = _pad(fm["train_images"]), torch.from_numpy(fm["train_labels"].astype(np.int64))
    x_te, y_te = _pad(fm["test_images"]), torch.from_numpy(fm["test_labels"].astype(np.int64))
    kwargs = {"width": cfg["width"]}
    net = FeatureNet(**kwargs) if kind == "feature" else PerceptualNet(**kwargs)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["iters"])
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for _ in progress(range(cfg["iters"]), f"train {kind} net"):
        idx = torch.randint(0, len(x_tr), (cfg["batch"],), generator=gen, device="cpu")
        xb = x_tr[idx]
        if kind == "perceptual":  # a different training signal: random flips
            xb = torch.where(torch.rand(len(xb), 1, 1, 1, generator=gen, device="cpu") < 0.5, xb, xb.flip(-1))
        loss = F.cross_entropy(net(xb), y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(x_te[i:i + 1000]).argmax(1) for i in range(0, len(x_te), 1000)])
    acc = float((pred == y_te).float().mean())
    quality = {"kind": kind, "test_accuracy": acc, "train_seconds": time.time() - t0,
               "iters": cfg["iters"], "eval_split": "Fashion-MNIST test (10,000)"}
    return {"kwargs": kwargs, "state_dict": net.state_dict(), "kind": kind}, quality


def train_segmenter(cfg: dict, data, seed: int) -> tuple[dict, dict]:
    """Segmenter for fmnist_scenes: real train scenes -> label maps; quality = mIoU on real test scenes
    (the 'real data' reference row of the labels->scene table)."""
    seed_all(seed)
    x = data.tensor("train", "B")
    y = torch.from_numpy(data.raw["train_A"].astype(np.int64))
    kwargs = {"width": cfg["width"], "n_classes": len(SUPER_CLASSES)}
    net = Segmenter(**kwargs)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["iters"])
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for _ in progress(range(cfg["iters"]), "train segmenter"):
        idx = torch.randint(0, len(x), (cfg["batch"],), generator=gen, device="cpu")
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    x_te = to_tensor(data.raw["test_B"], data.spec, "B")
    with torch.no_grad():
        pred = torch.cat([net(x_te[i:i + 500]).argmax(1) for i in range(0, len(x_te), 500)]).numpy()
    real_miou = miou(pred, data.raw["test_A"], len(SUPER_CLASSES))
    quality = {"kind": "segmenter", "real_test_miou": real_miou, "train_seconds": time.time() - t0,
               "iters": cfg["iters"], "eval_split": f"fmnist_scenes test ({len(x_te)} real scenes)"}
    return {"kwargs": kwargs, "state_dict": net.state_dict(), "kind": "segmenter"}, quality

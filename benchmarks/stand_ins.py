"""Stand-ins for what a paper-scale run reads and this machine cannot download: random images in the real datasets'
layouts and sizes, and randomly initialised (seeded) VGG16 and Inception networks of the real architectures, in
the files the workflow's weight rules look for. The benchmarks time the real code on them; the metrics they give
mean nothing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

INCEPTION = "pt_inception-2015-12-05-6726825d.pth"   # the file names the weight rules look for in resources/
VGG16 = "vgg16-397923af.pth"


def synthetic_dataset(task: str, root: Path, n_train: int = 16, n_val: int = 2, n_listed: int | None = None) -> Path:
    """Random images in the real dataset's layout and size (edges2shoes-r: 256x512 AB pairs; CycleGAN: 256x256
    per side) under ``root``; its folder. ``n_listed`` (>= ``n_train``) training files per side, the ones past
    ``n_train`` hard links to the first: a task index as long as CRD's memory bank needs (its ``nce_k`` negatives
    are drawn from the training set's size) without writing that many images."""
    from vem.data.paper_datasets import DATASET_OF

    d = root / DATASET_OF[task]
    rng = np.random.default_rng(0)
    n_listed = max(n_train, n_listed or 0)

    def save(path, arr):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)

    def listed(folder: Path, name):
        for i in range(n_train, n_listed):
            os.link(folder / name(i % n_train), folder / name(i))

    if task in ("edges2shoes",):
        for split, n in (("train", n_train), ("val", n_val)):
            for i in range(n):
                save(d / split / f"{i}_AB.jpg", rng.integers(0, 256, (256, 512, 3), dtype=np.uint8))
        listed(d / "train", lambda i: f"{i}_AB.jpg")
    elif task in ("horse2zebra", "summer2winter"):
        for folder, n in (("trainA", n_train), ("trainB", n_train), ("testA", n_val), ("testB", n_val)):
            for i in range(n):
                save(d / folder / f"{i}.jpg", rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
        for folder in ("trainA", "trainB"):
            listed(d / folder, lambda i: f"{i}.jpg")
    else:
        raise SystemExit(f"--task must be edges2shoes, horse2zebra or summer2winter (got {task})")
    (d / ".complete").write_text("synthetic\n")
    return d


def stand_in_inception(path: Path) -> Path:
    """clean-fid's legacy (pytorch-fid) Inception architecture with seeded random weights, saved at ``path``."""
    import cleanfid.inception_pytorch as ip
    import torch

    torch.manual_seed(0)
    with torch.device("cpu"):
        net = ip._inception_v3(num_classes=1008, aux_logits=False, pretrained=False)
        net.Mixed_5b = ip.FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = ip.FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = ip.FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = ip.FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = ip.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = ip.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = ip.FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = ip.FIDInceptionE_1(1280)
        net.Mixed_7c = ip.FIDInceptionE_2(2048)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
    return path


def stand_in_vgg16(path: Path) -> Path:
    """torchvision's VGG16 with seeded random weights, saved at ``path``."""
    import torch
    from torchvision.models import vgg16

    torch.manual_seed(0)
    with torch.device("cpu"):
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(vgg16(weights=None).state_dict(), path)
    return path

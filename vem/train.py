"""Training infrastructure shared by teachers, evaluation networks and compression methods."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data.tasks import SUPER_CLASSES, TaskSpec, get_task, to_tensor, to_uint8
from .utils import load_checkpoint


class TaskData:
    """A prepared task (``resources/data/<task>.npz``) as float tensors, with seeded batch sampling."""

    def __init__(self, path, task: str):
        self.spec: TaskSpec = get_task(task)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"prepared data {path} does not exist; run the prepare_data rule")
        try:
            with np.load(path) as z:
                self.raw = {k: z[k] for k in z.files}
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"prepared data {path} is unreadable: {type(e).__name__}: {e}") from None
        need = [f"{s}_{side}" for s in ("train", "val", "test") for side in "AB"]
        missing = [k for k in need if k not in self.raw]
        if missing:
            raise ValueError(f"prepared data {path} lacks arrays {missing}")
        self._cache: dict[str, torch.Tensor] = {}

    def tensor(self, split: str, side: str) -> torch.Tensor:
        key = f"{split}_{side}"
        if key not in self._cache:
            self._cache[key] = to_tensor(self.raw[key], self.spec, side)
        return self._cache[key]

    def n(self, split: str, side: str = "A") -> int:
        return len(self.raw[f"{split}_{side}"])

    def batch_indices(self, gen: torch.Generator, batch: int, split="train", side="A") -> torch.Tensor:
        return torch.randint(0, self.n(split, side), (batch,), generator=gen)


def open_task_data(path, task: str, cfg: dict | None = None, seed: int = 0):
    """A task's prepared data: the npz (mini) or the image index of a real dataset (paper; with the
    preset's ``data`` augmentation and ``eval`` settings)."""
    spec = get_task(task)
    if spec.scale == "mini":
        return TaskData(path, task)
    from .config import resolve
    from .data.folders import FolderTaskData

    cfg = cfg or resolve(task)
    d = cfg["data"]
    data = FolderTaskData(path, task, d["load_size"], d["crop_size"], d["flip"], seed)
    data.eval_cfg = cfg["eval"]
    return data


def linear_decay(opt, total: int, decay_from: float):
    """Constant lr for ``decay_from * total`` iterations, then linear decay to 0 (pix2pix 'linear')."""
    start = int(total * decay_from)

    def factor(it):
        if it < start or total <= start:
            return 1.0
        return max(0.0, 1.0 - (it - start) / max(1, total - start))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


class ImagePool:
    """CycleGAN's history of generated images (size 0 = pass-through), driven by a seeded RNG."""

    def __init__(self, size: int, seed: int):
        self.size, self.images, self.rng = size, [], random.Random(seed)

    def state_dict(self) -> dict:
        from .resume import py_random_state

        return {"images": list(self.images), "rng": py_random_state(self.rng)}

    def load_state_dict(self, st: dict) -> None:
        from .resume import set_py_random_state

        self.images = list(st["images"])
        set_py_random_state(st["rng"], self.rng)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for im in images.detach():
            im = im.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(im)
                out.append(im)
            elif self.rng.random() > 0.5:
                j = self.rng.randrange(self.size)
                out.append(self.images[j].clone())
                self.images[j] = im
            else:
                out.append(im)
        return torch.cat(out)


def check_finite(loss: torch.Tensor, what: str, it: int) -> None:
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite {what} at iteration {it}: {loss.item()}; the run is stopped "
                                 "and no metrics are written")


@torch.no_grad()
def generate(gen: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    was = gen.training
    gen.eval()
    try:
        return torch.cat([gen(x[i:i + batch]) for i in range(0, len(x), batch)])
    finally:
        gen.train(was)


class ValScorer:
    """The task metric on the held-out *val* split (part of train): learning curves and selection.
    Paper-scale data get :class:`vem.paper_eval.PaperValScorer` (Inception FID / DRN-D-105 mIoU)."""

    def __new__(cls, data, evalnet_path, n: int = 500):
        if data.spec.scale == "paper":
            from .paper_eval import PaperValScorer

            return PaperValScorer(data, evalnet_path)
        return super().__new__(cls)

    def __init__(self, data: TaskData, evalnet_path, n: int = 500):
        from .metrics.fd import FDExtractor, array_features, stats
        from .models import FeatureNet, Segmenter

        self.data, self.spec = data, data.spec
        self.x = data.tensor("val", "A")[:n]
        ck = load_checkpoint(evalnet_path)
        if self.spec.metric == "fd":
            net = FeatureNet(**ck["kwargs"])
            net.load_state_dict(ck["state_dict"])
            self.extractor = FDExtractor(net)
            self.ref = stats(array_features(data.raw["val_B"], self.extractor))
        else:
            self.seg = Segmenter(**ck["kwargs"])
            self.seg.load_state_dict(ck["state_dict"])
            self.seg.eval()
            self.labels = data.raw["val_A"][:n]

    def __call__(self, gen: nn.Module) -> float:
        from .metrics.fd import fd_arrays
        from .metrics.miou import miou

        out = generate(gen, self.x)
        if self.spec.metric == "fd":
            return fd_arrays(to_uint8(out), *self.ref, self.extractor)
        with torch.no_grad():
            img = torch.from_numpy(to_uint8(out)).float().unsqueeze(1) / 127.5 - 1
            pred = self.seg(img).argmax(1).numpy()
        return miou(pred, self.labels, len(SUPER_CLASSES))

    @property
    def better(self):
        return (lambda a, b: a < b) if self.spec.metric == "fd" else (lambda a, b: a > b)

"""A task's prepared data as the training and evaluation code sees it, at either scale.

``open_task_data`` returns :class:`TaskData` for a mini task (the npz of ``prepare-data``, in memory) or
:class:`vem.data.folders.FolderTaskData` for a paper task (an image index, loaded lazily with the preset's
augmentation). Both offer ``spec``, ``n(split, side)``, ``tensor(split, side)[idx]`` (float in [-1, 1]),
``batch_indices(gen, batch, split, side)``, ``real_u8(split, side)`` (the real images as uint8, as
evaluation sees them) and ``labels(split)`` (what a segmentation metric compares with).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .tasks import TaskSpec, get_task, latents, to_tensor


class TaskData:
    """A prepared mini task (``resources/data/<task>.npz``) as float tensors, with seeded batch sampling."""

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
        stored = str(self.raw["task"]) if "task" in self.raw else None
        if stored is not None and stored != task:
            raise ValueError(f"prepared data {path} is task {stored}'s, not {task}'s")
        sides = "B" if self.spec.kind == "unconditional" else "AB"
        need = [f"{s}_{side}" for s in ("train", "val", "test") for side in sides]
        missing = [k for k in need if k not in self.raw]
        if missing:
            raise ValueError(f"prepared data {path} lacks arrays {missing}")
        self._cache: dict = {}

    def tensor(self, split: str, side: str):
        key = f"{split}_{side}"
        if key not in self._cache:
            if self.spec.kind == "unconditional" and side == "A":
                self._cache[key] = latents(self.spec.in_channels, split, self.n(split, "B"))
            else:
                self._cache[key] = _Rows(self.raw[key], self.spec, side)
        return self._cache[key]

    def n(self, split: str, side: str = "A") -> int:
        if self.spec.kind == "unconditional":
            side = "B"   # one latent per real image of the split
        return len(self.raw[f"{split}_{side}"])

    def batch_indices(self, gen, batch: int, split="train", side="A"):
        import torch

        return torch.randint(0, self.n(split, side), (batch,), generator=gen, device="cpu")

    def real_u8(self, split: str, side: str = "B") -> np.ndarray:
        return self.raw[f"{split}_{side}"]

    def labels(self, split: str) -> np.ndarray:
        """The label maps of a labels -> image task (its A side)."""
        if self.spec.backend != "miou_segmenter":
            raise ValueError(f"task {self.spec.id} has no label maps")
        return self.raw[f"{split}_A"]


class _Rows:
    """``rows[idx]`` -> ``to_tensor`` of those uint8 rows only, converted when indexed. Equal to converting the
    whole split and indexing it (values and strides; tested), without the up-front cost per job: the
    one-hot label maps of fmnist_scenes' 12,000 training scenes took 2.8 s, most of a short job's work."""

    def __init__(self, raw: np.ndarray, spec: TaskSpec, side: str):
        self.raw, self.spec, self.side = raw, spec, side

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, idx):
        if not isinstance(idx, slice):
            idx = np.asarray(idx.cpu() if hasattr(idx, "cpu") else idx)
            if idx.ndim == 0:   # one row (an int, a 0-d tensor): without its batch dimension
                return self[idx.reshape(1)][0]
        return to_tensor(self.raw[idx], self.spec, self.side)


def open_task_data(path, task: str, cfg: dict | None = None, seed: int = 0):
    """A task's prepared data: the npz (mini) or the image index of a real dataset (paper; with the
    preset's ``data`` augmentation settings)."""
    spec = get_task(task)
    if spec.scale == "mini":
        return TaskData(path, task)
    from ..config import resolve
    from .folders import FolderTaskData

    d = (cfg or resolve(task))["data"]
    return FolderTaskData(path, task, d["load_size"], d["crop_size"], d["flip"], seed)

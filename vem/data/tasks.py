"""The tasks: the paper's four image-to-image tasks and their Fashion-MNIST analogues.

Mini tasks (embedded suite, 32x32 grayscale, real Fashion-MNIST images only):

================================  ==================  =========================================================
task id                           stands for          construction
================================  ==================  =========================================================
fmnist_edges2shoes                Edges -> Shoes      Canny edges (sigma 1) of sandals / sneakers / ankle boots
                                                      -> the photo; paired; FD-FMNIST vs real test footwear
fmnist_scenes                     Cityscapes          label map (6 classes) -> scene of 2x2 real items shrunk to
                                                      16x16; paired; mIoU of a segmenter trained on real scenes
fmnist_sneaker2boot               Horse -> Zebra      sneaker -> ankle boot, unpaired; FD vs real boots
fmnist_pullover2coat              Summer -> Winter    pullover -> coat, unpaired; FD vs real coats
fmnist_uncond                     CelebA (SAGAN)      unconditional: z ~ N(0, I) (128-d) -> any Fashion-MNIST
                                                      item; FD vs all real test images
fmnist_uncond_sg2                 FFHQ (StyleGAN2)    the same data and latents; its Original is a StyleGAN2
================================  ==================  =========================================================

Unconditional tasks (kind ``unconditional``): the generator's input is a latent z of ``in_channels`` (z_dim)
x 1 x 1. The A side of a split is a fixed pool of latents, one per real image of the split, drawn from a
seeded stream per split (:func:`latents`): training draws batch indices into the train pool from the run's
seeded batch generator (so a run resumes exactly, and CRD has a per-sample index); every model is scored on
the same test latents (Figure 3's "same z"). The B side holds the real images.

Splits: train/test follow Fashion-MNIST's own split. A fixed part of *train* is held out as ``val``
(checkpoint selection, learning curves, tuning); nothing from test reaches training.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SUPER_CLASSES = ["background", "top", "trouser", "dress", "footwear", "bag"]
# Fashion-MNIST class -> super-class (tops merged: T-shirt, pullover, coat, shirt are confused at 16 px)
FMNIST_TO_SUPER = np.array([1, 2, 1, 3, 1, 4, 1, 4, 5, 4], dtype=np.uint8)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    id: str
    scale: str            # "mini" or "paper": numbers of different scales never share a table block
    paper_task: str       # the paper task this one stands for
    kind: str             # "paired" (pix2pix), "unpaired" (CycleGAN) or "unconditional" (z -> image)
    metric: str           # "fd" (lower is better) or "miou" (higher is better)
    backend: str          # the metric backend scoring it (vem.eval.backends): fd_fmnist, miou_segmenter, ...
    in_channels: int      # the input's channels; an unconditional task's latent size z_dim
    out_channels: int
    size: int
    description: str
    # training inputs (the A side of *our* train split; an unconditional task's train latents): for a mini task
    # what build_task makes of Fashion-MNIST (6,000 train images per class, 1/12 held out as val), for a paper
    # task that of the standard archive less the val hold-out (vem.data.folders) - what the dry run checks
    # counts against (CRD's memory bank); a job checks the real count
    train_inputs: int = 0

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "miou"

    @property
    def input_size(self) -> int:
        """The spatial size of the generator's input: 1 for a latent z (z_dim x 1 x 1), else ``size``."""
        return 1 if self.kind == "unconditional" else self.size


TASKS: dict[str, TaskSpec] = {t.id: t for t in [
    TaskSpec("fmnist_edges2shoes", "mini", "edges2shoes", "paired", "fd", "fd_fmnist", 1, 1, 32,
             "Canny edges of Fashion-MNIST footwear (sandal, sneaker, ankle boot) -> image", 16500),
    TaskSpec("fmnist_scenes", "mini", "cityscapes", "paired", "miou", "miou_segmenter", len(SUPER_CLASSES), 1, 32,
             "6-class label map -> 2x2 scene of real Fashion-MNIST items", 12000),
    TaskSpec("fmnist_sneaker2boot", "mini", "horse2zebra", "unpaired", "fd", "fd_fmnist", 1, 1, 32,
             "sneaker -> ankle boot (unpaired)", 5500),
    TaskSpec("fmnist_pullover2coat", "mini", "summer2winter", "unpaired", "fd", "fd_fmnist", 1, 1, 32,
             "pullover -> coat (unpaired)", 5500),
    TaskSpec("fmnist_uncond", "mini", "celeba", "unconditional", "fd", "fd_fmnist", 128, 1, 32,
             "z ~ N(0, I) -> a Fashion-MNIST item (unconditional, all classes)", 55000),
    TaskSpec("fmnist_uncond_sg2", "mini", "ffhq", "unconditional", "fd", "fd_fmnist", 128, 1, 32,
             "z ~ N(0, I) -> a Fashion-MNIST item (unconditional, all classes), StyleGAN2's task", 55000),
    TaskSpec("edges2shoes", "paper", "edges2shoes", "paired", "fd", "fid_inception", 3, 3, 256, "edges2shoes-r, AtoB",
             45929),
    TaskSpec("cityscapes", "paper", "cityscapes", "paired", "miou", "miou_drn", 3, 3, 256,
             "Cityscapes labels -> photo (BtoA)", 2775),
    TaskSpec("horse2zebra", "paper", "horse2zebra", "unpaired", "fd", "fid_inception", 3, 3, 256, "horse -> zebra",
             947),
    TaskSpec("summer2winter", "paper", "summer2winter", "unpaired", "fd", "fid_inception", 3, 3, 256,
             "summer2winter_yosemite, summer -> winter", 1111),
    TaskSpec("celeba", "paper", "celeba", "unconditional", "fd", "fid_inception", 128, 3, 64,
             "CelebA faces 64x64 (CenterCrop 160 -> Resize 64), unconditional SAGAN", 160770),
    TaskSpec("ffhq", "paper", "ffhq", "unconditional", "fd", "fid_inception", 512, 3, 256,
             "FFHQ faces 256x256 (resized), unconditional StyleGAN2", 58000),
]}

MINI_TASKS = [t for t, s in TASKS.items() if s.scale == "mini"]

VAL_FRACTION = 1 / 12
LATENT_SEEDS = {"train": 101, "val": 102, "test": 103}   # the fixed latent pools of unconditional tasks


def latents(z_dim: int, split: str, n: int):
    """The latent pool of a split of an unconditional task: ``n`` x z_dim x 1 x 1 draws of N(0, I) from the
    split's fixed seed (the same for every model, every run and both scales)."""
    import torch

    g = torch.Generator().manual_seed(LATENT_SEEDS[split])
    return torch.randn(n, z_dim, 1, 1, generator=g, device="cpu")


def get_task(task_id: str) -> TaskSpec:
    if task_id not in TASKS:
        raise ValueError(f"unknown task {task_id!r}; choose one of {sorted(TASKS)}")
    return TASKS[task_id]


def _pad32(x: np.ndarray) -> np.ndarray:
    return np.pad(x, ((0, 0), (2, 2), (2, 2)))


def _split_val(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    n_val = max(1, int(round(n * VAL_FRACTION)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def canny_edges(images: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    from skimage.feature import canny

    out = np.zeros_like(images)
    for i, im in enumerate(images):
        out[i] = canny(im.astype(np.float32) / 255.0, sigma=sigma).astype(np.uint8) * 255
    return out


def _shrink(items: np.ndarray, size: int = 16) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(items.astype(np.float32)).unsqueeze(1)
    t = F.interpolate(t, size=(size, size), mode="area")
    return t.squeeze(1).round().clamp(0, 255).numpy().astype(np.uint8)


def compose_scenes(items: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator,
                   p_item: float = 0.85, ink: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 32x32 scenes of a 2x2 grid of 16x16 items; label = super-class where ink > ``ink``."""
    small = _shrink(items)
    scenes = np.zeros((n, 32, 32), np.uint8)
    maps = np.zeros((n, 32, 32), np.uint8)
    order = rng.permutation(len(items))
    k = 0
    for i in range(n):
        for cy in range(2):
            for cx in range(2):
                if rng.random() > p_item:
                    continue
                j = order[k % len(order)]
                k += 1
                patch = small[j]
                ys, xs = slice(16 * cy, 16 * cy + 16), slice(16 * cx, 16 * cx + 16)
                scenes[i, ys, xs] = patch
                maps[i, ys, xs] = np.where(patch > ink, FMNIST_TO_SUPER[labels[j]], 0)
    return maps, scenes


def build_task(task_id: str, fm: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays ``{train,val,test}_{A,B}`` (uint8, N x 32 x 32). For ``fmnist_scenes`` A holds class ids; an
    unconditional task has B arrays only (its A side is the latent pools, :func:`latents`)."""
    spec = get_task(task_id)
    if spec.scale != "mini":
        raise ValueError(f"task {task_id!r} is a paper-scale task; its data come from the paper preset's rules")
    rng = np.random.default_rng(seed)
    tr_x, tr_y, te_x, te_y = fm["train_images"], fm["train_labels"], fm["test_images"], fm["test_labels"]
    out: dict[str, np.ndarray] = {}
    if task_id == "fmnist_edges2shoes":
        sel_tr = np.isin(tr_y, [5, 7, 9])
        sel_te = np.isin(te_y, [5, 7, 9])
        b_tr, b_te = _pad32(tr_x[sel_tr]), _pad32(te_x[sel_te])
        tr_idx, val_idx = _split_val(len(b_tr), rng)
        for split, b in (("train", b_tr[tr_idx]), ("val", b_tr[val_idx]), ("test", b_te)):
            out[f"{split}_A"], out[f"{split}_B"] = canny_edges(b), b
    elif task_id in ("fmnist_uncond", "fmnist_uncond_sg2"):
        x = _pad32(tr_x)
        tr_idx, val_idx = _split_val(len(x), rng)
        out["train_B"], out["val_B"], out["test_B"] = x[tr_idx], x[val_idx], _pad32(te_x)
    elif task_id == "fmnist_scenes":
        tr_idx, val_idx = _split_val(len(tr_x), rng)
        n = {"train": 12000, "val": 1000, "test": 2000}
        for split, (x, y) in (("train", (tr_x[tr_idx], tr_y[tr_idx])), ("val", (tr_x[val_idx], tr_y[val_idx])),
                              ("test", (te_x, te_y))):
            out[f"{split}_A"], out[f"{split}_B"] = compose_scenes(x, y, n[split], rng)
    else:
        a_cls, b_cls = {"fmnist_sneaker2boot": (7, 9), "fmnist_pullover2coat": (2, 4)}[task_id]
        for side, cls in (("A", a_cls), ("B", b_cls)):
            x = _pad32(tr_x[tr_y == cls])
            tr_idx, val_idx = _split_val(len(x), rng)
            out[f"train_{side}"], out[f"val_{side}"] = x[tr_idx], x[val_idx]
            out[f"test_{side}"] = _pad32(te_x[te_y == cls])
    return out


def to_tensor(x: np.ndarray, spec: TaskSpec, side: str):
    """uint8 arrays -> float tensors in [-1, 1] (images) or one-hot maps (scene label inputs)."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x))
    if side == "A" and spec.id == "fmnist_scenes":
        return torch.nn.functional.one_hot(t.long(), len(SUPER_CLASSES)).permute(0, 3, 1, 2).float() * 2 - 1
    return t.float().unsqueeze(1) / 127.5 - 1.0


def to_uint8(x) -> np.ndarray:
    """[-1, 1] float tensor (N, C, H, W) -> uint8 (N, H, W) for C = 1, (N, H, W, C) otherwise, as pix2pix /
    GAN-Compression / OMGD's ``tensor2im``: (x + 1) / 2 * 255 in float32, clipped to [0, 255], then
    *truncated* (``astype(uint8)``), as the images are quantised before any metric."""
    import torch

    u8 = ((x.detach().float() + 1) / 2 * 255).clamp(0, 255).to(torch.uint8)   # float -> uint8 truncates
    u8 = u8.squeeze(1) if u8.shape[1] == 1 else u8.permute(0, 2, 3, 1)
    return u8.cpu().numpy()

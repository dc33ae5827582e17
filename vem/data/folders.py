"""Paper-scale tasks from the extracted datasets: an index of image files per split, loaded lazily.

``prepare_paper_task`` turns ``resources/datasets/<dataset>/`` into ``resources/data/<task>.json``:

==============  =====================  ======================================================================
task            dataset folder         splits (``val`` = a fixed held-out part of *train*; ``test`` = eval set)
==============  =====================  ======================================================================
edges2shoes     edges2shoes-r          train/ -> train + val (2,048 held out, as GAN-Compression's T-PAMI
                                       ``train2``); val/ (2,048) -> test. AB side-by-side JPEGs, AtoB
cityscapes      cityscapes             gtFine/*_color + leftImg8bit photos resized to 256x256 and written as
                                       AB PNGs (A = photo, B = colour labels; pix2pix's preparation); BtoA
                                       (labels -> photo); train -> train + val (200 held out); val (500) ->
                                       test, with the original gtFine labelIds for mIoU
horse2zebra     horse2zebra            trainA/trainB -> train + val (120 per side held out); testA/testB
summer2winter   summer2winter_yosemite same layout
celeba          celeba                 img_align_celeba/ by CelebA's official partition (file numbers):
                                       000001-162770 train -> train + val (2,000 held out); 162771-182637
                                       (CelebA's val, GCC's ``val`` folder of real statistics) -> test.
                                       Unconditional: the B side holds the images; GCC's generated count
                                       floor(0.1 x 162,770) + 1 = 16,278 test latents (``n_latents``)
ffhq            ffhq                   images1024x1024/ (or thumbnails128x128/) by FFHQ's numbering: 00000-59999
                                       train -> train + val (2,000 held out); 60000-69999 (FFHQ's val) -> test.
                                       Resized once to 256x256 (Pillow bilinear, as CAGC's torchvision
                                       Resize(256)) into resources/data/ffhq/; 50,000 test latents (CAGC's FID
                                       sample count), scored against the 10,000 test images
==============  =====================  ======================================================================

CelebA images are center-cropped to 160 then resized to ``crop_size`` (64; GCC's CenterCrop(160) ->
Resize(64), bilinear), for training and evaluation alike (no flip, as GCC).

Training batches: resize to ``load_size``, random ``crop_size`` crop, random horizontal flip (pix2pix /
CycleGAN's ``resize_and_crop``); evaluation splits are resized to ``crop_size`` only. The crop/flip of
a batch is a function of (seed, the batch's indices) - no hidden RNG state, so A and B of a pair get
the same crop and a resumed run sees the same augmentation.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import torch

from .tasks import get_task, latents

VAL_HOLDOUT = {"edges2shoes": 2048, "cityscapes": 200, "horse2zebra": 120, "summer2winter": 120, "celeba": 2000,
               "ffhq": 2000}
FFHQ_TRAIN_LAST, FFHQ_SIZE, FFHQ_FID_SAMPLES = 59999, 256, 50000   # FFHQ's train/val split by file number
CELEBA_TRAIN_LAST, CELEBA_VAL_LAST = 162770, 182637     # CelebA's list_eval_partition.txt by file number
CENTER_CROP = {"celeba": 160}
IMAGE_EXT = (".jpg", ".jpeg", ".png")


def _images(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {folder} does not exist")
    files = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXT)
    if not files:
        raise ValueError(f"dataset folder {folder} holds no images")
    return files


def _holdout(files: list[str], n_val: int, seed: int) -> tuple[list[str], list[str]]:
    if len(files) <= n_val:
        n_val = max(1, len(files) // 12)
    perm = np.random.default_rng(seed).permutation(len(files))
    val = sorted(files[i] for i in perm[:n_val])
    keep = set(val)
    return [f for f in files if f not in keep], val


def _cityscapes_pairs(root: Path, split: str, out: Path, size: int = 256) -> tuple[list[str], list[str]]:
    """pix2pix's Cityscapes preparation (``prepare_cityscapes_dataset.py``): photo (A) | colour labels (B), each
    converted to RGB and resized to size x size with Pillow's default filter (bicubic), side by side, stored as
    JPEG at quality 100 without chroma subsampling."""
    from PIL import Image

    photos = sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
    if not photos:
        raise ValueError(f"cityscapes: no leftImg8bit/{split}/*/*_leftImg8bit.png under {root}")
    out.mkdir(parents=True, exist_ok=True)
    pairs, labels = [], []
    for ph in photos:
        stem = ph.name[: -len("_leftImg8bit.png")]
        gt = root / "gtFine" / split / ph.parent.name
        color, ids = gt / f"{stem}_gtFine_color.png", gt / f"{stem}_gtFine_labelIds.png"
        for f in (color, ids):
            if not f.is_file():
                raise FileNotFoundError(f"cityscapes: {f} is missing (needed for {ph.name})")
        dst = out / f"{stem}.jpg"
        if not dst.is_file():
            a = Image.open(ph).convert("RGB").resize((size, size), Image.BICUBIC)
            b = Image.open(color).convert("RGB").resize((size, size), Image.BICUBIC)
            ab = Image.new("RGB", (2 * size, size))
            ab.paste(a, (0, 0))
            ab.paste(b, (size, 0))
            tmp = dst.with_name(f".{dst.name}.tmp")
            ab.save(tmp, format="JPEG", quality=100, subsampling=0)
            tmp.replace(dst)
        pairs.append(str(dst))
        labels.append(str(ids))
    return pairs, labels


def _ffhq_images(root: Path, out: Path, size: int = FFHQ_SIZE, log=print) -> tuple[list[str], str]:
    """The FFHQ images resized to size x size (Pillow bilinear) as PNGs under ``out``, by file number, and the
    folder they came from (the 1024 px images, else the 128 px thumbnails - upsampled, not the paper's data)."""
    from PIL import Image

    for source in ("images1024x1024", "thumbnails128x128"):
        if (root / source).is_dir():
            break
    else:
        raise FileNotFoundError(f"ffhq: {root} holds neither images1024x1024/ nor thumbnails128x128/")
    files = sorted(_images(root / source), key=lambda f: int(Path(f).stem))
    out.mkdir(parents=True, exist_ok=True)
    res = []
    for n, f in enumerate(files):
        dst = out / f"{int(Path(f).stem):05d}.png"
        if not dst.is_file():
            im = Image.open(f).convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            tmp = dst.with_name(f".{dst.name}.tmp")
            im.save(tmp, format="PNG")
            tmp.replace(dst)
        res.append(str(dst))
        if (n + 1) % 5000 == 0 or n + 1 == len(files):
            log(f"ffhq: {n + 1}/{len(files)} images at {size} px")
    if source != "images1024x1024":
        log(f"ffhq: WARNING built from {source} (upsampled to {size} px): not the paper's data")
    return res, source


def prepare_paper_task(task: str, dataset_root, out_json, seed: int = 0, log=print) -> dict:
    """Write the task's index (JSON) from an extracted dataset; returns it."""
    spec = get_task(task)
    if spec.scale != "paper":
        raise ValueError(f"task {task!r} is a mini task; build it with prepare-data")
    root, out_json = Path(dataset_root), Path(out_json)
    if not (root / ".complete").is_file():
        raise FileNotFoundError(f"dataset {root} is not complete (no .complete marker); run the paper_dataset rule")
    idx: dict = {"schema": "vem-paper-task/1", "task": task, "dataset": str(root), "seed": seed, "splits": {},
                 "holdout": VAL_HOLDOUT[task]}
    if task in ("edges2shoes", "cityscapes"):
        if task == "edges2shoes":
            train, test, test_labels = _images(root / "train"), _images(root / "val"), None
            idx["direction"] = "AtoB"
        else:
            pairs_dir = out_json.with_suffix("")  # resources/data/cityscapes/
            train, train_labels = _cityscapes_pairs(root, "train", pairs_dir / "train")
            test, test_labels = _cityscapes_pairs(root, "val", pairs_dir / "val")
            idx["direction"] = "BtoA"
            lab_of = dict(zip(train, train_labels))
        tr, va = _holdout(train, VAL_HOLDOUT[task], seed)
        idx["splits"] = {"train": {"AB": tr}, "val": {"AB": va}, "test": {"AB": test}}
        if test_labels is not None:
            idx["labels"] = {"val": [lab_of[f] for f in va], "test": test_labels}
    elif task == "celeba":
        files = _images(root / "img_align_celeba")
        number = {f: int(Path(f).stem) for f in files}
        train = [f for f in files if number[f] <= CELEBA_TRAIN_LAST]
        test = [f for f in files if CELEBA_TRAIN_LAST < number[f] <= CELEBA_VAL_LAST]
        tr, va = _holdout(train, VAL_HOLDOUT[task], seed)
        idx["splits"] = {"train": {"B": tr}, "val": {"B": va}, "test": {"B": test}}
        # GCC scores floor(0.1 x N_train) + 1 generated images against its val statistics
        idx["n_latents"] = {"train": len(tr), "val": len(va), "test": len(train) // 10 + 1}
    elif task == "ffhq":
        files, idx["source"] = _ffhq_images(root, out_json.with_suffix(""), log=log)
        train = [f for f in files if int(Path(f).stem) <= FFHQ_TRAIN_LAST]
        test = [f for f in files if int(Path(f).stem) > FFHQ_TRAIN_LAST]
        if not train or not test:
            raise ValueError(f"ffhq: {root} needs images on both sides of {FFHQ_TRAIN_LAST} (train) / "
                             f"{FFHQ_TRAIN_LAST + 1}- (test), got {len(train)} / {len(test)}")
        tr, va = _holdout(train, VAL_HOLDOUT[task], seed)
        idx["splits"] = {"train": {"B": tr}, "val": {"B": va}, "test": {"B": test}}
        idx["n_latents"] = {"train": len(tr), "val": len(va), "test": FFHQ_FID_SAMPLES}
    else:
        idx["direction"] = "AtoB"
        splits: dict = {"train": {}, "val": {}, "test": {}}
        for side in "AB":
            tr, va = _holdout(_images(root / f"train{side}"), VAL_HOLDOUT[task], seed + (side == "B"))
            splits["train"][side], splits["val"][side] = tr, va
            splits["test"][side] = _images(root / f"test{side}")
        idx["splits"] = splits
    from ..utils import atomic_write_json

    atomic_write_json(out_json, idx)
    for split, sides in idx["splits"].items():
        log(f"{task} {split}: " + ", ".join(f"{k} {len(v)}" for k, v in sides.items()))
    return idx


# --------------------------------------------------------------------------------------------------
class _Images:
    """``images[idx]`` -> float tensor (len(idx), 3, crop, crop) in [-1, 1], loaded on demand."""

    def __init__(self, data: FolderTaskData, split: str, side: str):
        self.data, self.split, self.side = data, split, side

    def __len__(self):
        return self.data.n(self.split, self.side)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            idx = torch.arange(len(self), device="cpu")[idx]
        idx = torch.as_tensor(idx, device="cpu").reshape(-1)   # read one by one: no device sync per index
        from ..utils import default_device

        x = torch.stack([self.data.load(self.split, self.side, int(i), int(k), idx) for k, i in enumerate(idx)])
        return x.to(default_device())


class FolderTaskData:
    """The paper-scale counterpart of ``vem.data.taskdata.TaskData`` (same interface)."""

    def __init__(self, path, task: str, load_size: int = 286, crop_size: int = 256, flip: bool = True,
                 seed: int = 0):
        self.spec = get_task(task)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"prepared data {path} does not exist; run the prepare_data rule")
        try:
            self.index = json.loads(path.read_text())
        except ValueError as e:
            raise ValueError(f"prepared data {path} is not a task index: {e}") from None
        if self.index.get("schema") != "vem-paper-task/1" or self.index.get("task") != task:
            raise ValueError(f"prepared data {path} is not the index of task {task}")
        if crop_size > load_size:
            raise ValueError(f"crop_size {crop_size} exceeds load_size {load_size}")
        self.load_size, self.crop_size, self.flip, self.seed = load_size, crop_size, flip, seed
        self.paired = "AB" in self.index["splits"]["train"]
        self.unconditional = self.spec.kind == "unconditional"
        self._latents: dict = {}

    def files(self, split: str, side: str) -> list[str]:
        sides = self.index["splits"][split]
        return sides["AB"] if self.paired else sides[side]

    def n(self, split: str, side: str = "A") -> int:
        if self.unconditional and side == "A":   # the latent pool (GCC's count of generated test images)
            return int(self.index.get("n_latents", {}).get(split, self.n(split, "B")))
        return len(self.files(split, side))

    def tensor(self, split: str, side: str):
        if self.unconditional and side == "A":
            if split not in self._latents:
                from ..utils import default_device

                # drawn on the CPU (a seeded CPU stream), kept where the models are
                self._latents[split] = latents(self.spec.in_channels, split, self.n(split, "A")).to(default_device())
            return self._latents[split]
        return _Images(self, split, side)

    def batch_indices(self, gen: torch.Generator, batch: int, split="train", side="A") -> torch.Tensor:
        return torch.randint(0, self.n(split, side), (batch,), generator=gen, device="cpu")

    def labels(self, split: str) -> list[str]:
        if "labels" not in self.index or split not in self.index["labels"]:
            raise ValueError(f"task {self.spec.id} has no label maps for split {split}")
        return self.index["labels"][split]

    def real_u8(self, split: str, side: str = "B"):
        """The real images of a split as evaluation sees them (uint8, H x W x 3), lazily, in index order."""
        return (self.eval_u8(split, side, i) for i in range(self.n(split, side)))

    def load_u8(self, split: str, side: str, i: int) -> np.ndarray:
        """The image as stored (H, W, 3) uint8, the pair half picked by the task's direction."""
        from PIL import Image

        im = Image.open(self.files(split, side)[i]).convert("RGB")
        if self.paired:
            w, h = im.size
            half = side if self.index["direction"] == "AtoB" else {"A": "B", "B": "A"}[side]
            im = im.crop((0, 0, w // 2, h) if half == "A" else (w // 2, 0, w, h))
        return np.asarray(im)

    def eval_u8(self, split: str, side: str, i: int) -> np.ndarray:
        """The image as evaluation sees it: resized to crop_size (no crop, no flip), uint8 (H, W, 3)."""
        from PIL import Image

        im = self.load_u8(split, side, i)
        crop = CENTER_CROP.get(self.spec.id)
        if crop:   # torchvision CenterCrop: offsets rounded as int(round((size - crop) / 2))
            h, w = im.shape[:2]
            top, left = int(round((h - crop) / 2)), int(round((w - crop) / 2))
            im = im[top:top + crop, left:left + crop]
            return np.asarray(Image.fromarray(im).resize((self.crop_size, self.crop_size), Image.BILINEAR))
        if im.shape[:2] != (self.crop_size, self.crop_size):
            im = np.asarray(Image.fromarray(im).resize((self.crop_size, self.crop_size), Image.BICUBIC))
        return im

    def load(self, split: str, side: str, i: int, k: int = 0, batch_idx=None) -> torch.Tensor:
        from PIL import Image

        if split != "train" or self.spec.id in CENTER_CROP:   # CelebA: GCC trains on the evaluation transform
            return torch.from_numpy(self.eval_u8(split, side, i).astype(np.float32)).permute(2, 0, 1) / 127.5 - 1.0
        im = Image.fromarray(self.load_u8(split, side, i))
        key = json.dumps([self.seed, [int(j) for j in batch_idx] if batch_idx is not None else [i], k])
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        im = im.resize((self.load_size, self.load_size), Image.BICUBIC)
        x0, y0 = rng.integers(0, self.load_size - self.crop_size + 1, size=2)
        im = im.crop((int(x0), int(y0), int(x0) + self.crop_size, int(y0) + self.crop_size))
        if self.flip and rng.random() < 0.5:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        x = torch.from_numpy(np.asarray(im, dtype=np.float32).copy()).permute(2, 0, 1)
        return x / 127.5 - 1.0

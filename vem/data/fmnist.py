"""Fashion-MNIST from local IDX files (Debian's ``dataset-fashion-mnist``) - nothing downloads here.

Lookup order: an explicit directory, ``$FMNIST_DIR``, ``/usr/share/datasets/fashion-mnist``. Files may
be gzipped (Debian) or plain (torchvision's ``raw/`` folder). ``fetch`` copies them into the project's
``resources/`` and, only when asked (``download=True``), falls back to torchvision's download.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import zlib
from pathlib import Path

import numpy as np

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot"]

MISSING_HELP = ("install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), point "
                "$FMNIST_DIR at a folder with the four IDX files, or run `python -m vem fetch-fmnist "
                "--download` once with network access")


class DataMissingError(FileNotFoundError):
    pass


def _candidates(directory: str | os.PathLike | None) -> list[Path]:
    dirs = []
    if directory:
        dirs.append(Path(directory))
    if os.environ.get("FMNIST_DIR"):
        dirs.append(Path(os.environ["FMNIST_DIR"]))
    dirs.append(DEBIAN_DIR)
    return dirs


def find_file(key: str, directory=None) -> Path:
    base = FILES[key]
    for d in _candidates(directory):
        for name in (base + ".gz", base, f"FashionMNIST/raw/{base}"):
            p = d / name
            if p.is_file():
                return p
    looked = ", ".join(map(str, _candidates(directory)))
    raise DataMissingError(f"Fashion-MNIST file {base}.gz not found (looked in {looked}); " + MISSING_HELP)


def read_idx(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":  # gzip magic
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:  # zlib.error: bad deflate data
            raise ValueError(f"{path}: corrupt gzip file ({e})") from None
    if len(data) < 8:
        raise ValueError(f"{path}: not an IDX file (only {len(data)} bytes)")
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    if (magic >> 8) != 0x08 or ndim not in (1, 3):
        raise ValueError(f"{path}: bad IDX magic number {magic:#x}")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(data) - offset != expected:
        raise ValueError(f"{path}: truncated IDX file ({len(data) - offset} of {expected} bytes)")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims).copy()  # writable


def load(directory=None) -> dict[str, np.ndarray]:
    """Returns train/test images (N, 28, 28) uint8 and labels (N,) uint8."""
    out = {k: read_idx(find_file(k, directory)) for k in FILES}
    for split in ("train", "test"):
        if len(out[f"{split}_images"]) != len(out[f"{split}_labels"]):
            raise ValueError(f"Fashion-MNIST {split}: {len(out[f'{split}_images'])} images but "
                             f"{len(out[f'{split}_labels'])} labels")
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(out_dir: str | os.PathLike, source: str | None = None, download: bool = False) -> dict[str, str]:
    """Copy the four files into ``out_dir`` (gzipped); returns {file: sha256}. Every source file is
    validated (gzip stream, IDX header, size) before anything is written; each copy lands under a
    temporary name and is renamed, so a failure leaves no file that looks complete."""
    out = Path(out_dir)
    try:
        paths = {k: find_file(k, source) for k in FILES}
    except DataMissingError:
        if not download:
            raise
        from torchvision.datasets import FashionMNIST

        tmp = out / "_download"
        FashionMNIST(str(tmp), train=True, download=True)
        FashionMNIST(str(tmp), train=False, download=True)
        paths = {k: find_file(k, tmp) for k in FILES}
    for src in paths.values():
        read_idx(src)
    out.mkdir(parents=True, exist_ok=True)
    digests = {}
    for key, src in paths.items():
        dst = out / (FILES[key] + ".gz")
        tmp_dst = dst.with_name(dst.name + ".tmp")
        try:
            if str(src).endswith(".gz"):
                shutil.copyfile(src, tmp_dst)
            else:
                with open(src, "rb") as fi, gzip.open(tmp_dst, "wb") as fo:
                    shutil.copyfileobj(fi, fo)
            read_idx(tmp_dst)  # the copy itself, before it looks complete
            os.replace(tmp_dst, dst)
        finally:
            tmp_dst.unlink(missing_ok=True)
        digests[dst.name] = sha256(dst)
    shutil.rmtree(out / "_download", ignore_errors=True)
    return digests

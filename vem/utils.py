"""Small shared helpers: seeding, atomic writes, checkpoints, versions, progress."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import random
import sys
import tempfile
from pathlib import Path

import numpy as np


def seed_all(seed: int, threads: int | None = None) -> None:
    # cuBLAS needs a fixed workspace for deterministic GEMMs on GPUs (read when CUDA initialises)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # torch.use_deterministic_algorithms would also set torch._inductor.config.deterministic, importing the
    # inductor and dynamo (~1 s per job); nothing here compiles, so only ATen's flag is set (same effect)
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is not None:
        setter(True, warn_only=True)
    else:
        torch.use_deterministic_algorithms(True, warn_only=True)
    # deterministic mode would also NaN-fill every fresh allocation: costly on CPU and not needed here
    torch.utils.deterministic.fill_uninitialized_memory = False
    if threads:
        torch.set_num_threads(int(threads))


def rng_devices() -> list:
    """``torch.random.fork_rng(devices=...)``: the CUDA device a GPU run draws on (its stream is forked
    too), none on the CPU (forking every visible GPU's stream would initialise CUDA for nothing)."""
    import torch

    dev = default_device()
    return [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []


def default_device():
    """torch's default device (cuda after ``--device cuda``; cpu otherwise)."""
    import torch

    return torch.get_default_device() if hasattr(torch, "get_default_device") else torch.device("cpu")


def _tmp_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path, data: bytes) -> None:
    path = Path(path)
    tmp = _tmp_path(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def atomic_save_torch(path, obj) -> None:
    """torch.save to a temporary file, then rename. Saved through a file object: torch names the archive
    after a *path* it is given (the temporary file's random name would end up inside the zip), so the same
    object gives the same bytes."""
    import torch

    path = Path(path)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_save_npz(path, **arrays) -> None:
    path = Path(path)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path):
    """Load a checkpoint safely (``weights_only=True``); a clear error for a missing or corrupt file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise ValueError(f"checkpoint {path} is corrupt or not a weights-only checkpoint: "
                         f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def file_sha256(path, n: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def source_commit(where: str | None = None) -> str:
    """The commit of the checkout holding ``where`` (default: this package) + "-dirty" with uncommitted changes
    to tracked files; "unknown" outside git (an installed wheel)."""
    import subprocess

    cwd = where or str(Path(__file__).resolve().parent)
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             timeout=10, cwd=cwd).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10, cwd=cwd).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev + ("-dirty" if dirty else "")) if rev else "unknown"


def versions() -> dict:
    """The versions a metrics file records; read from the installed distributions' metadata, not by importing
    them (``import cleanfid`` pulls in torchvision and torch._dynamo: ~2 s per job)."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for mod, dist in (("torchvision", "torchvision"), ("scipy", "scipy"), ("cleanfid", "clean-fid"),
                      ("torchprofile", "torchprofile")):   # scipy: the FID sqrtm
        try:
            out[mod] = version(dist)
        except PackageNotFoundError:
            pass
    from . import __version__

    out["vem"] = __version__
    out["vem_commit"] = source_commit()
    return out


def progress(iterable, desc: str, total: int | None = None, initial: int = 0):
    """tqdm to stderr (the rule's log), a line every few percent when not on a terminal."""
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, initial=initial, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5 if tty else 5.0, ascii=not tty)

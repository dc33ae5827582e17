"""Inception FID through clean-fid with weights from a file the workflow provides - never a hidden download.

clean-fid fetches its networks itself: ``legacy_pytorch`` (pytorch-fid's weights, what the original
repositories used; paper-comparable) through ``torch.hub`` into ``$TORCH_HOME``, ``clean`` (its TorchScript
Inception) into ``/tmp``. Here the file comes from the ``metric_weights`` rule (download or a user path)
and is exposed to clean-fid through a private hub folder / a private directory, so clean-fid finds it and
has nothing to download; a missing file is an error that says how to provide it.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..data.paper_datasets import FID_WEIGHTS, WEIGHTS

MODES = {mode: WEIGHTS[name]["file"] for mode, name in FID_WEIGHTS.items()}
CONFIG_KEYS = {mode: WEIGHTS[name]["config_key"] for mode, name in FID_WEIGHTS.items()}


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # filesystems without symlinks
        import shutil

        shutil.copyfile(src, dst)


def require_weights(mode: str, weights) -> Path:
    """``weights`` as a Path, after checking the mode and that the file exists (one-line errors saying how
    to provide it) - cheap, so callers run it before any expensive work."""
    if mode not in MODES:
        raise ValueError(f"unknown FID mode {mode!r}; choose one of {sorted(MODES)}")
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(
            f"Inception weights {weights} ({MODES[mode]}) are missing: run `snakemake resources/weights/{MODES[mode]}` "
            f"(downloads) or set {CONFIG_KEYS[mode]}: /path/to/{MODES[mode]} in the config (offline nodes)")
    return weights


def inception_extractor(mode: str, weights, device=None):
    """clean-fid's Inception feature function for ``mode`` (images in [0, 255], resized by clean-fid)."""
    device = device or torch.device("cpu")
    weights = require_weights(mode, weights)
    # the weights are read while the network is built; the folder exposing them is gone afterwards
    with tempfile.TemporaryDirectory(prefix="vem-inception-") as d:
        tmp = Path(d)
        if mode == "legacy_pytorch":
            from cleanfid.inception_pytorch import InceptionV3

            _link(weights, tmp / "hub" / "checkpoints" / MODES[mode])
            old = getattr(torch.hub, "_hub_dir", None)  # restore exactly: set_dir(get_dir()) would pin it
            torch.hub.set_dir(str(tmp / "hub"))
            try:
                model = InceptionV3(output_blocks=[3], resize_input=False).to(device).eval()
            finally:
                torch.hub._hub_dir = old
        else:
            from cleanfid.inception_torchscript import InceptionV3W

            _link(weights, tmp / MODES[mode])
            model = InceptionV3W(str(tmp), download=False, resize_inside=False).to(device).eval()
    if mode == "legacy_pytorch":
        return lambda x: model(x / 255)[0].squeeze(-1).squeeze(-1)
    return model


def zip_inception_features(images_zip, mode: str, weights, batch_size: int = 32, device=None) -> np.ndarray:
    """2048-d features of the PNGs in a zip (sorted names), resized the way ``mode`` prescribes."""
    from cleanfid import fid

    with zipfile.ZipFile(images_zip) as z:
        files = sorted(n for n in z.namelist() if n.endswith(".png"))
    if not files:
        raise ValueError(f"{images_zip} holds no PNG images")
    device = device or torch.device("cpu")
    model = inception_extractor(mode, weights, device)
    with torch.no_grad():
        return fid.get_files_features(files, model=model, num_workers=0, batch_size=batch_size, device=device,
                                      mode=mode, fdir=str(images_zip), verbose=False)

"""Generated and real images as uint8 PNGs in a zip: what every metric backend reads."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.tasks import to_uint8
from ..utils import default_device


def write_png_zip(images_u8, path) -> None:
    """Every image (an array or any iterable of uint8 HxW / HxWx3 arrays) as ``00000.png`` ... inside one
    zip (written to a temp name, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
        for i, im in enumerate(images_u8):
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="PNG")
            z.writestr(zipfile.ZipInfo(f"{i:05d}.png", date_time=(2020, 1, 1, 0, 0, 0)), buf.getvalue())
    os.replace(tmp, path)


def png_names(images_zip) -> list[str]:
    with zipfile.ZipFile(images_zip) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".png"))
    if not names:
        raise ValueError(f"{images_zip} holds no PNG images")
    return names


def read_zip_u8(images_zip, batch: int):
    """The PNGs of a zip (sorted names) as uint8 arrays, ``batch`` at a time."""
    names = png_names(images_zip)
    with zipfile.ZipFile(images_zip) as z:
        for i in range(0, len(names), batch):
            yield np.stack([np.asarray(Image.open(io.BytesIO(z.read(n)))) for n in names[i:i + batch]])


def batched_u8(images_u8, batch: int):
    """Any iterable of uint8 images, ``batch`` at a time, as ``read_zip_u8`` yields them from the zip the
    images would be written to (PNG is lossless: the same arrays, the same batches)."""
    buf = []
    for im in images_u8:
        buf.append(np.asarray(im))
        if len(buf) == batch:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


@torch.no_grad()
def generate_u8(G, data, split: str, n: int | None = None, batch: int = 256):
    """The generator's outputs on the first ``n`` (default: all) inputs of ``split`` as uint8 images, in
    index order (G in eval mode; its mode is restored afterwards)."""
    x = data.tensor(split, "A")
    n = len(x) if n is None else min(n, len(x))
    was = G.training
    G.eval()
    dev = default_device()
    try:
        for i in range(0, n, batch):
            yield from to_uint8(G(x[torch.arange(i, min(i + batch, n))].to(dev)))
    finally:
        G.train(was)


def sample_grid(images_zip, out_png, n: int = 64) -> None:
    with zipfile.ZipFile(images_zip) as z:
        names = sorted(z.namelist())[:n]
        ims = [np.array(Image.open(io.BytesIO(z.read(nm)))) for nm in names]
    side = int(np.ceil(np.sqrt(len(ims))))
    h, w = ims[0].shape[:2]
    grid = np.zeros((side * h, side * w) + ims[0].shape[2:], np.uint8)   # grayscale or RGB
    for i, im in enumerate(ims):
        grid[(i // side) * h:(i // side + 1) * h, (i % side) * w:(i % side + 1) * w] = im
    tmp = Path(out_png).with_name(f".{Path(out_png).name}.tmp.png")
    Image.fromarray(grid).save(tmp)
    os.replace(tmp, out_png)

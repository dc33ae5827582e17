"""Released full ("Original") generators imported as teacher checkpoints.

StyleGAN2 (CAGC's FFHQ-256 model) comes as a rosinality checkpoint (``g``, ``d``, ``g_ema``, optimiser
states, sometimes an ``args`` Namespace): ``g_ema`` becomes the Original (widths read from the shapes,
:func:`vem.models.stylegan2.from_rosinality`) and ``d`` its discriminator, which CAGC's retraining starts
from. Google Drive is its only host: the user gives the file (``weights: {cagc/stylegan2/ffhq256: PATH}``).

GAN-Compression publishes its full models (``pretrained/<model>/<task>/full/latest_net_G.pth``, now on
HuggingFace; the hanlab.mit.edu URLs in its scripts are dead). They are pix2pix/CycleGAN ResNet
generators (``resnet_9blocks``, ngf 64) saved as flat ``model.<i>...`` state dicts. ``import_teacher``
downloads one (or copies a user-given file), checks its sha256 (pinned where known; otherwise computed
and recorded with a warning), maps the keys onto :class:`vem.models.generators.ResnetGenerator` (the norm
layer is read from the keys; GAN-Compression's rate-0 dropout slot in each block is no dropout) and writes a
teacher checkpoint the workflow uses like a trained one.

Key layout of the flat generator (pix2pix ``ResnetGenerator``): ``model.0-9`` stem (pad, 7x7 conv, norm,
ReLU, two [3x3 stride-2 conv, norm, ReLU]), ``model.10-18`` the residual blocks (``conv_block.<j>``),
``model.19-27`` head (two [transposed conv, norm, ReLU], pad, 7x7 conv, tanh).

This module is torch-free at import (the workflow checks ``teachers.<role>.source`` against ``TEACHERS``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

HF = "https://huggingface.co/mit-han-lab/gan-compression/resolve/main/pretrained"

def _gc(model: str, task: str, ours: str) -> dict:
    return {"task": ours, "url": f"{HF}/{model}/{task}/full/latest_net_G.pth", "sha256": None}


TEACHERS: dict[str, dict] = {
    "gan_compression/cycle_gan/horse2zebra": _gc("cycle_gan", "horse2zebra", "horse2zebra"),
    "gan_compression/pix2pix/edges2shoes-r": _gc("pix2pix", "edges2shoes-r", "edges2shoes"),
    "gan_compression/pix2pix/cityscapes": _gc("pix2pix", "cityscapes", "cityscapes"),
    # CAGC's full-size StyleGAN2 FFHQ-256 (rosinality format: g, d, g_ema); Google Drive only: user-provided
    "cagc/stylegan2/ffhq256": {
        "task": "ffhq", "url": None, "sha256": None, "format": "rosinality",
        "where": "the 'full-size 256px' StyleGAN2 checkpoint linked in CAGC's README (Google Drive)"},
}

_KEY = re.compile(r"^model\.(\d+)\.(.+)$")


def flat_resnet_to_vem(sd: dict, n_blocks: int = 9) -> tuple[dict, dict]:
    """(our state dict, generator record) from a flat pix2pix/CycleGAN ResNet state dict."""
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    bad = [k for k in sd if not _KEY.match(k)]
    if bad:
        raise ValueError(f"not a flat ResNet generator state dict (unexpected key {bad[0]!r})")
    first = n_blocks + 10
    # GAN-Compression's blocks always hold a Dropout(dropout_rate) slot after the first ReLU (index 4, so the
    # second conv sits at 6); its released models were trained with its default rate 0, i.e. no dropout.
    # The slot holds no weights: such a block is imported as one without dropout (conv 6 -> 5, norm 7 -> 6).
    slot = "model.10.conv_block.6.weight" in sd

    def block_key(rest: str) -> str:
        j, tail = rest.removeprefix("conv_block.").split(".", 1)
        j = int(j)
        return f"block.{j - 1 if slot and j > 4 else j}.{tail}"

    out = {}
    for k, v in sd.items():
        i, rest = _KEY.match(k).groups()
        i = int(i)
        if i < 10:
            out[f"stem.{i}.{rest}"] = v
        elif i < first:
            out[f"blocks.{i - 10}.{block_key(rest)}"] = v
        else:
            out[f"head.{i - first}.{rest}"] = v
    from .models import record

    ngf = sd["model.1.weight"].shape[0]
    norm = "batch" if "model.2.running_mean" in sd else ("instance" if "model.1.bias" in sd else "none")
    rec = record("resnet", in_nc=sd["model.1.weight"].shape[1], out_nc=sd[f"model.{first + 7}.weight"].shape[0],
                 ngf=ngf, norm=norm, n_blocks=n_blocks, dropout=False)
    return out, rec


def _load_rosinality(path) -> dict:
    import argparse

    import torch

    with torch.serialization.safe_globals([argparse.Namespace]):
        ck = torch.load(path, map_location="cpu", weights_only=True)
    missing = [k for k in ("g_ema", "d") if k not in ck]
    if missing:
        raise ValueError(f"{path} is not a rosinality StyleGAN2 checkpoint: no {' / '.join(missing)} "
                         f"(keys {sorted(ck)[:6]})")
    return ck


def rosinality_to_vem(ck: dict) -> tuple[dict, dict, dict]:
    """(generator record, our g_ema state dict, our discriminator entry) of a rosinality checkpoint."""
    from .models import record
    from .models.stylegan2 import StyleGAN2Discriminator, channel_table, from_rosinality, generator_kwargs

    kwargs = generator_kwargs(ck["g_ema"])
    size = kwargs["image_size"]
    d_sd = from_rosinality(ck["d"], "discriminator")
    # the discriminator's channel table from its widths: full resolution down to 4 px
    n_blocks = len([k for k in d_sd if k.startswith("blocks.") and k.endswith(".conv2.weight")])
    widths = [d_sd["from_rgb.weight"].shape[0]] + [d_sd[f"blocks.{i}.conv2.weight"].shape[0] for i in range(n_blocks)]
    cmax = int(d_sd["final_conv.weight"].shape[0])
    res = [size // 2 ** i for i in range(n_blocks + 1)]
    multiplier = next((m for m in (2, 1, 4) if [channel_table(size, m, cmax)[r] for r in res] == widths), None)
    if multiplier is None:
        raise ValueError(f"discriminator widths {widths} match no StyleGAN2 channel table at {size} px")
    d_rec = {"in_nc": int(d_sd["from_rgb.weight"].shape[1]), "size": size, "channel_multiplier": multiplier,
             "channel_max": cmax}
    D = StyleGAN2Discriminator(**d_rec)
    D.load_state_dict(d_sd, strict=True)
    return record("stylegan2", **kwargs), from_rosinality(ck["g_ema"]), {"kwargs": d_rec,
                                                                         "state_dict": D.state_dict()}


def import_teacher(name: str, out, user_path: str | None = None, cache="resources/downloads", log=print) -> dict:
    import torch

    from .data.download import download, sha256_file
    from .models import build
    from .utils import atomic_save_torch

    if name not in TEACHERS:
        raise ValueError(f"unknown released teacher {name!r}; choose one of {sorted(TEACHERS)}")
    t = TEACHERS[name]
    src = Path(cache) / (name.replace("/", "__") + ".pth")
    if not user_path and not t["url"]:
        raise FileNotFoundError(f"released teacher {name} cannot be downloaded here: get {t['where']} and set "
                                f"weights: {{{name}: /path/to/file.pt}} in the config")
    if user_path:
        p = Path(user_path)
        if not p.is_file():
            raise FileNotFoundError(f"teacher file {p} does not exist")
        src.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, src)
        digest = sha256_file(src)
        if t["sha256"] and digest != t["sha256"]:
            raise ValueError(f"{p}: sha256 {digest} does not match the pinned {t['sha256']}")
    else:
        digest = download([t["url"]], src, sha256=t["sha256"], log=log)
    extra = {}
    if t.get("format") == "rosinality":
        rec, ours, extra["discriminator"] = rosinality_to_vem(_load_rosinality(src))
    else:
        ours, rec = flat_resnet_to_vem(torch.load(src, map_location="cpu", weights_only=True))
    G = build(rec)
    G.load_state_dict(ours, strict=True)
    ck = {"generator": rec, "state_dict": G.state_dict(), "snapshots": [], "source": name,
          "source_url": t["url"], "source_sha256": digest, "role": "original", "seed": None,
          "config_hash": f"imported:{digest[:16]}", **extra}
    atomic_save_torch(out, ck)
    log(f"{name}: sha256 {digest} -> {out}")
    return ck

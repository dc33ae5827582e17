"""MACs and parameters with torchprofile (the convention of GAN-Compression, OMGD and CAT).

torchprofile counts a convolution as output elements x C_in/groups x k^2 - for a ConvTranspose that is
the *output* size, i.e. stride^2 times the multiply-adds actually done. That is how the papers' 56.80 G
for resnet_9blocks arises (true work: ~49.5 G). An affine norm counts its output elements (torchprofile >=
0.0.3), and so does an *out-of-place* LeakyReLU; ReLU, tanh, padding, concatenation and the in-place
LeakyReLU that pix2pix/OMGD's U-Net uses (and ours) count 0. Batch 1.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def count_macs(model: nn.Module, in_channels: int, size: int) -> float:
    from torchprofile import profile_macs

    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dev = next(model.parameters()).device
            return float(profile_macs(model, torch.zeros(1, in_channels, size, size, device=dev)))
    finally:
        model.train(was_training)


def profile(model: nn.Module, in_channels: int, size: int) -> dict:
    import torchprofile

    version = getattr(torchprofile, "__version__", "?")
    return {"macs": count_macs(model, in_channels, size), "params": count_params(model),
            "input": [1, in_channels, size, size], "counter": f"torchprofile {version}",
            "convention": "ConvTranspose counted per output pixel (torchprofile)"}

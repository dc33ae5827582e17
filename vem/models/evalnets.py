"""Small networks trained inside the workflow on real Fashion-MNIST images.

* ``FeatureNet``: 10-class classifier; its 128-d penultimate features define the embedded suite's
  Fréchet distance (FD-FMNIST, the Inception role).
* ``PerceptualNet``: a *different* VGG-style classifier whose relu1_2/2_2/3_3/4_3 analogues feed OMGD's
  style and feature losses (the VGG16 role) - never the evaluation network, so no method trains on
  the metric.
* ``Segmenter``: a small encoder-decoder for labels->scene mIoU (the DRN-D-105 role).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(c_in, c_out, norm=True):
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    return layers + [nn.ReLU(True)]


class FeatureNet(nn.Module):
    def __init__(self, in_nc=1, n_classes=10, width=32, feat_dim=128):
        super().__init__()
        w = width
        self.body = nn.Sequential(*_conv(in_nc, w), nn.MaxPool2d(2), *_conv(w, 2 * w), nn.MaxPool2d(2),
                                  *_conv(2 * w, 4 * w), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                  nn.Linear(16 * w, feat_dim), nn.ReLU(True))
        self.fc = nn.Linear(feat_dim, n_classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.fc(self.body(x))


class PerceptualNet(nn.Module):
    """VGG-like: four stages of two convs (no BN), max-pool between; ``taps`` returns the last ReLU of
    every stage (the relu1_2, relu2_2, relu3_3, relu4_3 roles)."""

    def __init__(self, in_nc=1, n_classes=10, width=16):
        super().__init__()
        ws = [width, 2 * width, 4 * width, 8 * width]
        stages, c = [], in_nc
        for w in ws:
            stages.append(nn.Sequential(*_conv(c, w, norm=False), *_conv(w, w, norm=False)))
            c = w
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(ws[-1], n_classes)

    def taps(self, x):
        out = []
        for i, st in enumerate(self.stages):
            if i:
                x = F.max_pool2d(x, 2)
            x = st(x)
            out.append(x)
        return out

    def forward(self, x):
        return self.fc(self.taps(x)[-1].mean(dim=(2, 3)))


class Segmenter(nn.Module):
    def __init__(self, in_nc=1, n_classes=6, width=32):
        super().__init__()
        w = width
        self.enc1 = nn.Sequential(*_conv(in_nc, w), *_conv(w, w))
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), *_conv(w, 2 * w), *_conv(2 * w, 2 * w))
        self.enc3 = nn.Sequential(nn.MaxPool2d(2), *_conv(2 * w, 4 * w), *_conv(4 * w, 4 * w))
        self.up2 = nn.Sequential(*_conv(6 * w, 2 * w))
        self.up1 = nn.Sequential(*_conv(3 * w, w))
        self.out = nn.Conv2d(w, n_classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.up2(torch.cat([F.interpolate(e3, scale_factor=2), e2], 1))
        d1 = self.up1(torch.cat([F.interpolate(d2, scale_factor=2), e1], 1))
        return self.out(d1)


class VGG16Perceptual(nn.Module):
    """OMGD's perceptual network at paper scale: torchvision's VGG16 ``features`` with ImageNet weights
    from a file (``vgg16-397923af.pth``, the metric_weights rule); ``taps`` returns relu1_2, relu2_2,
    relu3_3 and relu4_3. Inputs in [-1, 1] are mapped to (x + 1) / 2 *without* ImageNet mean/std, as
    OMGD's ``utils/vgg`` does."""

    TAPS = (3, 8, 15, 22)  # indices of relu1_2, relu2_2, relu3_3, relu4_3 in vgg16.features

    def __init__(self, state_dict: dict | None = None):
        super().__init__()
        from torchvision.models import vgg16

        net = vgg16(weights=None)
        if state_dict is not None:
            net.load_state_dict(state_dict)
        self.features = net.features[: self.TAPS[-1] + 1]

    def taps(self, x):
        x = (x + 1) / 2
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                out.append(x)
        return out


def load_evalnet(cls, path) -> nn.Module:
    """A network trained in the workflow (checkpoint ``{"kwargs", "state_dict"}``), in eval mode. It is built
    before its weights load, so its random initialisation draws from the caller's RNG stream."""
    from ..utils import load_checkpoint

    ck = load_checkpoint(path)
    net = cls(**ck["kwargs"])
    net.load_state_dict(ck["state_dict"])
    return net.eval()


def load_perceptual(path, scale: str) -> nn.Module:
    """The frozen perceptual network of a run: PerceptualNet checkpoint (mini) or VGG16 weights (paper)."""
    from pathlib import Path

    if scale == "paper":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"VGG16 weights {path} are missing: run `snakemake {path}` (downloads "
                                    "torchvision's file) or set weights.vgg16: /path/to/vgg16-397923af.pth")
        net = VGG16Perceptual(torch.load(path, map_location="cpu", weights_only=True))
    else:
        net = load_evalnet(PerceptualNet, path)
    return net.eval().requires_grad_(False)

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


def _vgg_taps(features: nn.Module, x, taps) -> list:
    """The activations after the layers ``taps`` (indices into VGG16's ``features``)."""
    out = []
    for i, layer in enumerate(features):
        x = layer(x)
        if i in taps:
            out.append(x)
    return out


def vgg16_features(state_dict: dict | None, upto: int) -> nn.Sequential:
    """torchvision's VGG16 ``features[:upto]``. With ``state_dict`` (a whole VGG16's, checked name by name and shape
    by shape as ``load_state_dict`` would), its weights, on the default device: made without the random
    initialisation they would overwrite (~0.3 s per build on 2 cores) and without the 123 M-parameter classifier
    (~1 s), which no tap reads. Without one, torchvision's random initialisation (torch's RNG)."""
    from torchvision.models import vgg16

    if state_dict is None:
        return vgg16(weights=None).features[:upto]
    with torch.device("meta"):
        net = vgg16(weights=None)
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    if got != want:
        missing, unexpected = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
        wrong = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])
        raise ValueError(f"not a VGG16 state dict: missing {missing[:3]}, unexpected {unexpected[:3]}, "
                         f"other shapes {wrong[:3]}")
    features = net.features[:upto].to_empty(device=torch.get_default_device())
    features.load_state_dict({k.removeprefix("features."): v for k, v in state_dict.items()
                              if k.startswith("features.") and int(k.split(".")[1]) < upto})
    return features


class VGG16Perceptual(nn.Module):
    """OMGD's perceptual network at paper scale: torchvision's VGG16 ``features`` with ImageNet weights
    from a file (``vgg16-397923af.pth``, the metric_weights rule); ``taps`` returns relu1_2, relu2_2,
    relu3_3 and relu4_3. Inputs in [-1, 1] are mapped to (x + 1) / 2 *without* ImageNet mean/std, as
    OMGD's ``utils/vgg`` does."""

    TAPS = (3, 8, 15, 22)  # indices of relu1_2, relu2_2, relu3_3, relu4_3 in vgg16.features

    def __init__(self, state_dict: dict | None = None):
        super().__init__()
        self.features = vgg16_features(state_dict, self.TAPS[-1] + 1)

    def taps(self, x):
        return _vgg_taps(self.features, (x + 1) / 2, self.TAPS)


class VGG16LPIPS(nn.Module):
    """LPIPS v0.1 with the VGG network (Zhang et al., 2018; the ``lpips`` package's ``LPIPS(net="vgg")``):
    inputs in [-1, 1] shifted and scaled per channel (shift -0.030 -0.088 -0.188, scale 0.458 0.448 0.450),
    torchvision's VGG16 ``features`` up to relu5_3 (ImageNet weights), taps relu1_2 .. relu5_3, and the
    learned linear heads (``lin0..lin4.model.1.weight``, 1 x C x 1 x 1 each, from the package's
    ``weights/v0.1/vgg.pth``). ``forward(x, y)``: the distance per sample (shape B)."""

    TAPS = (3, 8, 15, 22, 29)
    SHIFT, SCALE = (-0.030, -0.088, -0.188), (0.458, 0.448, 0.450)

    def __init__(self, vgg_state: dict | None = None, lin_state: dict | None = None):
        super().__init__()
        self.features = vgg16_features(vgg_state, self.TAPS[-1] + 1)
        self.register_buffer("shift", torch.tensor(self.SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(self.SCALE).view(1, 3, 1, 1))
        widths = [self.features[i - 1].out_channels for i in self.TAPS]
        if lin_state is not None:
            keys = [f"lin{i}.model.1.weight" for i in range(len(widths))]
            if sorted(lin_state) != keys or [lin_state[k].numel() for k in keys] != widths:
                raise ValueError(f"not LPIPS VGG linear heads: expected {keys} of widths {widths}, "
                                 f"got {sorted(lin_state)}")
            lin = [lin_state[k].flatten().float() for k in keys]
        else:
            lin = [torch.ones(w) for w in widths]
        for i, w in enumerate(lin):
            self.register_buffer(f"lin{i}", w.to(self.shift.device))   # the heads load on the CPU

    def taps(self, x):
        return _vgg_taps(self.features, (x - self.shift) / self.scale, self.TAPS)

    def forward(self, x, y):
        from ..losses import lpips

        return lpips(self.taps(x), self.taps(y), [getattr(self, f"lin{i}") for i in range(len(self.TAPS))])


class TapsLPIPS(nn.Module):
    """LPIPS on a harness perceptual network's taps without linear heads (the package's ``lpips=False``
    variant): the mini scale's stand-in. ``forward(x, y)``: the distance per sample."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x, y):
        from ..losses import lpips

        return lpips(self.net.taps(x), self.net.taps(y))


def load_lpips(scale: str, perceptual_path, lin_path=None) -> nn.Module:
    """The frozen LPIPS distance of a scale: paper - VGG16 weights + the lpips package's linear heads;
    mini - the in-DAG PerceptualNet's taps, channel-summed."""
    from pathlib import Path

    if scale != "paper":
        return TapsLPIPS(load_perceptual(perceptual_path, scale)).eval().requires_grad_(False)
    for p, what in ((perceptual_path, "weights.vgg16: /path/to/vgg16-397923af.pth"),
                    (lin_path, "weights.lpips_vgg: /path/to/lpips/weights/v0.1/vgg.pth")):
        if p is None or not Path(p).is_file():
            raise FileNotFoundError(f"LPIPS weights {p} are missing: run `snakemake {p}` or set {what}")
    net = VGG16LPIPS(torch.load(perceptual_path, map_location="cpu", weights_only=True),
                     torch.load(lin_path, map_location="cpu", weights_only=True))
    return net.eval().requires_grad_(False)


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

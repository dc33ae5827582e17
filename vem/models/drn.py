"""DRN-D-105 (Yu, Koltun & Funkhouser, "Dilated Residual Networks", CVPR 2017) as the Cityscapes scorer.

Written from the paper's description of the D variant: a 7x7 stem without max-pooling, two plain 3x3
conv levels (16 and 32 channels, the second with stride 2), four bottleneck levels (expansion 4; 3, 4,
23, 3 blocks; strides 2, 2, 1, 1; dilations 1, 1, 2, 4: output stride 8) and two plain 3x3 conv levels
of 512 channels with dilation 2 and 1 that remove gridding artefacts. ``DRNSeg`` drops the
classifier, adds a 1x1 conv to the 19 Cityscapes classes and a fixed bilinear x8 transposed
convolution. Module names follow the released ``drn-d-105_ms_cityscapes.pth`` (``base.<level>...``,
``seg``, ``up``), so that state dict loads with ``strict=True``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# fyu/drn's Cityscapes statistics (datasets/cityscapes/info.json): DRN's input normalisation
CITYSCAPES_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)
CITYSCAPES_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)
CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)
LAYERS_D105 = (1, 1, 3, 4, 23, 3, 1, 1)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=(1, 1)):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation[1], dilation=dilation[1], bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return self.relu(h + (self.downsample(x) if self.downsample is not None else x))


def _conv_level(c_in, c_out, n, stride=1, dilation=1) -> nn.Sequential:
    mods = []
    for i in range(n):
        mods += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, stride if i == 0 else 1, padding=dilation,
                           dilation=dilation, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*mods)


def _bottleneck_level(inplanes, planes, n, stride=1, dilation=1) -> nn.Sequential:
    down = None
    if stride != 1 or inplanes != planes * 4:
        down = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
    blocks = [Bottleneck(inplanes, planes, stride, down, (dilation, dilation))]
    blocks += [Bottleneck(planes * 4, planes, dilation=(dilation, dilation)) for _ in range(n - 1)]
    return nn.Sequential(*blocks)


def drn_d_base(layers=LAYERS_D105, channels=CHANNELS) -> nn.Sequential:
    """The feature extractor (output stride 8, ``channels[-1]`` maps)."""
    c = channels
    stem = nn.Sequential(nn.Conv2d(3, c[0], 7, 1, 3, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True))
    return nn.Sequential(
        stem,
        _conv_level(c[0], c[0], layers[0]),
        _conv_level(c[0], c[1], layers[1], stride=2),
        _bottleneck_level(c[1], c[2], layers[2], stride=2),
        _bottleneck_level(c[2] * 4, c[3], layers[3], stride=2),
        _bottleneck_level(c[3] * 4, c[4], layers[4], dilation=2),
        _bottleneck_level(c[4] * 4, c[5], layers[5], dilation=4),
        _conv_level(c[5] * 4, c[6], layers[6], dilation=2),
        _conv_level(c[6], c[7], layers[7], dilation=1),
    )


def _bilinear_kernel(weight: torch.Tensor) -> None:
    """Fill a depthwise ConvTranspose weight (C, 1, k, k) with the bilinear upsampling kernel."""
    k = weight.shape[-1]
    f = math.ceil(k / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    r = torch.arange(k, dtype=torch.float64)
    w1 = 1 - (r / f - c).abs()
    weight.data.copy_((w1[:, None] * w1[None, :]).to(weight.dtype).expand_as(weight))


class DRNSeg(nn.Module):
    """DRN-D-105 segmentation network: ``forward(x)`` -> (N, classes, H, W) logits at the input size
    (bilinear x8 upsampling; a log-softmax does not change the argmax and is left out)."""

    def __init__(self, classes: int = 19, layers=LAYERS_D105, channels=CHANNELS):
        super().__init__()
        self.base = drn_d_base(layers, channels)
        self.seg = nn.Conv2d(channels[-1], classes, 1, bias=True)
        self.up = nn.ConvTranspose2d(classes, classes, 16, stride=8, padding=4, groups=classes, bias=False)
        _bilinear_kernel(self.up.weight)
        self.up.weight.requires_grad_(False)
        n = self.seg.kernel_size[0] * self.seg.kernel_size[1] * self.seg.out_channels
        self.seg.weight.data.normal_(0, math.sqrt(2.0 / n))
        self.seg.bias.data.zero_()

    def forward(self, x):
        return self.up(self.seg(self.base(x)))


def load_drn(path, device=None) -> DRNSeg:
    """DRN-D-105 with the released Cityscapes weights (``drn-d-105_ms_cityscapes.pth``)."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"DRN-D-105 weights {path} are missing: run `snakemake {path}` with weights.drn_d_105_cityscapes "
            "set to your copy of drn-d-105_ms_cityscapes.pth (fyu/drn release; OMGD's README Google Drive folder)")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    net = DRNSeg()
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path} is not a DRN-D-105 Cityscapes state dict: {str(e).splitlines()[0]}") from None
    return net.to(device or "cpu").eval()

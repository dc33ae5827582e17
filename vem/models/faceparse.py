"""The face parser CAGC uses for its content of interest at paper scale: BiSeNet (ResNet-18 context path,
19 CelebAMask-HQ classes) in the parameter layout of zllrunning/face-parsing.PyTorch's ``79999_iter.pth``,
which loads into it with ``strict=True``.

Layout (inference path only; the two auxiliary heads are kept so the released file loads whole):

* ``cp.resnet``: torchvision's ResNet-18 stem and layer1-4 (feat8, feat16, feat32 at 1/8, 1/16, 1/32);
* ``cp``: global context = avg-pool(feat32) -> ConvBNReLU 1x1 (``conv_avg``), nearest-upsampled back;
  ``arm32(feat32)`` + context -> nearest to 1/16 -> ``conv_head32``; ``arm16(feat16)`` + that -> nearest
  to 1/8 -> ``conv_head16``. An attention refinement module is ConvBNReLU 3x3 then x * sigmoid(BN(1x1 conv(
  avg-pool)));
* ``ffm``: the fusion of feat8 (the released net replaced the spatial path by it) and the context at 1/8:
  ConvBNReLU 1x1 of the concatenation, f + f * sigmoid(1x1 conv(relu(1x1 conv(avg-pool f)))), the 1x1
  convs 256 -> 64 -> 256 without bias;
* ``conv_out``: ConvBNReLU 3x3 256 -> 256, 1x1 conv to the classes; bilinear (align_corners=True) to the
  input size.

ConvBNReLU = conv without bias, BatchNorm, ReLU. The content of interest (CAGC's
``Util/content_aware_pruning.py``): the image as uint8, resized to 512, ImageNet-normalised, parsed; every
label except background (0) and cloth (16), resized back to the image size (bilinear) and thresholded at 0.5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

N_CLASSES = 19
BACKGROUND, CLOTH = 0, 16
PARSE_SIZE = 512
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ConvBNReLU(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class AttentionRefinement(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = ConvBNReLU(c_in, c_out)
        self.conv_atten = nn.Conv2d(c_out, c_out, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(c_out)

    def forward(self, x):
        f = self.conv(x)
        return f * torch.sigmoid(self.bn_atten(self.conv_atten(f.mean((2, 3), keepdim=True))))


class ContextPath(nn.Module):
    def __init__(self):
        super().__init__()
        from torchvision.models import resnet18

        r = resnet18(weights=None)
        r.fc = r.avgpool = None     # the released file holds no classifier
        self.resnet = r
        self.arm16, self.arm32 = AttentionRefinement(256, 128), AttentionRefinement(512, 128)
        self.conv_head32, self.conv_head16 = ConvBNReLU(128, 128), ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, 1)

    def forward(self, x):
        r = self.resnet
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        feat8 = r.layer2(r.layer1(x))
        feat16 = r.layer3(feat8)
        feat32 = r.layer4(feat16)
        context = self.conv_avg(feat32.mean((2, 3), keepdim=True))
        up32 = F.interpolate(self.arm32(feat32) + context.expand(-1, -1, *feat32.shape[2:]),
                             feat16.shape[2:], mode="nearest")
        up32 = self.conv_head32(up32)
        up16 = self.conv_head16(F.interpolate(self.arm16(feat16) + up32, feat8.shape[2:], mode="nearest"))
        return feat8, up16, up32


class FeatureFusion(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.convblk = ConvBNReLU(c_in, c_out, 1)
        self.conv1 = nn.Conv2d(c_out, c_out // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(c_out // 4, c_out, 1, bias=False)

    def forward(self, a, b):
        f = self.convblk(torch.cat([a, b], 1))
        att = torch.sigmoid(self.conv2(F.relu(self.conv1(f.mean((2, 3), keepdim=True)))))
        return f + f * att


class Head(nn.Module):
    def __init__(self, c_in: int, c_mid: int, n_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(c_in, c_mid)
        self.conv_out = nn.Conv2d(c_mid, n_classes, 1, bias=False)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class FaceParser(nn.Module):
    """BiSeNet face parsing; ``forward`` gives the class logits at the input size (eval mode expected)."""

    def __init__(self, n_classes: int = N_CLASSES):
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = Head(256, 256, n_classes)
        self.conv_out16, self.conv_out32 = Head(128, 64, n_classes), Head(128, 64, n_classes)  # training only

    def forward(self, x):
        feat8, cp8, _ = self.cp(x)
        return F.interpolate(self.conv_out(self.ffm(feat8, cp8)), x.shape[2:], mode="bilinear", align_corners=True)

    @torch.no_grad()
    def content_mask(self, img: torch.Tensor, antialias: bool = True) -> torch.Tensor:
        """B x 1 x H x W in {0, 1}: the face (every class but background and cloth) of images in [-1, 1].

        The 512 px parse is resized to the image's size and thresholded at 0.5: ``antialias=True`` as CAGC's
        pruning score does it (PIL's bilinear resize, which averages when it shrinks), ``False`` as its
        distillation's ``Get_Masked_Tensor`` (plain bilinear interpolation)."""
        x = (((img.clamp(-1, 1) + 1) / 2 * 255).floor() / 255).float()      # as the uint8 image CAGC parses
        x = F.interpolate(x, size=(PARSE_SIZE, PARSE_SIZE), mode="bilinear", align_corners=False)
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        label = self((x - mean) / std).argmax(1, keepdim=True)
        face = ((label != BACKGROUND) & (label != CLOTH)).float()
        face = F.interpolate(face, size=img.shape[2:], mode="bilinear", align_corners=False,
                             antialias=antialias and img.shape[-1] < PARSE_SIZE)
        return (face > 0.5).to(img.dtype)


def load_face_parser(path) -> FaceParser:
    """The released BiSeNet (``79999_iter.pth``), frozen, in eval mode; a wrong file fails naming a key."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"face parser weights {path} are missing: run `snakemake {path}` after setting "
                                "weights.bisenet_face: /path/to/79999_iter.pth")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    net = FaceParser()
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path} is not BiSeNet face-parsing weights (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    return net.eval().requires_grad_(False)

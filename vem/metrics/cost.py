"""MACs and parameters with torchprofile (the convention of GAN-Compression, OMGD and CAT).

torchprofile counts a convolution as output elements x C_in/groups x k^2 - for a ConvTranspose that is
the *output* size, i.e. stride^2 times the multiply-adds actually done. That is how the papers' 56.80 G
for resnet_9blocks arises (true work: ~49.5 G). An affine norm counts its output elements (torchprofile >=
0.0.3), and so does an *out-of-place* LeakyReLU; ReLU, tanh, padding, concatenation and the in-place
LeakyReLU that pix2pix/OMGD's U-Net uses (and ours) count 0. Batch 1.

``count_macs_v001`` is the convention of torchprofile 0.0.1 (GAN-Compression's requirements): the same,
plus the output elements of every instance norm *without* affine parameters (today's torchprofile counts
those as 0). GAN-Compression's published sub-network counts are in it: ``16_16_24_16_32_64_16_24`` (Fast,
horse2zebra) 2,640,576,512 = "2.64 G" (today's count: 2.618 G), ``16_16_32_16_32_32_16_16`` 2,546,204,672 =
the "2.55 G" of its README and of the paper's Table 4, ``mobile_resnet_9blocks`` ngf 16 1.421 G.

``count_macs_thop_legacy`` is GCC's convention (``thop.profile`` as of 2021, thop <= 0.0.31): forward hooks
on leaf modules; a convolution or transposed convolution counts output elements x (C_in/groups x k^2 + 1 if
it has a bias), an eval-mode BatchNorm 2 x its elements, linear layers in x out features per row; ReLU /
LeakyReLU / tanh / softmax and every functional operation (the attention's bmm) count 0. GCC's own
SpectralNorm wrapper calls the wrapped conv's ``forward`` directly, which bypasses the hooks: a spectrally
normalised conv counts **0**. That is how GCC's SAGAN prints 23.45 M for ngf 64 (23,449,600: the last
transposed conv, the six 1x1 attention convs and the four BNs); the true work is ~20x more.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode


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


class _NormElements(TorchFunctionMode):
    """Counts the output elements of every instance norm without affine weights run under it."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        # F.instance_norm is seen (the torch.instance_norm it calls is not: the mode is off inside)
        if func is F.instance_norm or func is torch.instance_norm:
            weight = args[3] if len(args) > 3 else kwargs.get("weight")
            if weight is None:
                self.count += out.numel()
        return out


def non_affine_norm_elements(model: nn.Module, in_channels: int, size: int) -> int:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _NormElements() as mode:
            dev = next(model.parameters()).device
            model(torch.zeros(1, in_channels, size, size, device=dev))
    finally:
        model.train(was_training)
    return int(mode.count)


def count_macs_v001(model: nn.Module, in_channels: int, size: int) -> int:
    """torchprofile 0.0.1's count (GAN-Compression's published numbers): today's + non-affine norm outputs."""
    return int(count_macs(model, in_channels, size)) + non_affine_norm_elements(model, in_channels, size)


def _spectrally_normalised(m: nn.Module) -> bool:
    p = getattr(m, "parametrizations", None)
    return p is not None and "weight" in p


def count_leaf_hooks(model: nn.Module, in_channels: int, size: int, count) -> int:
    """Sum of ``count(module, inputs, output)`` over the leaf modules of one eval-mode forward of a
    1 x C x size x size zero input (the profilers of the original codebases: thop, CAT's)."""
    total = 0

    def hook(m, inputs, out):
        nonlocal total
        total += count(m, inputs, out)

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            dev = next(model.parameters()).device
            model(torch.zeros(1, in_channels, size, size, device=dev))
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return int(total)


def _thop_legacy(m: nn.Module, inputs, out) -> int:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        if _spectrally_normalised(m):
            return 0
        return out.numel() * ((m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1] + (m.bias is not None))
    if isinstance(m, nn.BatchNorm2d):
        return 2 * out.numel()
    if isinstance(m, nn.Linear):
        return m.in_features * out.numel()
    return 0


def count_macs_thop_legacy(model: nn.Module, in_channels: int, size: int) -> int:
    """GCC's MACs (thop <= 0.0.31 rules, spectrally normalised convs uncounted) for a 1 x C x size x size input."""
    return count_leaf_hooks(model, in_channels, size, _thop_legacy)


def count_macs_cagc(model: nn.Module, in_channels: int = 0, size: int = 0) -> int:
    """CAGC's MACs of a StyleGAN2 generator (``Util/Calculators.py``, labelled FLOPs), analytic in its
    ``net_shape``: every styled 3x3 conv N_in x N_out x 9 x H^2 with an upsampling conv counted at its *input*
    resolution (map sizes 4, 4, 8, 8, 16, ...), every ToRGB N_in x 3 x H^2, the mapping MLP's weights
    (n_mlp x style_dim^2) and every modulation (affine) weight (style_dim x N_in); noise, biases,
    activations, blur filters and demodulation uncounted. Full 256 px generator: 45,124,673,536; CAGC's
    70 %-pruned one 4,123,578,080. (``in_channels``/``size`` are unused: the count depends on the widths.)"""
    ws, sd = list(model.net_shape), model.style_dim
    out_nc = model.to_rgb1.conv.weight.shape[0]
    total = ws[0] * ws[1] * 9 * 16 + ws[1] * out_nc * 16 + sd * (ws[0] + ws[1])
    r = 4
    for j in range((len(ws) - 2) // 2):
        a, b, c = ws[1 + 2 * j], ws[2 + 2 * j], ws[3 + 2 * j]
        total += a * b * 9 * r * r                      # the upsampling conv at its input size
        r *= 2
        total += b * c * 9 * r * r + c * out_nc * r * r + sd * (a + b + c)
    return int(total + len(model.mapping.layers) * sd * sd)


# the counting convention of the code that published a backbone's numbers, beside the harness's count
# (a method's student checkpoint may carry its own: macs_cat, macs_gan_compression, macs_gcc)
PAPER_COUNTERS = {"sagan": ("macs_gcc", count_macs_thop_legacy), "stylegan2": ("macs_cagc", count_macs_cagc)}


def profile(model: nn.Module, in_channels: int, size: int) -> dict:
    import torchprofile

    version = getattr(torchprofile, "__version__", "?")
    return {"macs": count_macs(model, in_channels, size), "params": count_params(model),
            "input": [1, in_channels, size, size], "counter": f"torchprofile {version}",
            "convention": "ConvTranspose counted per output pixel (torchprofile)"}

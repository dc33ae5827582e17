"""Losses shared by the compression methods: GAN objectives, OMGD's SSIM / style / feature / TV, LPIPS (CAGC)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def gan_loss(pred: torch.Tensor, real: bool, mode: str, for_discriminator: bool = True) -> torch.Tensor:
    """``mode`` in lsgan | hinge | vanilla. Hinge generators minimise -D(G(x))."""
    if mode == "lsgan":
        return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(pred, torch.full_like(pred, 1.0 if real else 0.0))
    if mode == "hinge":
        if for_discriminator:
            return F.relu(1 - pred).mean() if real else F.relu(1 + pred).mean()
        return -pred.mean()
    raise ValueError(f"unknown gan mode {mode!r}; choose lsgan, hinge or vanilla")


@functools.lru_cache(maxsize=8)
def _gauss_window(size: int, sigma: float, channels: int) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    w = torch.outer(g, g)
    return w.expand(channels, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM with a Gaussian window. Like OMGD, the constants are those for a [0, 1] range
    (C1 = 0.01^2, C2 = 0.03^2) although the images lie in [-1, 1]. The window shrinks to the image
    for images smaller than it."""
    c = a.shape[1]
    window = min(window, a.shape[-1], a.shape[-2])
    w = _gauss_window(window, sigma, c).to(a)
    pad = window // 2
    mu_a = F.conv2d(a, w, padding=pad, groups=c)
    mu_b = F.conv2d(b, w, padding=pad, groups=c)
    s_aa = F.conv2d(a * a, w, padding=pad, groups=c) - mu_a**2
    s_bb = F.conv2d(b * b, w, padding=pad, groups=c) - mu_b**2
    s_ab = F.conv2d(a * b, w, padding=pad, groups=c) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    m = ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2))
    return m.mean()


def gram(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def style_loss(feats_s, feats_t) -> torch.Tensor:
    return sum(F.l1_loss(gram(a), gram(b.detach())) for a, b in zip(feats_s, feats_t))


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    """Total variation as a *sum* (OMGD's convention: it scales with batch and resolution)."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().sum() + (x[..., :, 1:] - x[..., :, :-1]).abs().sum()


def lpips(taps_x, taps_y, lin=None) -> torch.Tensor:
    """LPIPS (Zhang et al., 2018) from two lists of feature maps (the perceptual net's taps of x and y):
    per layer each position's channel vector unit-normalised (eps 1e-10), squared difference, weighted
    per channel by ``lin[l]`` (the learned linear heads, C_l non-negative weights) or summed over channels
    (``lin=None``: the package's ``lpips=False`` variant), averaged over positions; summed over layers.
    Per sample (shape B)."""
    total = 0.0
    for i, (fx, fy) in enumerate(zip(taps_x, taps_y)):
        nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        d = (nx - ny).pow(2)
        d = d.sum(1) if lin is None else (d * lin[i].view(1, -1, 1, 1)).sum(1)
        total = total + d.mean((1, 2))
    return total

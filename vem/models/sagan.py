"""SAGAN (Zhang et al., 2019) as GCC compresses it (SJLeo/GCC ``models/SAGAN.py``, a port of
heykeetae/Self-Attention-GAN): an unconditional generator z -> image and its discriminator.

Generator at ``image_size`` = 2^(n+2): ``l1`` = SN(ConvTranspose z_dim -> c1, k4) + BN + ReLU (4x4), then
``l2 .. ln`` = SN(ConvTranspose k4 s2 p1) + BN + ReLU, each doubling the size; self-attention ``attn1`` after
``l(n-1)`` and ``attn2`` after ``ln`` (the two finest scales); ``last`` = ConvTranspose -> out_nc (no
spectral norm) + tanh. Default widths c_i = ngf * 2^(n-i): at 64 px (n = 4) 8, 4, 2, 1 x ngf - GCC's
``l1 .. l4``, ``attn1`` on 2 ngf at 16x16, ``attn2`` on ngf at 32x32. ``widths`` overrides the n BN'd widths
(GCC's ``filter_cfgs``: a pruned student); the attention layers take the width of the layer they follow.

Self-attention: 1x1 query / key convs C -> C // 8 (at least 1; GCC's would be 0 below 8 channels), 1x1
value conv C -> C (all with bias, no spectral norm), softmax over the N x N energies, out = gamma * attention
+ x with the scalar gamma initialised to 0.

Spectral norm: GCC's own SpectralNorm as a parametrisation (:class:`SpectralNorm`): the matrix is
``w.view(w.shape[0], -1)`` - the *first* dimension, for the transposed convs too (PyTorch's default for a
ConvTranspose would be dim 1, a different matrix) - and one power iteration per training forward in GCC's
order, v <- W^T u, u <- W v, sigma = u . W v (PyTorch's ``spectral_norm`` updates u first: a different sigma
after every step). In eval mode the stored u, v are used (GCC's wrapper iterates at every forward, eval
included, so its evaluations move u; ours leave the model unchanged).

Discriminator: n = log2(size) - 2 SN(Conv k4 s2 p1) + LeakyReLU(0.1) layers (``l1 .. ln``, ndf * 2^(i-1)),
``attn1`` after ``l(n-1)``, ``attn2`` after ``ln``, ``last`` = Conv(k4) -> 1 (no SN), squeezed to (N,). With
``gated=True`` it is GCC's ``MaskDiscriminator``: a :class:`ChannelGate` after every SN conv (before its
LeakyReLU) - the selective-activation discriminator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .geometry import sagan_levels as _levels


class SpectralNorm(nn.Module):
    """W / sigma(W.view(W.shape[0], -1)) with GCC's power iteration (buffers ``_u``, ``_v``)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        h = weight.shape[0]
        w = weight.reshape(h, -1).shape[1]
        self.register_buffer("_u", F.normalize(weight.new_empty(h).normal_(), dim=0, eps=1e-12))
        self.register_buffer("_v", F.normalize(weight.new_empty(w).normal_(), dim=0, eps=1e-12))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        mat = weight.reshape(weight.shape[0], -1)
        if self.training:
            with torch.no_grad():
                self._v.copy_(F.normalize(mat.t() @ self._u, dim=0, eps=1e-12))
                self._u.copy_(F.normalize(mat @ self._v, dim=0, eps=1e-12))
        sigma = torch.dot(self._u.clone(), mat @ self._v.clone())
        return weight / sigma


def sn(module: nn.Module) -> nn.Module:
    """GCC's spectral norm on a conv's weight (a parametrisation: ``parametrizations.weight.original``)."""
    parametrize.register_parametrization(module, "weight", SpectralNorm(module.weight.detach()))
    return module


def _run_stages(net: nn.Module, x) -> tuple[torch.Tensor, dict]:
    """``l1 .. ln`` with ``attn1`` after ``l(n-1)`` and ``attn2`` after ``ln`` (generator and discriminator
    alike): the last map and every named stage's output."""
    taps = {}
    for i in range(1, net.n + 1):
        x = taps[f"l{i}"] = getattr(net, f"l{i}")(x)
        if i == net.n - 1:
            x = taps["attn1"] = net.attn1(x)
        elif i == net.n:
            x = taps["attn2"] = net.attn2(x)
    return x, taps


class SelfAttention(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        inner = max(1, channels // 8)
        self.query_conv = nn.Conv2d(channels, inner, 1)
        self.key_conv = nn.Conv2d(channels, inner, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        b, c, h, w = x.shape
        q = self.query_conv(x).flatten(2).transpose(1, 2)          # B x N x C'
        k = self.key_conv(x).flatten(2)                            # B x C' x N
        attention = self.softmax(torch.bmm(q, k))                  # B x N x N, rows sum to 1
        v = self.value_conv(x).flatten(2)                          # B x C x N
        out = torch.bmm(v, attention.transpose(1, 2)).view(b, c, h, w)
        return self.gamma * out + x


class ChannelGate(nn.Module):
    """GCC's ``DifferentiableOP``: per-channel alpha (init 1); forward multiplies the map by the hard mask
    (sign(alpha - threshold) + 1) / 2 (1 above the threshold, 0 below, 1/2 at it); backward is straight-through
    (d mask / d alpha = 1)."""

    def __init__(self, channels: int, threshold: float = 0.5):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))
        self.threshold = float(threshold)

    def mask(self) -> torch.Tensor:
        hard = (torch.sign(self.alpha.detach() - self.threshold) + 1) / 2
        return hard + self.alpha - self.alpha.detach()

    def forward(self, x):
        return x * self.mask().view(1, -1, 1, 1)


class SAGANGenerator(nn.Module):
    def __init__(self, z_dim: int = 128, out_nc: int = 3, ngf: int = 64, image_size: int = 64,
                 widths: list | None = None):
        super().__init__()
        n = _levels(image_size)
        widths = list(widths) if widths is not None else [ngf * 2 ** (n - 1 - i) for i in range(n)]
        if len(widths) != n or min(widths) < 1:
            raise ValueError(f"SAGAN at {image_size} px has {n} BN'd layers; widths must be {n} integers >= 1, "
                             f"got {widths}")
        self.z_dim, self.n, self.widths = z_dim, n, widths
        prev = z_dim
        for i, c in enumerate(widths, 1):
            conv = nn.ConvTranspose2d(prev, c, 4) if i == 1 else nn.ConvTranspose2d(prev, c, 4, 2, 1)
            setattr(self, f"l{i}", nn.Sequential(sn(conv), nn.BatchNorm2d(c), nn.ReLU()))
            prev = c
        self.attn1 = SelfAttention(widths[-2])
        self.attn2 = SelfAttention(widths[-1])
        self.last = nn.Sequential(nn.ConvTranspose2d(widths[-1], out_nc, 4, 2, 1), nn.Tanh())

    def bn_layers(self) -> list[nn.BatchNorm2d]:
        """The BN of ``l1 .. ln`` (what GCC's pruning ranks by their signed scales)."""
        return [getattr(self, f"l{i}")[1] for i in range(1, self.n + 1)]

    def forward_taps(self, z) -> tuple[torch.Tensor, dict]:
        """(image, {"l1": ..., "attn1": ..., "attn2": ...}): every named stage's output."""
        if z.dim() == 2:
            z = z.view(z.shape[0], -1, 1, 1)
        x, taps = _run_stages(self, z)
        return self.last(x), taps

    def forward(self, z):
        return self.forward_taps(z)[0]

    def forward_features(self, z):
        """(image, four maps) as every generator offers: l1, l2, attn1 and attn2."""
        y, t = self.forward_taps(z)
        return y, [t["l1"], t["l2"], t["attn1"], t["attn2"]]


class SAGANDiscriminator(nn.Module):
    def __init__(self, in_nc: int = 3, ndf: int = 64, image_size: int = 64, gated: bool = False,
                 threshold: float = 0.5):
        super().__init__()
        n = _levels(image_size)
        self.n, self.gated = n, gated
        prev = in_nc
        widths = [ndf * 2 ** i for i in range(n)]
        for i, c in enumerate(widths, 1):
            layers = [sn(nn.Conv2d(prev, c, 4, 2, 1))]
            if gated:
                layers.append(ChannelGate(c, threshold))
            layers.append(nn.LeakyReLU(0.1))
            setattr(self, f"l{i}", nn.Sequential(*layers))
            prev = c
        self.attn1 = SelfAttention(widths[-2])
        self.attn2 = SelfAttention(widths[-1])
        self.last = nn.Conv2d(widths[-1], 1, 4)

    def gates(self) -> list[ChannelGate]:
        return [m for m in self.modules() if isinstance(m, ChannelGate)]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the gates' alphas (the D optimiser's; the alphas have their own)."""
        gate_ids = {id(g.alpha) for g in self.gates()}
        return [p for p in self.parameters() if id(p) not in gate_ids]

    def forward_taps(self, x) -> tuple[torch.Tensor, dict]:
        x, taps = _run_stages(self, x)
        return self.last(x).view(x.shape[0]), taps

    def forward(self, x):
        return self.forward_taps(x)[0]


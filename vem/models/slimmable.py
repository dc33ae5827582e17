"""GAN-Compression's width-sliceable mobile ResNet: one module is both the "once-for-all" supernet and, built
at a configuration, the standalone sub-network it exports.

A *configuration* is GAN-Compression's 8 integers ``c0 .. c7`` (its ``config_str`` ``c0_c1_..._c7``):

=====  =========================================================================================
c0     output of the 7x7 input convolution
c1     the first stride-2 convolution outputs ``2 c1``
c2     the second stride-2 convolution outputs ``4 c2`` = the residual stream (every block's output)
c3-c5  inner width ``4 c`` (the first separable convolution's output) of the blocks of the first,
       second and third group (9 blocks: 1-3, 4-6, 7-9; ``n_blocks // 3`` blocks per group, the rest
       in the last)
c6     the first transposed convolution outputs ``2 c6``
c7     the second transposed convolution outputs ``c7``; a 7x7 convolution (with bias) makes the image
=====  =========================================================================================

Every norm is an instance norm without affine parameters (width-agnostic); every convolution has a bias
(GAN-Compression's ``use_bias`` for instance norms); the input is clamped to [-1, 1] as its generators do;
each block is reflect-pad, separable conv (depthwise 3x3, norm, pointwise 1x1), norm, ReLU, dropout,
reflect-pad, separable conv, norm, plus the input. ``forward(x, config)`` slices every weight from the
front (``[:out, :in]``), as GAN-Compression's ``Super*`` layers do; :meth:`subnet` copies those slices
into a module built at ``config``, whose plain forward then equals the supernet's at ``config``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..metrics.slimmable import block_groups, config_str, layer_widths


def _conv(x, conv: nn.Conv2d, out: int, groups: int = 1):
    c_in = x.shape[1]
    w = conv.weight[:out] if groups > 1 else conv.weight[:out, :c_in]
    b = conv.bias[:out] if conv.bias is not None else None
    return F.conv2d(x, w, b, conv.stride, conv.padding, conv.dilation, groups)


def _norm(x):
    return F.instance_norm(x, eps=1e-5)


class SlimmableBlock(nn.Module):
    def __init__(self, dim: int, inner: int, dropout: float):
        super().__init__()
        self.dw1 = nn.Conv2d(dim, dim, 3, groups=dim)
        self.pw1 = nn.Conv2d(dim, inner, 1)
        self.dw2 = nn.Conv2d(inner, inner, 3, groups=inner)
        self.pw2 = nn.Conv2d(inner, dim, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, inner: int | None = None):
        dim = x.shape[1]
        inner = self.pw1.out_channels if inner is None else inner
        h = F.pad(x, (1, 1, 1, 1), mode="reflect")
        h = _conv(_norm(_conv(h, self.dw1, dim, groups=dim)), self.pw1, inner)
        h = self.dropout(F.relu(_norm(h)))
        h = F.pad(h, (1, 1, 1, 1), mode="reflect")
        h = _conv(_norm(_conv(h, self.dw2, inner, groups=inner)), self.pw2, dim)
        return x + _norm(h)


class SlimmableMobileResnet(nn.Module):
    """The mobile ResNet at widths ``channels`` (8 integers); ``forward(x, config)`` runs the sub-network of
    a configuration no wider than ``channels`` on the front slices of the weights."""

    def __init__(self, in_nc: int, out_nc: int, channels, n_blocks: int = 9, dropout: float = 0.0):
        super().__init__()
        if n_blocks < 3:
            raise ValueError(f"the mobile ResNet has three block groups: n_blocks must be >= 3, got {n_blocks}")
        self.channels = [int(v) for v in channels]
        w = layer_widths(self.channels)
        self.groups = block_groups(n_blocks)
        self.stem = nn.Conv2d(in_nc, w["stem"], 7)
        self.down = nn.ModuleList([nn.Conv2d(w["stem"], w["down"][0], 3, 2, 1),
                                   nn.Conv2d(w["down"][0], w["down"][1], 3, 2, 1)])
        self.blocks = nn.ModuleList([SlimmableBlock(w["down"][1], w["inner"][g], dropout) for g in self.groups])
        self.up = nn.ModuleList([nn.ConvTranspose2d(w["down"][1], w["up"][0], 3, 2, 1, output_padding=1),
                                 nn.ConvTranspose2d(w["up"][0], w["up"][1], 3, 2, 1, output_padding=1)])
        self.head = nn.Conv2d(w["up"][1], out_nc, 7)
        n = len(self.blocks)
        k = n // 3
        # GAN-Compression's mapping layers model.9/12/15/18: the stream after down-sampling, after the
        # last block of each group
        self._taps = [k - 1, 2 * k - 1, n - 1]

    def _widths(self, config) -> dict:
        w = layer_widths(self.channels if config is None else config)
        full = layer_widths(self.channels)
        for key in full:
            got, top = w[key], full[key]
            if (got > top) if key == "stem" else any(a > b for a, b in zip(got, top)):
                raise ValueError(f"configuration {config_str(config)} is wider than this network "
                                 f"({config_str(self.channels)}) at its {key} layers")
        return w

    def _run(self, x, config, feats):
        w = self._widths(config)
        h = x.clamp(-1, 1)
        h = F.relu(_norm(_conv(F.pad(h, (3, 3, 3, 3), mode="reflect"), self.stem, w["stem"])))
        for conv, out in zip(self.down, w["down"]):
            h = F.relu(_norm(_conv(h, conv, out)))
        if feats is not None:
            feats.append(h)
        for i, (block, g) in enumerate(zip(self.blocks, self.groups)):
            h = block(h, w["inner"][g])
            if feats is not None and i in self._taps:
                feats.append(h)
        for conv, out in zip(self.up, w["up"]):
            c_in = h.shape[1]
            b = conv.bias[:out] if conv.bias is not None else None
            h = F.conv_transpose2d(h, conv.weight[:c_in, :out], b, conv.stride, conv.padding, conv.output_padding)
            h = F.relu(_norm(h))
        h = F.pad(h, (3, 3, 3, 3), mode="reflect")
        return torch.tanh(_conv(h, self.head, self.head.out_channels))

    def forward(self, x, config=None):
        return self._run(x, config, None)

    def forward_features(self, x, config=None):
        """The output and GAN-Compression's four distillation maps (the stream after down-sampling and
        after each block group)."""
        feats: list[torch.Tensor] = []
        y = self._run(x, config, feats)
        return y, feats

    def stream_width(self, config=None) -> int:
        return self._widths(config)["down"][1]

    @torch.no_grad()
    def subnet(self, config) -> SlimmableMobileResnet:
        """A standalone network built at ``config`` holding the front slices of these weights."""
        self._widths(config)
        sub = SlimmableMobileResnet(self.stem.in_channels, self.head.out_channels, config, len(self.blocks),
                                    self.blocks[0].dropout.p)
        src, dst = self.state_dict(), sub.state_dict()
        for name, t in dst.items():
            s = src[name]
            if name.startswith("up.") and name.endswith("weight"):       # transposed: [in, out, k, k]
                t.copy_(s[:t.shape[0], :t.shape[1]])
            elif t.dim() == 4 and t.shape[1] == 1 and s.shape[1] == 1:    # depthwise: [c, 1, k, k]
                t.copy_(s[:t.shape[0]])
            elif t.dim() == 4:
                t.copy_(s[:t.shape[0], :t.shape[1]])
            else:
                t.copy_(s[:t.shape[0]])
        return sub


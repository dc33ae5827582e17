"""CAT's inception-block generator (Jin et al., CVPR 2021, ``inception_9blocks``), with per-layer widths.

A ResNet-style generator (7x7 conv, two stride-2 convs, ``n_blocks`` inception blocks at 1/4 resolution,
two transposed convs, 7x7 conv, tanh) whose residual blocks hold, for every kernel size k in
``kernel_sizes`` (CAT: 1, 3, 5), two branches with a mid width m:

* "res": reflect-pad (k-1)/2 -> k x k conv C->m -> norm -> ReLU -> dropout -> reflect-pad -> k x k conv m->C
* "dw":  1x1 conv C->m -> norm -> ReLU -> reflect-pad -> k x k depthwise conv (m groups) -> norm -> ReLU
  -> dropout -> 1x1 conv m->C

and output ``x + norm(sum of the branches)``; a branch of width 0 does not exist, a block without branches
is the identity. Every conv has a bias unless the norm is BatchNorm (CAT's ``use_bias`` rule). Unpruned,
every branch has m = C // ``reduction`` (CAT's channels_reduction_factor 6).

``widths`` (what pruning changes, all recorded in a checkpoint) is
``{"down": [c0, c1, c2], "blocks": [{"res": [m per k], "dw": [m per k]}, ...], "up": [u0, u1]}``; the
residual stream width is c2. Module names follow CAT's (``down_sampling``, ``features.<b>.res_ops``, ...), so
``down_sampling.9`` is the ReLU after the second stride-2 conv, one of CAT's kernel-alignment layers.
"""

from __future__ import annotations

import torch
from torch import nn

from .generators import norm_layer


def default_widths(ngf: int, n_blocks: int, kernel_sizes, reduction: int) -> dict:
    m = (4 * ngf) // reduction
    return {"down": [ngf, 2 * ngf, 4 * ngf], "up": [2 * ngf, ngf],
            "blocks": [{"res": [m] * len(kernel_sizes), "dw": [m] * len(kernel_sizes)} for _ in range(n_blocks)]}


def _check_widths(widths: dict, n_blocks: int, kernel_sizes) -> None:
    if sorted(widths) != ["blocks", "down", "up"] or len(widths["down"]) != 3 or len(widths["up"]) != 2:
        raise ValueError(f"inception widths must be {{down: [3 widths], blocks: [...], up: [2 widths]}}, got {widths}")
    if len(widths["blocks"]) != n_blocks:
        raise ValueError(f"inception widths list {len(widths['blocks'])} blocks for n_blocks={n_blocks}")
    for b in widths["blocks"]:
        if sorted(b) != ["dw", "res"] or len(b["res"]) != len(kernel_sizes) or len(b["dw"]) != len(kernel_sizes):
            raise ValueError(f"inception block widths need res/dw lists of {len(kernel_sizes)}, got {b}")
    flat = widths["down"] + widths["up"] + [w for b in widths["blocks"] for w in b["res"] + b["dw"]]
    if any((not isinstance(w, int)) or w < 0 for w in flat) or min(widths["down"] + widths["up"]) < 1:
        raise ValueError(f"inception widths must be non-negative integers (down/up >= 1), got {widths}")


class InceptionBlock(nn.Module):
    def __init__(self, channels: int, res: list[int], dw: list[int], kernel_sizes, norm: str, dropout: float):
        super().__init__()
        nl = norm_layer(norm)
        bias = norm != "batch"
        self.kernel_sizes = list(kernel_sizes)
        self.res_kernels = [k for k, m in zip(kernel_sizes, res) if m]
        self.dw_kernels = [k for k, m in zip(kernel_sizes, dw) if m]
        self.res_ops = nn.ModuleList(
            nn.Sequential(nn.ReflectionPad2d((k - 1) // 2),
                          nn.Sequential(nn.Conv2d(channels, m, k, bias=bias), nl(m), nn.ReLU(True)),
                          nn.Dropout(dropout), nn.ReflectionPad2d((k - 1) // 2), nn.Conv2d(m, channels, k, bias=bias))
            for k, m in zip(kernel_sizes, res) if m)
        self.dw_ops = nn.ModuleList(
            nn.Sequential(nn.Sequential(nn.Conv2d(channels, m, 1, bias=bias), nl(m), nn.ReLU(True)),
                          nn.ReflectionPad2d((k - 1) // 2),
                          nn.Sequential(nn.Conv2d(m, m, k, groups=m, bias=bias), nl(m), nn.ReLU(True)),
                          nn.Dropout(dropout), nn.Conv2d(m, channels, 1, bias=bias))
            for k, m in zip(kernel_sizes, dw) if m)
        self.pw_bn = nl(channels)

    def first_norms(self) -> dict[str, list[nn.Module]]:
        """The norm after each branch's first conv (CAT prunes a branch's mid channels by its |gamma|)."""
        return {"res": [op[1][1] for op in self.res_ops], "dw": [op[0][1] for op in self.dw_ops]}

    def forward(self, x):
        if not len(self.res_ops) and not len(self.dw_ops):
            return x
        return x + self.pw_bn(sum(op(x) for op in self.res_ops) + sum(op(x) for op in self.dw_ops))


class InceptionGenerator(nn.Module):
    def __init__(self, in_nc: int = 3, out_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance_affine", dropout: float = 0.0, kernel_sizes=(1, 3, 5), reduction: int = 6,
                 widths: dict | None = None):
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"inception generator n_blocks must be >= 1, got {n_blocks}")
        if len(set(kernel_sizes)) != len(kernel_sizes) or any(k % 2 == 0 or k < 1 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must be distinct odd sizes, got {list(kernel_sizes)}")
        widths = widths or default_widths(ngf, n_blocks, kernel_sizes, reduction)
        _check_widths(widths, n_blocks, kernel_sizes)
        nl = norm_layer(norm)
        bias = norm != "batch"
        c0, c1, c2 = widths["down"]
        u0, u1 = widths["up"]
        self.down_sampling = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(in_nc, c0, 7, bias=bias), nl(c0), nn.ReLU(True),
            nn.Conv2d(c0, c1, 3, 2, 1, bias=bias), nl(c1), nn.ReLU(True),
            nn.Conv2d(c1, c2, 3, 2, 1, bias=bias), nl(c2), nn.ReLU(True))
        self.features = nn.Sequential(*[InceptionBlock(c2, b["res"], b["dw"], kernel_sizes, norm, dropout)
                                        for b in widths["blocks"]])
        self.up_sampling = nn.Sequential(
            nn.ConvTranspose2d(c2, u0, 3, 2, 1, output_padding=1, bias=bias), nl(u0), nn.ReLU(True),
            nn.ConvTranspose2d(u0, u1, 3, 2, 1, output_padding=1, bias=bias), nl(u1), nn.ReLU(True),
            nn.ReflectionPad2d(3), nn.Conv2d(u1, out_nc, 7), nn.Tanh())
        self.widths = widths
        k = max(1, n_blocks // 3)
        # CAT's kernel-alignment layers: down_sampling.9 and features.2/5/8 of 9 blocks (k-1, 2k-1, last)
        self._taps = [min(k - 1, n_blocks - 1), min(2 * k - 1, n_blocks - 1), n_blocks - 1]

    def down_norms(self) -> list[nn.Module]:
        return [self.down_sampling[i] for i in (2, 5, 8)]

    def up_norms(self) -> list[nn.Module]:
        return [self.up_sampling[i] for i in (1, 4)]

    def forward(self, x):
        return self.up_sampling(self.features(self.down_sampling(x)))

    def forward_features(self, x) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.down_sampling(x)
        feats, outs = [h], []
        for b in self.features:
            h = b(h)
            outs.append(h)
        return self.up_sampling(h), feats + [outs[i] for i in self._taps]

"""Independent references for the fidelity tests: OMGD's (and pix2pix's) networks and conventions written
here from the facts of the original code (module layout, layer order, in-place activations, init), not
from vem.models. Weights are copied from our networks by registration order, so "same weights, same
outputs" is checked, not counts.

The U-Net keeps the original's module paths (``model.model.1.model.3.model.0`` ...) so that OMGD's
channel-distillation hooks can be placed by name.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def copy_by_order(src: nn.Module, dst: nn.Module) -> None:
    """Copy every state entry of ``src`` into ``dst`` in registration order; both must list the same shapes."""
    a, b = list(src.state_dict().values()), dst.state_dict()
    assert len(a) == len(b), f"{len(a)} state entries vs {len(b)}"
    new = {}
    for (k, t), v in zip(b.items(), a):
        assert t.shape == v.shape, f"{k}: {tuple(t.shape)} vs {tuple(v.shape)}"
        new[k] = v.clone()
    dst.load_state_dict(new)


def perturb(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random values in every parameter (BatchNorm scales around 1) and BatchNorm buffer, so that norms,
    biases and running statistics all matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            for name, p in m.named_parameters(recurse=False):
                scale = 1.0 if isinstance(m, nn.BatchNorm2d) and name == "weight" else 0.0
                p.copy_(scale + 0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return net


# ---- OMGD's U-Nets (unet_256 / unet_deepest_256 and their shallower analogues) -------------------------


class _DeepBlock(nn.Module):
    """The residual block OMGD deepens its U-Net teacher with (a dropout slot at rate 0 included)."""

    def __init__(self, c: int, nl, bias: bool):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, 4 * c, 1, bias=bias), nl(4 * c), nn.ReLU(True),
            nn.Conv2d(4 * c, 4 * c, 3, bias=bias), nl(4 * c), nn.ReLU(True),
            nn.Conv2d(4 * c, c, 1, bias=bias), nl(c), nn.ReLU(True), nn.Dropout(0.0),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=bias), nl(c))

    def forward(self, x):
        return x + self.conv_block(x)


class _Level(nn.Module):
    def __init__(self, outer, inner, in_nc=None, sub=None, outermost=False, innermost=False, deep=False):
        super().__init__()
        self.outermost = outermost
        nl, bias = nn.BatchNorm2d, False
        in_nc = outer if in_nc is None else in_nc
        down = nn.Conv2d(in_nc, inner, 4, 2, 1, bias=bias)

        def blocks(c):
            return [_DeepBlock(c, nl, bias), _DeepBlock(c, nl, bias)] if deep else []

        if outermost:
            layers = [down] + blocks(inner) + [sub] + blocks(2 * inner) + [
                nn.ReLU(True), nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias), nl(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, nl(inner)] + blocks(inner) + [
                sub, nn.ReLU(True), nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1, bias=bias), nl(outer)] + blocks(
                outer) + [nn.Dropout(0.0)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        # the in-place LeakyReLU inside self.model has already activated x when cat reads it
        return torch.cat([x, self.model(x)], 1)


class RefUnet(nn.Module):
    def __init__(self, in_nc, out_nc, ngf, num_downs, deep=False):
        super().__init__()
        lvl = _Level(8 * ngf, 8 * ngf, innermost=True)
        for _ in range(num_downs - 5):
            lvl = _Level(8 * ngf, 8 * ngf, sub=lvl, deep=deep)
        for m in (4, 2, 1):
            lvl = _Level(m * ngf, 2 * m * ngf, sub=lvl, deep=deep)
        self.model = _Level(out_nc, ngf, in_nc=in_nc, sub=lvl, outermost=True, deep=deep)

    def forward(self, x):
        return self.model(x)


# OMGD's channel-distillation layers for unet_256 (base_multiteacher_distiller.mapping_layers), coarse order
UNET_CD_LAYERS = ["model.model.1.model.3.model.0",                  # 2 ngf: LeakyReLU'd input of level 3
                  "model.model.1.model.3.model.3.model.3.model.0",  # 8 ngf: LeakyReLU'd input of level 5
                  "model.model.1.model.3.model.3.model.4",          # 16 ngf: ReLU'd input of level 4's up-conv
                  "model.model.1.model.4"]                          # 4 ngf: ReLU'd input of level 2's up-conv


def hooked_features(net: nn.Module, names, x):
    """The outputs of the named modules during one forward pass (cloned at once: in-place ops follow)."""
    got, handles = {}, []
    mods = dict(net.named_modules())
    for n in names:
        handles.append(mods[n].register_forward_hook(lambda m, i, o, n=n: got.__setitem__(n, o.clone())))
    try:
        y = net(x)
    finally:
        for h in handles:
            h.remove()
    return y, [got[n] for n in names]


# ---- OMGD's two-teacher discriminator ---------------------------------------------------------------


class RefMultiD(nn.Module):
    """OMGD's ``multi_n_layers``: five stages (conv+LReLU, three conv+BN+LReLU, the output conv), two copies
    each; stage j < n_share uses the shared copy (the second), otherwise teacher i's own."""

    def __init__(self, in_nc, ndf, n_share):
        super().__init__()
        self.n_share = n_share

        def stage(j):
            if j == 0:
                return nn.Sequential(nn.Conv2d(in_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True))
            if j == 4:
                return nn.Sequential(nn.Conv2d(8 * ndf, 1, 4, 1, 1))
            c_in, c_out, stride = ndf * 2 ** (j - 1), ndf * 2 ** j, 2 if j < 3 else 1
            return nn.Sequential(nn.Conv2d(c_in, c_out, 4, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                                 nn.LeakyReLU(0.2, True))

        self.stages = nn.ModuleList(nn.ModuleList([stage(j), stage(j)]) for j in range(5))

    def forward(self, x, teacher: int):
        for j, copies in enumerate(self.stages):
            x = copies[1 if j < self.n_share else teacher](x)
        return x


# ---- conventions ------------------------------------------------------------------------------------


def tensor2im(x: torch.Tensor) -> np.ndarray:
    """pix2pix/OMGD's ``tensor2im`` for a batch in [-1, 1]: (x + 1) / 2 * 255, clipped, then astype(uint8),
    i.e. truncated; one channel squeezed."""
    a = x.detach().cpu().float().numpy().transpose(0, 2, 3, 1)
    a = np.clip((a + 1) / 2.0 * 255.0, 0, 255)
    if a.shape[-1] == 1:
        a = a[..., 0]
    return a.astype(np.uint8)

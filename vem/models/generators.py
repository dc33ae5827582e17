"""Generators of pix2pix / CycleGAN / OMGD, written once for every scale (built by id: vem.models.backbones).

``unet`` with ``num_downs=8`` and 256^2 inputs is pix2pix's ``unet_256``; with ``num_downs=5`` and 32^2
inputs it is the embedded suite's U-Net. ``resnet`` with 9 blocks is ``resnet_9blocks``; ``mobile_resnet``
(depthwise-separable residual blocks) is GAN-Compression/OMGD's ``mobile_resnet_9blocks``.

Every generator has ``forward_features(x) -> (y, [f1, f2, f3, f4])``: four intermediate maps used by
feature distillation (OMGD's channel distillation, GAN-Compression's mapping layers).
"""

from __future__ import annotations

import functools

import torch
from torch import nn


def norm_layer(kind: str):
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if kind == "instance_affine":   # CAT's --norm_affine: per-channel scale |gamma| is what it prunes by
        return functools.partial(nn.InstanceNorm2d, affine=True, track_running_stats=False)
    if kind == "none":
        return lambda c: nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose batch, instance, instance_affine or none")


# --------------------------------------------------------------------------------------------------
# U-Net


class UnetLevel(nn.Module):
    """One level of the pix2pix U-Net: LeakyReLU, down conv, the inner levels, ReLU, up conv; output =
    cat(x, up). ``tap`` marks the level whose map feature distillation reads: ``"in"`` its LeakyReLU'd input
    (the map its skip connection carries), ``"up"`` the ReLU'd input of its up-conv (the inner level's
    concatenated output) - OMGD's hook positions."""

    def __init__(self, outer_nc, inner_nc, in_nc=None, inner=None, outermost=False, innermost=False,
                 norm="batch", dropout=False, extra_down=None, extra_up=None, tap=None):
        super().__init__()
        self.outermost, self.tap = outermost, tap
        in_nc = outer_nc if in_nc is None else in_nc
        nl = norm_layer(norm)
        use_bias = norm != "batch"
        downconv = nn.Conv2d(in_nc, inner_nc, 4, 2, 1, bias=use_bias)
        if outermost:
            down = [downconv]
            up = [nn.ReLU(), nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1), nn.Tanh()]
        elif innermost:
            down = [downconv]
            up = [nn.ReLU(), nn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1, bias=use_bias), nl(outer_nc)]
        else:
            down = [downconv, nl(inner_nc)]
            up = [nn.ReLU(), nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1, bias=use_bias),
                  nl(outer_nc)]
        if extra_down is not None:
            down.append(extra_down)
        if extra_up is not None:
            if outermost:
                up.insert(0, extra_up)   # OMGD: the blocks, then ReLU -> up-conv -> tanh
            else:
                up.append(extra_up)
        if dropout and not (outermost or innermost):
            up.append(nn.Dropout(0.5))   # the level's last layer (pix2pix, OMGD)
        self.down = nn.Sequential(*down)
        self.inner = inner
        self.up = nn.Sequential(*up)

    def forward(self, x, feats=None):
        if not self.outermost:
            # in place, as pix2pix/OMGD: the skip connection carries the activated x, and torchprofile counts
            # the in-place op as 0 MACs (the out-of-place one as one MAC per element)
            x = nn.functional.leaky_relu(x, 0.2, inplace=True)
            if feats is not None and self.tap == "in":
                feats.append(x)
        h = self.down(x)
        if self.inner is not None:
            h = self.inner(h, feats)
        if feats is not None and self.tap == "up":
            h = self.up[0](h)           # the up path's ReLU
            feats.append(h)
            y = self.up[1:](h)
        else:
            y = self.up(h)
        return y if self.outermost else torch.cat([x, y], 1)


class ExpansionBlock(nn.Module):
    """OMGD's expansion residual block: reflect-pad 1, 1x1 conv x4 channels (on the padded map), 3x3 conv
    (no padding), 1x1 conv back, each with norm + ReLU; reflect-pad 1, 3x3 conv, norm; plus the input.
    OMGD's deep teachers (``unet_deepest_256``, ``mobile_deepest_resnet``) are built from it."""

    def __init__(self, c, norm="batch", expand=4):
        super().__init__()
        nl = norm_layer(norm)
        b = norm != "batch"
        e = c * expand
        self.block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, e, 1, bias=b), nl(e), nn.ReLU(True),
                                   nn.Conv2d(e, e, 3, bias=b), nl(e), nn.ReLU(True),
                                   nn.Conv2d(e, c, 1, bias=b), nl(c), nn.ReLU(True),
                                   nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=b), nl(c))

    def forward(self, x):
        return x + self.block(x)


class UnetGenerator(nn.Module):
    """pix2pix U-Net. ``deep > 0`` gives OMGD's ``unet_deepest``: ``deep`` of OMGD's expansion blocks after every
    down-conv and on every up path of the non-innermost levels (after the up-conv's norm; on the outermost
    level, whose output is the image, before its ReLU -> up-conv -> tanh, on the 2 x ngf concatenated map).
    unet_deepest_256 ngf 16: 18.376 G MACs, 44.172 M params (torchprofile), as OMGD's."""

    def __init__(self, in_nc=3, out_nc=3, ngf=64, num_downs=8, norm="batch", dropout=False, deep=0):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"U-Net num_downs must be >= 5, got {num_downs}")

        def extra(c):
            return nn.Sequential(*[ExpansionBlock(c, norm) for _ in range(deep)]) if deep else None

        # levels are numbered from the outermost (1); OMGD's channel-distillation taps (see forward_features)
        tap = {2: "up", 3: "in", 4: "up", 5: "in"}
        level = UnetLevel(ngf * 8, ngf * 8, innermost=True, norm=norm, tap=tap.get(num_downs))
        for depth in range(num_downs - 1, 4, -1):
            level = UnetLevel(ngf * 8, ngf * 8, inner=level, norm=norm, dropout=dropout,
                              extra_down=extra(ngf * 8), extra_up=extra(ngf * 8), tap=tap.get(depth))
        for depth, mult in ((4, 4), (3, 2), (2, 1)):
            level = UnetLevel(ngf * mult, ngf * mult * 2, inner=level, norm=norm,
                              extra_down=extra(ngf * mult * 2), extra_up=extra(ngf * mult), tap=tap[depth])
        self.model = UnetLevel(out_nc, ngf, in_nc=in_nc, inner=level, outermost=True, norm=norm,
                               extra_down=extra(ngf), extra_up=extra(ngf * 2))
        self.num_downs = num_downs

    def forward(self, x):
        return self.model(x)

    def forward_features(self, x):
        """OMGD's four channel-distillation maps of ``unet_256`` (``mapping_layers``), at the same levels for
        any depth: the LeakyReLU'd inputs of levels 3 and 5 (2 ngf at 1/4 and 8 ngf at 1/16 of the side) and
        the ReLU'd up-conv inputs of levels 4 and 2 (16 ngf at 1/16, 4 ngf at 1/4), in that order."""
        feats: list[torch.Tensor] = []
        y = self.model(x, feats)
        return y, feats


# --------------------------------------------------------------------------------------------------
# ResNet generators


class ResnetBlock(nn.Module):
    def __init__(self, dim, norm="instance", dropout=False):
        super().__init__()
        nl = norm_layer(norm)
        use_bias = norm != "batch"
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), nl(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), nl(dim)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.block(x)


class SeparableConv2d(nn.Sequential):
    def __init__(self, c_in, c_out, k, norm, use_bias, scale=1):
        nl = norm_layer(norm)
        super().__init__(nn.Conv2d(c_in, c_in * scale, k, groups=c_in, bias=use_bias), nl(c_in * scale),
                         nn.Conv2d(c_in * scale, c_out, 1, bias=use_bias))


class MobileResnetBlock(nn.Module):
    def __init__(self, dim, norm="instance", dropout=False):
        super().__init__()
        nl = norm_layer(norm)
        use_bias = norm != "batch"
        layers = [nn.ReflectionPad2d(1), SeparableConv2d(dim, dim, 3, norm, use_bias), nl(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), SeparableConv2d(dim, dim, 3, norm, use_bias), nl(dim)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """pix2pix/CycleGAN ResNet generator; ``mobile=True`` uses separable residual blocks. ``deepest=True`` is OMGD's
    ``mobile_deepest_resnet``: after every down- and up-sampling an expansion block + 3x3 conv/norm/ReLU,
    and two expansion blocks between the halves of the residual blocks (18.237 G MACs, 2.547 M params at
    ngf 16, torchprofile)."""

    def __init__(self, in_nc=3, out_nc=3, ngf=64, n_blocks=9, norm="instance", dropout=False,
                 mobile=False, n_down=2, deepest=False):
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"ResNet generator n_blocks must be >= 1, got {n_blocks}")
        nl = norm_layer(norm)
        use_bias = norm != "batch"
        block = MobileResnetBlock if mobile else ResnetBlock

        def deepen(c):
            if not deepest:
                return []
            return [ExpansionBlock(c, norm), nn.Conv2d(c, c, 3, 1, 1, bias=use_bias), nl(c), nn.ReLU(True)]

        stem = [nn.ReflectionPad2d(3), nn.Conv2d(in_nc, ngf, 7, bias=use_bias), nl(ngf), nn.ReLU(True)]
        for i in range(n_down):
            c = ngf * 2**i
            stem += [nn.Conv2d(c, c * 2, 3, 2, 1, bias=use_bias), nl(c * 2), nn.ReLU(True)] + deepen(c * 2)
        self.stem = nn.Sequential(*stem)
        dim = ngf * 2**n_down
        blocks = [block(dim, norm, dropout) for _ in range(n_blocks)]
        if deepest:
            blocks[n_blocks // 2:n_blocks // 2] = [ExpansionBlock(dim, norm) for _ in range(2)]
        self.blocks = nn.ModuleList(blocks)
        head = []
        for i in range(n_down):
            c = ngf * 2 ** (n_down - i)
            head += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=use_bias), nl(c // 2),
                     nn.ReLU(True)] + deepen(c // 2)
        head += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_nc, 7), nn.Tanh()]
        self.head = nn.Sequential(*head)
        n_all = len(blocks)
        k = max(1, n_all // 3)
        # after blocks k, 2k and the last (model.12/15/18 of resnet_9blocks); repeated when n_blocks < 3
        self._taps = [min(k - 1, n_all - 1), min(2 * k - 1, n_all - 1), n_all - 1]

    def forward(self, x):
        h = self.stem(x)
        for b in self.blocks:
            h = b(h)
        return self.head(h)

    def forward_features(self, x):
        h = self.stem(x)
        feats = [h]
        outs = []
        for b in self.blocks:
            h = b(h)
            outs.append(h)
        return self.head(h), feats + [outs[i] for i in self._taps]

"""Generator backbones by id, and checkpoints that rebuild their generator from the record alone.

A *record* is ``{"backbone": <id>, "kwargs": {every constructor argument, defaults filled in}}``: a
pruned student with per-layer widths (CAT's inception ``widths``) is as rebuildable as an unpruned one.
Checkpoints hold ``{"generator": record, "state_dict": ...}``. Adding a backbone = its module + one
``BACKBONES`` line.

Paper names: ``unet_256`` = unet(num_downs=8), ``unet_deepest_256`` = unet_deepest(num_downs=8),
``resnet_9blocks`` = resnet(n_blocks=9), ``mobile_resnet_9blocks`` = mobile_resnet(n_blocks=9),
``inception_9blocks`` = inception(n_blocks=9) (CAT), ``super_mobile_resnet_9blocks`` /
``sub_mobile_resnet_9blocks`` = slimmable_mobile_resnet(n_blocks=9) at the supernet's / a sub-network's
``channels`` (GAN-Compression), ``sagan_64`` = sagan(image_size=64) (GCC's SAGAN; input z as z_dim x 1 x 1),
``stylegan2_256`` = stylegan2(image_size=256) (CAGC's FFHQ generator: style_dim 512, 8 MLP layers, multiplier 2).
"""

from __future__ import annotations

import inspect

from torch import nn

from .generators import ResnetGenerator, UnetGenerator
from .inception import InceptionGenerator
from .sagan import SAGANGenerator
from .slimmable import SlimmableMobileResnet
from .stylegan2 import StyleGAN2Generator


def unet(in_nc: int = 3, out_nc: int = 3, ngf: int = 64, num_downs: int = 8, norm: str = "batch",
         dropout: bool = False) -> nn.Module:
    return UnetGenerator(in_nc, out_nc, ngf, num_downs, norm, dropout)


def unet_deepest(in_nc: int = 3, out_nc: int = 3, ngf: int = 64, num_downs: int = 8, norm: str = "batch",
                 dropout: bool = False) -> nn.Module:
    return UnetGenerator(in_nc, out_nc, ngf, num_downs, norm, dropout, deep=2)


def resnet(in_nc: int = 3, out_nc: int = 3, ngf: int = 64, n_blocks: int = 9, norm: str = "instance",
           dropout: bool = False) -> nn.Module:
    return ResnetGenerator(in_nc, out_nc, ngf, n_blocks, norm, dropout)


def mobile_resnet(in_nc: int = 3, out_nc: int = 3, ngf: int = 64, n_blocks: int = 9, norm: str = "instance",
                  dropout: bool = False) -> nn.Module:
    return ResnetGenerator(in_nc, out_nc, ngf, n_blocks, norm, dropout, mobile=True)


def mobile_deepest_resnet(in_nc: int = 3, out_nc: int = 3, ngf: int = 64, n_blocks: int = 9, norm: str = "instance",
                          dropout: bool = False) -> nn.Module:
    return ResnetGenerator(in_nc, out_nc, ngf, n_blocks, norm, dropout, mobile=True, deepest=True)


def inception(in_nc: int = 3, out_nc: int = 3, ngf: int = 64, n_blocks: int = 9, norm: str = "instance_affine",
              dropout: float = 0.0, kernel_sizes: list = (1, 3, 5), reduction: int = 6,
              widths: dict | None = None) -> nn.Module:
    return InceptionGenerator(in_nc, out_nc, ngf, n_blocks, norm, dropout, tuple(kernel_sizes), reduction, widths)


def slimmable_mobile_resnet(in_nc: int = 3, out_nc: int = 3, channels: list = (64,) * 8, n_blocks: int = 9,
                            dropout: float = 0.0) -> nn.Module:
    return SlimmableMobileResnet(in_nc, out_nc, list(channels), n_blocks, dropout)


def sagan(in_nc: int = 128, out_nc: int = 3, ngf: int = 64, image_size: int = 64,
          widths: list | None = None) -> nn.Module:
    """SAGAN's generator; ``in_nc`` is the latent size z_dim (input z_dim x 1 x 1), ``widths`` a pruned one's."""
    return SAGANGenerator(in_nc, out_nc, ngf, image_size, widths)


def stylegan2(in_nc: int = 512, out_nc: int = 3, image_size: int = 256, n_mlp: int = 8, channel_multiplier: int = 2,
              channel_max: int = 512, net_shape: list | None = None, lr_mlp: float = 0.01) -> nn.Module:
    """StyleGAN2's generator; ``in_nc`` is the latent (= style) size, ``net_shape`` a pruned one's widths."""
    return StyleGAN2Generator(in_nc, out_nc, image_size, n_mlp, channel_multiplier, channel_max, net_shape, lr_mlp)


BACKBONES = {f.__name__: f for f in (unet, unet_deepest, resnet, mobile_resnet, mobile_deepest_resnet, inception,
                                     slimmable_mobile_resnet, sagan, stylegan2)}

PAPER_MODELS = {
    "unet_256": ("unet", {"num_downs": 8}),
    "unet_deepest_256": ("unet_deepest", {"num_downs": 8}),
    "resnet_9blocks": ("resnet", {"n_blocks": 9}),
    "mobile_resnet_9blocks": ("mobile_resnet", {"n_blocks": 9}),
    "mobile_deepest_resnet": ("mobile_deepest_resnet", {"n_blocks": 9}),
    "inception_9blocks": ("inception", {"n_blocks": 9}),
    "super_mobile_resnet_9blocks": ("slimmable_mobile_resnet", {"n_blocks": 9}),
    "sagan_64": ("sagan", {"image_size": 64}),
    "stylegan2_256": ("stylegan2", {"image_size": 256}),
}


def _factory(name: str):
    if name not in BACKBONES:
        raise ValueError(f"unknown generator backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name]


def record(name: str, **kwargs) -> dict:
    """The complete record of a generator: unknown arguments raise, defaults are written out."""
    sig = inspect.signature(_factory(name))
    unknown = sorted(set(kwargs) - set(sig.parameters))
    if unknown:
        raise ValueError(f"backbone {name!r} takes no argument(s) {unknown}; it takes {list(sig.parameters)}")
    bound = sig.bind(**kwargs)
    bound.apply_defaults()
    kw = {k: list(v) if isinstance(v, tuple) else v for k, v in bound.arguments.items()}
    if kw.get("ngf", 1) < 1:
        raise ValueError(f"ngf must be >= 1, got {kw['ngf']}")
    return {"backbone": name, "kwargs": kw}


def from_config(section: dict, in_nc: int, out_nc: int, **changes) -> dict:
    """The record of the generator a config section describes (``arch`` + the keys its backbone takes,
    e.g. ngf/norm/num_downs/n_blocks); ``changes`` replace values (a student's width, another arch)."""
    values = {**section, **changes}
    name = values.pop("arch")
    params = inspect.signature(_factory(name)).parameters
    kw = {k: v for k, v in values.items() if k in params}
    return record(name, **{**kw, "in_nc": in_nc, "out_nc": out_nc})


def build(rec: dict) -> nn.Module:
    return _factory(rec["backbone"])(**rec["kwargs"])


def load_generator(ck: dict, state_dict=None) -> nn.Module:
    """The generator of a checkpoint ``{"generator": record, "state_dict": ...}`` (or of another state dict)."""
    rec = ck.get("generator")
    if not isinstance(rec, dict) or "backbone" not in rec:
        raise ValueError("checkpoint holds no generator record (backbone + kwargs)")
    G = build(rec)
    G.load_state_dict(ck["state_dict"] if state_dict is None else state_dict)
    return G


def init_weights(net: nn.Module, kind: str = "normal", gain: float = 0.02) -> nn.Module:
    """pix2pix/CycleGAN's ``init_weights`` (also CAT's, OMGD's, GAN-Compression's): conv/linear weights
    N(0, gain) (a spectrally normalised one: its original weight), biases 0; BatchNorm weights N(1, gain), biases
    0; other norms keep PyTorch's (1, 0). ``kind='default'``: unchanged.

    ``kind='gcc'``: GCC's ``util.init_weights`` as it acts on its SAGAN: it only touches modules that have a
    ``weight`` attribute, and GCC's SpectralNorm wrapper has already deleted the wrapped convolution's
    ``weight``, so spectrally normalised convolutions keep PyTorch's default initialisation (weight and bias);
    the other conv/linear weights N(0, gain), biases 0; BatchNorm weights N(1, gain) and biases N(0, 1)
    (``init.normal_(m.bias.data, 0.0)``: the default standard deviation 1)."""
    if kind == "default":
        return net
    if kind not in ("normal", "gcc"):
        raise ValueError(f"unknown init {kind!r}; choose normal, gcc or default")
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            parametrized = getattr(m, "parametrizations", None)
            if parametrized is not None and kind == "gcc":
                continue
            nn.init.normal_(parametrized.weight.original if parametrized is not None else m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            if kind == "gcc":
                nn.init.normal_(m.bias, 0.0, 1.0)
            else:
                nn.init.zeros_(m.bias)
    return net

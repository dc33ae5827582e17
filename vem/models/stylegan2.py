"""StyleGAN2 (Karras et al., 2020) in the layout CAGC compresses (rosinality's ``model.py``, the code of
lychenyoko/content-aware-gan-compression), in plain PyTorch (no custom CUDA ops; runs on CPU).

Generator. ``mapping`` = PixelNorm + ``n_mlp`` equalised linear layers style_dim -> style_dim (learning-rate
multiplier ``lr_mlp``, bias + LeakyReLU(0.2) x sqrt 2). Synthesis: a learned constant 4x4 (``const``), then
``conv1`` (3x3 styled conv) and ``to_rgb1``; per resolution 8 .. size a styled 3x3 conv that upsamples x2
(transposed conv stride 2, then the [1, 3, 3, 1] blur), a styled 3x3 conv and a ``ToRGB`` whose output is added
to the upsampled (blurred) skip image. A styled conv: the weight modulated by an affine of the style (bias
initialised to 1), demodulated (rsqrt of the per-output sum of squares + 1e-8), per-pixel noise scaled by a
learned strength (init 0), bias + LeakyReLU(0.2) x sqrt 2. ToRGB: a 1x1 modulated conv without demodulation,
bias. All weights are stored N(0, 1) and scaled at run time (equalised learning rate: 1 / sqrt(fan_in)).

Widths: ``net_shape`` = the width of every feature map of the synthesis chain - the constant (= conv1's input),
conv1's output, then each of the 2 (log2 size - 2) styled convs' outputs (14 numbers at 256 px: CAGC's
``generator_net_shape``) - so a channel-pruned generator rebuilds from its record. By default rosinality's
table {4..32: 512, 64: 256 c, 128: 128 c, 256: 64 c, ...} (c = ``channel_multiplier``), capped at
``channel_max`` (the mini preset's small widths).

Noise: in training mode fresh N(0, 1) noise per forward (rosinality's ``randomize_noise=True``: teacher and
student see different noise); in eval mode the fixed buffers ``noise_<i>`` (part of the state dict), so an
evaluation is deterministic - rosinality's default would draw fresh noise there too. ``noise=`` overrides.

Discriminator: rosinality's residual D (never pruned by CAGC): 1x1 ConvLayer from RGB, one ResBlock per
resolution (3x3 conv, blur + 3x3 stride-2 conv, a blurred 1x1 stride-2 skip without bias, summed / sqrt 2),
the minibatch-stddev channel (group 4, 1 feature), a 3x3 ConvLayer and two equalised linear layers.

The released checkpoints' state dicts (``g_ema``, ``d``) convert with :func:`from_rosinality`.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)
BLUR = (1.0, 3.0, 3.0, 1.0)


def channel_table(size: int, channel_multiplier: int = 2, channel_max: int = 512) -> dict[int, int]:
    """rosinality's channels per resolution up to ``size``, each capped at ``channel_max``."""
    cm = channel_multiplier
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm,
            1024: 16 * cm}
    return {r: min(c, channel_max) for r, c in base.items() if r <= size}


def log_size(size: int) -> int:
    n = int(round(math.log2(size))) if size > 0 else 0
    if size < 8 or 2 ** n != size or size > 1024:
        raise ValueError(f"StyleGAN2 size must be a power of 2 in [8, 1024], got {size}")
    return n


def default_net_shape(size: int, channel_multiplier: int = 2, channel_max: int = 512) -> list[int]:
    """The synthesis chain's widths: constant, conv1, then two per resolution 8 .. size."""
    t = channel_table(size, channel_multiplier, channel_max)
    shape = [t[4], t[4]]
    for i in range(3, log_size(size) + 1):
        shape += [t[2 ** i], t[2 ** i]]
    return shape


def blur_kernel(k=BLUR) -> torch.Tensor:
    k = torch.tensor(k, dtype=torch.float32)
    k = torch.outer(k, k)
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad=(0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad (pad0 before, pad1 after, both axes), FIR-filter depthwise, decimate."""
    b, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(b, c, h * up, w * up)
        z[..., ::up, ::up] = x
        x = z
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    k = torch.flip(kernel, [0, 1]).to(x.dtype).expand(c, 1, *kernel.shape)
    x = F.conv2d(x, k, groups=c)
    return x[..., ::down, ::down] if down > 1 else x


def lrelu(x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """rosinality's fused_leaky_relu: LeakyReLU(0.2)(x + bias) x sqrt 2."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.dim() - 2)))
    return F.leaky_relu(x, 0.2) * SQRT2


class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale, self.lr_mul, self.activate = lr_mul / math.sqrt(in_dim), lr_mul, activate

    def forward(self, x):
        if self.activate:
            return lrelu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class Mapping(nn.Module):
    def __init__(self, style_dim: int, n_mlp: int, lr_mlp: float):
        super().__init__()
        self.layers = nn.ModuleList(EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activate=True)
                                    for _ in range(n_mlp))

    def forward(self, z):
        w = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)     # PixelNorm
        for layer in self.layers:
            w = layer(w)
        return w


class ModulatedConv(nn.Module):
    """A k x k conv whose weight is scaled per input channel by ``affine(style)`` (and demodulated); with
    ``upsample`` a stride-2 transposed conv followed by the blur (output exactly 2x the input)."""

    eps = 1e-8           # demodulation's epsilon

    def __init__(self, in_ch: int, out_ch: int, k: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, k, k))
        self.affine = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_ch * k * k)
        self.demodulate, self.upsample, self.k = demodulate, upsample, k
        if upsample:
            self.register_buffer("blur", blur_kernel() * 4, persistent=False)

    def forward(self, x, w):
        s = self.affine(w)                                           # B x in
        weight = self.weight * self.scale
        x = x * s.view(*s.shape, 1, 1)
        if self.upsample:
            out = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
            out = upfirdn2d(out, self.blur, pad=(1, 1))
        else:
            out = F.conv2d(x, weight, padding=self.k // 2)
        if self.demodulate:                                          # rsqrt(sum_{i,k} (w_oik s_i)^2 + 1e-8)
            d = torch.rsqrt(s.pow(2) @ weight.pow(2).sum((2, 3)).t() + self.eps)
            out = out * d.view(*d.shape, 1, 1)
        return out


class StyledConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv(in_ch, out_ch, 3, style_dim, upsample=upsample)
        self.noise_strength = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x, w, noise):
        out = self.conv(x, w)
        out = out + self.noise_strength * noise
        return lrelu(out, self.bias)


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, style_dim: int, out_nc: int = 3, upsample: bool = True):
        super().__init__()
        self.conv = ModulatedConv(in_ch, out_nc, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_nc))
        if upsample:
            self.register_buffer("blur", blur_kernel() * 4, persistent=False)

    def forward(self, x, w, skip=None):
        out = self.conv(x, w) + self.bias.view(1, -1, 1, 1)
        if skip is not None:
            out = out + upfirdn2d(skip, self.blur, up=2, pad=(2, 1))
        return out


class StyleGAN2Generator(nn.Module):
    def __init__(self, style_dim: int = 512, out_nc: int = 3, size: int = 256, n_mlp: int = 8,
                 channel_multiplier: int = 2, channel_max: int = 512, net_shape: list | None = None,
                 lr_mlp: float = 0.01):
        super().__init__()
        n = log_size(size)
        shape = list(net_shape) if net_shape is not None else default_net_shape(size, channel_multiplier,
                                                                                  channel_max)
        if len(shape) != 2 * n - 2 or min(shape) < 1:
            raise ValueError(f"StyleGAN2 at {size} px has {2 * n - 2} channel groups; net_shape must be "
                             f"{2 * n - 2} integers >= 1, got {shape}")
        if n_mlp < 1:
            raise ValueError(f"n_mlp must be >= 1, got {n_mlp}")
        self.style_dim, self.size, self.net_shape = style_dim, size, shape
        self.n_latent = 2 * n - 2                   # one w per styled conv + the last ToRGB
        self.num_layers = 2 * n - 3                 # styled convs = noise inputs
        self.mapping = Mapping(style_dim, n_mlp, lr_mlp)
        self.const = nn.Parameter(torch.randn(1, shape[0], 4, 4))
        self.conv1 = StyledConv(shape[0], shape[1], style_dim)
        self.to_rgb1 = ToRGB(shape[1], style_dim, out_nc, upsample=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        for j in range(n - 2):
            a, b, c = shape[1 + 2 * j], shape[2 + 2 * j], shape[3 + 2 * j]
            self.convs.append(StyledConv(a, b, style_dim, upsample=True))
            self.convs.append(StyledConv(b, c, style_dim))
            self.to_rgbs.append(ToRGB(c, style_dim, out_nc))
        for i in range(self.num_layers):
            r = 2 ** ((i + 5) // 2)
            self.register_buffer(f"noise_{i}", torch.randn(1, 1, r, r))

    def styled_convs(self) -> list[StyledConv]:
        """conv1 then the synthesis convs, in order (the layers whose input widths CAGC prunes)."""
        return [self.conv1, *self.convs]

    def noises(self, batch: int, mode: str | None = None, like: torch.Tensor | None = None) -> list:
        """One noise map per styled conv: ``random`` (fresh N(0, 1)), ``fixed`` (the buffers) or ``zero``;
        default random in training mode, fixed in eval mode."""
        mode = mode or ("random" if self.training else "fixed")
        bufs = [getattr(self, f"noise_{i}") for i in range(self.num_layers)]
        if mode == "fixed":
            return bufs
        if mode == "random":
            return [torch.randn(batch, 1, *b.shape[2:], device=b.device, dtype=like.dtype if like is not None
                                else b.dtype) for b in bufs]
        if mode == "zero":
            return [torch.zeros_like(b) for b in bufs]
        raise ValueError(f"unknown noise mode {mode!r}; choose random, fixed or zero")

    def latents(self, w: torch.Tensor, w2: torch.Tensor | None = None, inject_index: int | None = None):
        """W+ (B x n_latent x style_dim): w for every layer, or w for the first ``inject_index`` and w2 after
        (style mixing)."""
        if w2 is None:
            return w.unsqueeze(1).repeat(1, self.n_latent, 1)
        if not 1 <= inject_index < self.n_latent:
            raise ValueError(f"inject_index must be in [1, {self.n_latent - 1}], got {inject_index}")
        return torch.cat([w.unsqueeze(1).repeat(1, inject_index, 1),
                          w2.unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)], 1)

    def synthesis_taps(self, latent: torch.Tensor, noise=None) -> tuple[torch.Tensor, list]:
        """(image, the map after each resolution's convs) for W+ ``latent``."""
        if noise is None or isinstance(noise, str):
            noise = self.noises(latent.shape[0], noise, like=latent)
        x = self.const.repeat(latent.shape[0], 1, 1, 1)
        x = self.conv1(x, latent[:, 0], noise[0])
        skip = self.to_rgb1(x, latent[:, 1])
        maps = [x]
        for j, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * j](x, latent[:, 1 + 2 * j], noise[1 + 2 * j])
            x = self.convs[2 * j + 1](x, latent[:, 2 + 2 * j], noise[2 + 2 * j])
            skip = to_rgb(x, latent[:, 3 + 2 * j], skip)
            maps.append(x)
        return skip, maps

    def synthesis(self, latent: torch.Tensor, noise=None) -> torch.Tensor:
        return self.synthesis_taps(latent, noise)[0]

    def forward_taps(self, z, noise=None) -> tuple[torch.Tensor, list]:
        if z.dim() == 4:
            z = z.flatten(1)
        return self.synthesis_taps(self.latents(self.mapping(z)), noise)

    def forward(self, z, noise=None):
        """Image of latents z (B x style_dim, or B x style_dim x 1 x 1 as the harness's A side)."""
        return self.forward_taps(z, noise)[0]

    def forward_features(self, z):
        """(image, four maps) as every generator offers: the last four resolutions' outputs."""
        y, maps = self.forward_taps(z)
        return y, maps[-4:]

    @torch.no_grad()
    def mean_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.style_dim, generator=generator, device=self.const.device)
        return self.mapping(z).mean(0, keepdim=True)


class ConvLayer(nn.Module):
    """rosinality's ConvLayer: optional blur + stride-2 (downsample), equalised conv, bias + LeakyReLU x sqrt 2
    (``activate``) or a plain bias (``bias``)."""

    def __init__(self, in_ch: int, out_ch: int, k: int, downsample: bool = False, bias: bool = True,
                 activate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, k, k))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale, self.downsample, self.activate, self.k = 1.0 / math.sqrt(in_ch * k * k), downsample, activate, k
        if downsample:
            p = (len(BLUR) - 2) + (k - 1)
            self.pad = ((p + 1) // 2, p // 2)
            self.register_buffer("blur", blur_kernel(), persistent=False)

    def forward(self, x):
        w = self.weight * self.scale
        if self.downsample:
            x = F.conv2d(upfirdn2d(x, self.blur, pad=self.pad), w, stride=2)
        else:
            x = F.conv2d(x, w, padding=self.k // 2)
        if self.activate:
            return lrelu(x, self.bias)
        return x if self.bias is None else x + self.bias.view(1, -1, 1, 1)


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample=True)
        self.skip = ConvLayer(in_ch, out_ch, 1, downsample=True, bias=False, activate=False)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class StyleGAN2Discriminator(nn.Module):
    def __init__(self, in_nc: int = 3, size: int = 256, channel_multiplier: int = 2, channel_max: int = 512,
                 stddev_group: int = 4):
        super().__init__()
        n = log_size(size)
        t = channel_table(size, channel_multiplier, channel_max)
        self.from_rgb = ConvLayer(in_nc, t[size], 1)
        self.blocks = nn.ModuleList(ResBlock(t[2 ** i], t[2 ** (i - 1)]) for i in range(n, 2, -1))
        self.stddev_group = stddev_group
        self.final_conv = ConvLayer(t[4] + 1, t[4], 3)
        self.final_linear = EqualLinear(t[4] * 16, t[4], activate=True)
        self.out = EqualLinear(t[4], 1)

    def forward(self, x):
        x = self.from_rgb(x)
        for block in self.blocks:
            x = block(x)
        b, c, h, w = x.shape
        g = min(b, self.stddev_group)
        if b % g:
            raise ValueError(f"the minibatch-stddev layer needs a batch divisible by {g}, got {b}")
        y = x.view(g, -1, 1, c, h, w)
        y = torch.sqrt(y.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
        x = torch.cat([x, y.repeat(g, 1, h, w)], 1)
        x = self.final_conv(x)
        return self.out(self.final_linear(x.view(b, -1))).view(b)


# --- rosinality checkpoints -------------------------------------------------------------------------------

def _g_key(key: str) -> str | None:
    """Our name of a rosinality Generator key (None: a blur kernel, rebuilt here)."""
    if key.endswith(".kernel"):
        return None
    m = re.fullmatch(r"style\.(\d+)\.(weight|bias)", key)
    if m:
        return f"mapping.layers.{int(m[1]) - 1}.{m[2]}"
    if key == "input.input":
        return "const"
    m = re.fullmatch(r"noises\.noise_(\d+)", key)
    if m:
        return f"noise_{m[1]}"
    key = key.replace(".conv.modulation.", ".conv.affine.").replace(".noise.weight", ".noise_strength")
    return key.replace(".activate.bias", ".bias")


def _d_key(key: str) -> str | None:
    if key.endswith(".kernel"):
        return None
    m = re.fullmatch(r"convs\.0\.(\d)\.(weight|bias)", key)
    if m:
        return f"from_rgb.{m[2]}"
    m = re.fullmatch(r"convs\.(\d+)\.(conv1|conv2|skip)\.(\d)\.(weight|bias)", key)
    if m:
        return f"blocks.{int(m[1]) - 1}.{m[2]}.{m[4]}"
    m = re.fullmatch(r"final_conv\.\d\.(weight|bias)", key)
    if m:
        return f"final_conv.{m[1]}"
    m = re.fullmatch(r"final_linear\.([01])\.(weight|bias)", key)
    if m:
        return f"{'final_linear' if m[1] == '0' else 'out'}.{m[2]}"
    raise ValueError(f"unexpected key {key!r} in a rosinality StyleGAN2 discriminator state dict")


def generator_kwargs(sd: dict) -> dict:
    """The backbone arguments (``vem.models.record("stylegan2", **these)``) of the generator a rosinality
    ``g_ema`` state dict holds (widths from the shapes: a CAGC-pruned checkpoint is recognised as such;
    ``lr_mlp`` is not in a state dict: rosinality's and CAGC's 0.01 is the default)."""
    n_mlp = len([k for k in sd if re.fullmatch(r"style\.\d+\.weight", k)])
    if "input.input" not in sd or not n_mlp:
        raise ValueError("not a rosinality StyleGAN2 generator state dict (no input.input / style.<i>.weight)")
    style_dim = sd["style.1.weight"].shape[1]
    n_convs = len([k for k in sd if re.fullmatch(r"convs\.\d+\.conv\.weight", k)])
    shape = [sd["input.input"].shape[1], sd["conv1.conv.weight"].shape[1]]
    shape += [sd[f"convs.{i}.conv.weight"].shape[1] for i in range(n_convs)]
    return {"in_nc": int(style_dim), "out_nc": int(sd["to_rgb1.conv.weight"].shape[1]),
            "image_size": 2 ** (n_convs // 2 + 2), "n_mlp": n_mlp, "net_shape": [int(c) for c in shape]}


def from_rosinality(sd: dict, part: str = "generator") -> dict:
    """A rosinality state dict (``g_ema`` / ``g`` or ``d`` of a released checkpoint, CAGC's pruned ones
    included) renamed to this module's parameters; blur kernels are dropped after a check that they are
    the [1, 3, 3, 1] filter this code builds. Load with ``strict=True`` into the model built from
    :func:`generator_kwargs` (the discriminator: the table of its size)."""
    rename = {"generator": _g_key, "discriminator": _d_key}[part]
    out = {}
    for key, value in sd.items():
        new = rename(key)
        if new is None:
            k = blur_kernel().to(value.dtype)
            if not (torch.allclose(value, k) or torch.allclose(value, 4 * k)):
                raise ValueError(f"{key}: blur kernel differs from [1, 3, 3, 1] (this code builds only that)")
            continue
        if value.dim() == 5:                        # modulated conv weight 1 x out x in x k x k
            value = value[0]
        if key.endswith("to_rgb1.bias") or re.fullmatch(r"to_rgbs\.\d+\.bias", key):
            value = value.flatten()                 # 1 x 3 x 1 x 1
        out[new] = value
    return out

"""An independent StyleGAN2 for the same-weights tests: functions over a state dict in the released
(rosinality) key layout, written from the architecture's description, not from vem.models.stylegan2.

Where vem modulates the *input* and uses one shared convolution, this builds each sample's own modulated,
demodulated weight and convolves sample by sample (the "fused" formulation of the original code); the
[1, 3, 3, 1] FIR filters run separably as two 1-D passes; the discriminator's stddev feature is computed
by explicit loops.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

K1 = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8.0        # the 1-D factor of the normalised 4 x 4 blur


def rosinality_channels(size: int, channel_multiplier: int, channel_max: int) -> dict:
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier, 128: 128 * channel_multiplier,
            256: 64 * channel_multiplier}
    return {r: min(c, channel_max) for r, c in base.items() if r <= size}


def make_generator_state(size, style_dim, n_mlp, chain, seed=0, dtype=torch.float64):
    """A random rosinality ``g_ema`` state dict with synthesis widths ``chain`` (const, conv1, then 2 per
    resolution); every bias and noise strength non-zero so that each enters the comparison."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(dtype)

    sd = {}
    for i in range(1, n_mlp + 1):
        sd[f"style.{i}.weight"] = r(style_dim, style_dim, scale=100.0)   # stored / lr_mul (0.01)
        sd[f"style.{i}.bias"] = r(style_dim, scale=0.1)
    sd["input.input"] = r(1, chain[0], 4, 4)
    kernel = (torch.outer(K1, K1) * 4).to(dtype)

    def styled(prefix, cin, cout, up):
        sd[f"{prefix}.conv.weight"] = r(1, cout, cin, 3, 3)
        if up:
            sd[f"{prefix}.conv.blur.kernel"] = kernel.clone()
        sd[f"{prefix}.conv.modulation.weight"] = r(cin, style_dim)
        sd[f"{prefix}.conv.modulation.bias"] = 1.0 + r(cin, scale=0.1)
        sd[f"{prefix}.noise.weight"] = r(1, scale=0.3)
        sd[f"{prefix}.activate.bias"] = r(cout, scale=0.1)

    def rgb(prefix, cin, up):
        if up:
            sd[f"{prefix}.upsample.kernel"] = kernel.clone()
        sd[f"{prefix}.conv.weight"] = r(1, 3, cin, 1, 1)
        sd[f"{prefix}.conv.modulation.weight"] = r(cin, style_dim)
        sd[f"{prefix}.conv.modulation.bias"] = 1.0 + r(cin, scale=0.1)
        sd[f"{prefix}.bias"] = r(1, 3, 1, 1, scale=0.1)

    styled("conv1", chain[0], chain[1], False)
    rgb("to_rgb1", chain[1], False)
    levels = int(math.log2(size)) - 2
    for j in range(levels):
        styled(f"convs.{2 * j}", chain[1 + 2 * j], chain[2 + 2 * j], True)
        styled(f"convs.{2 * j + 1}", chain[2 + 2 * j], chain[3 + 2 * j], False)
        rgb(f"to_rgbs.{j}", chain[3 + 2 * j], True)
    for i in range(2 * levels + 1):
        res = 2 ** ((i + 5) // 2)
        sd[f"noises.noise_{i}"] = r(1, 1, res, res)
    return sd


def _fir_1d(x, axis, pad0, pad1, gain):
    """Filter along ``axis`` (2 or 3) with [1, 3, 3, 1] / 8 x gain after padding (pad0, pad1)."""
    x = x.movedim(axis, -1)
    shape = x.shape
    x = F.pad(x.reshape(-1, 1, shape[-1]), [pad0, pad1])
    x = F.conv1d(x, (K1.flip(0) * gain).to(x.dtype).view(1, 1, 4))
    return x.reshape(*shape[:-1], x.shape[-1]).movedim(-1, axis)


def _fir(x, pad0, pad1, gain=1.0):
    return _fir_1d(_fir_1d(x, 2, pad0, pad1, gain), 3, pad0, pad1, gain)


def _zero_insert(x):
    b, c, h, w = x.shape
    out = torch.zeros(b, c, h, 2, w, 2, dtype=x.dtype)
    out[:, :, :, 0, :, 0] = x
    return out.reshape(b, c, 2 * h, 2 * w)


def _linear(x, w, b, lr_mul=1.0, act=False):
    y = x @ (w * (lr_mul / math.sqrt(w.shape[1]))).t() + b * lr_mul
    return F.leaky_relu(y, 0.2) * math.sqrt(2) if act else y


def _modconv(sd, prefix, x, w, demod=True, up=False):
    weight = sd[f"{prefix}.weight"][0]                           # out x in x k x k
    cout, cin, k, _ = weight.shape
    s = _linear(w, sd[f"{prefix}.modulation.weight"], sd[f"{prefix}.modulation.bias"])
    outs = []
    for i in range(x.shape[0]):
        wi = weight / math.sqrt(cin * k * k) * s[i].view(1, cin, 1, 1)
        if demod:
            wi = wi / torch.sqrt((wi ** 2).sum((1, 2, 3), keepdim=True) + 1e-8)
        xi = x[i:i + 1]
        if up:
            yi = F.conv_transpose2d(xi, wi.transpose(0, 1), stride=2)
            yi = _fir(yi, 1, 1, gain=2.0)                          # 4x4 gain 4 = 2 per axis
        else:
            yi = F.conv2d(xi, wi, padding=k // 2)
        outs.append(yi)
    return torch.cat(outs)


def _styled(sd, prefix, x, w, noise, up=False):
    y = _modconv(sd, f"{prefix}.conv", x, w, up=up)
    y = y + sd[f"{prefix}.noise.weight"] * noise
    return F.leaky_relu(y + sd[f"{prefix}.activate.bias"].view(1, -1, 1, 1), 0.2) * math.sqrt(2)


def _rgb(sd, prefix, x, w, skip=None):
    y = _modconv(sd, f"{prefix}.conv", x, w, demod=False) + sd[f"{prefix}.bias"]
    if skip is not None:
        y = y + _fir(_zero_insert(skip), 2, 1, gain=2.0)
    return y


def mapping(sd, z, n_mlp, lr_mlp=0.01):
    w = z / torch.sqrt((z ** 2).mean(1, keepdim=True) + 1e-8)
    for i in range(1, n_mlp + 1):
        w = _linear(w, sd[f"style.{i}.weight"], sd[f"style.{i}.bias"], lr_mlp, act=True)
    return w


def synthesis(sd, latent, noises):
    """latent: B x n_latent x style_dim (W+); noises: one map per styled conv."""
    levels = len([k for k in sd if k.startswith("to_rgbs.") and k.endswith(".conv.weight")])
    x = sd["input.input"].repeat(latent.shape[0], 1, 1, 1)
    x = _styled(sd, "conv1", x, latent[:, 0], noises[0])
    img = _rgb(sd, "to_rgb1", x, latent[:, 1])
    for j in range(levels):
        x = _styled(sd, f"convs.{2 * j}", x, latent[:, 1 + 2 * j], noises[1 + 2 * j], up=True)
        x = _styled(sd, f"convs.{2 * j + 1}", x, latent[:, 2 + 2 * j], noises[2 + 2 * j])
        img = _rgb(sd, f"to_rgbs.{j}", x, latent[:, 3 + 2 * j], img)
    return img


def generate(sd, z, noises, n_mlp, lr_mlp=0.01):
    w = mapping(sd, z, n_mlp, lr_mlp)
    levels = len([k for k in sd if k.startswith("to_rgbs.") and k.endswith(".conv.weight")])
    return synthesis(sd, w.unsqueeze(1).expand(-1, 2 * levels + 2, -1), noises)


# --- discriminator ---------------------------------------------------------------------------------------

def make_discriminator_state(size, channels, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(dtype)

    blur = torch.outer(K1, K1).to(dtype)
    sd = {"convs.0.0.weight": r(channels[size], 3, 1, 1), "convs.0.1.bias": r(channels[size], scale=0.1)}
    levels = int(math.log2(size))
    for n, i in enumerate(range(levels, 2, -1), 1):
        cin, cout = channels[2 ** i], channels[2 ** (i - 1)]
        sd[f"convs.{n}.conv1.0.weight"] = r(cin, cin, 3, 3)
        sd[f"convs.{n}.conv1.1.bias"] = r(cin, scale=0.1)
        sd[f"convs.{n}.conv2.0.kernel"] = blur.clone()
        sd[f"convs.{n}.conv2.1.weight"] = r(cout, cin, 3, 3)
        sd[f"convs.{n}.conv2.2.bias"] = r(cout, scale=0.1)
        sd[f"convs.{n}.skip.0.kernel"] = blur.clone()
        sd[f"convs.{n}.skip.1.weight"] = r(cout, cin, 1, 1)
    c4 = channels[4]
    sd["final_conv.0.weight"] = r(c4, c4 + 1, 3, 3)
    sd["final_conv.1.bias"] = r(c4, scale=0.1)
    sd["final_linear.0.weight"] = r(c4, c4 * 16)
    sd["final_linear.0.bias"] = r(c4, scale=0.1)
    sd["final_linear.1.weight"] = r(1, c4)
    sd["final_linear.1.bias"] = r(1, scale=0.1)
    return sd


def _eqconv(x, w, stride=1, padding=0):
    return F.conv2d(x, w / math.sqrt(w[0].numel()), stride=stride, padding=padding)


def _act(x, b):
    return F.leaky_relu(x + b.view(1, -1, 1, 1), 0.2) * math.sqrt(2)


def discriminate(sd, x, group=4):
    x = _act(_eqconv(x, sd["convs.0.0.weight"]), sd["convs.0.1.bias"])
    n = 1
    while f"convs.{n}.conv1.0.weight" in sd:
        p = f"convs.{n}"
        y = _act(_eqconv(x, sd[f"{p}.conv1.0.weight"], padding=1), sd[f"{p}.conv1.1.bias"])
        y = _act(_eqconv(_fir(y, 2, 2), sd[f"{p}.conv2.1.weight"], stride=2), sd[f"{p}.conv2.2.bias"])
        s = _eqconv(_fir(x, 1, 1), sd[f"{p}.skip.1.weight"], stride=2)
        x = (y + s) / math.sqrt(2)
        n += 1
    b, c, h, w = x.shape
    g = min(b, group)
    feat = torch.empty(b, 1, h, w, dtype=x.dtype)
    for j in range(b // g):                       # sample i belongs to group (i mod b/g) as in the original
        members = x[j::b // g]                    # g x C x H x W
        std = torch.sqrt(members.var(0, unbiased=False) + 1e-8).mean()
        feat[j::b // g] = std
    x = torch.cat([x, feat], 1)
    x = _act(_eqconv(x, sd["final_conv.0.weight"], padding=1), sd["final_conv.1.bias"])
    x = _linear(x.reshape(b, -1), sd["final_linear.0.weight"], sd["final_linear.0.bias"], act=True)
    return _linear(x, sd["final_linear.1.weight"], sd["final_linear.1.bias"]).view(b)

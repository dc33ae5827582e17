"""An independent SAGAN for the fidelity tests, written from the facts of GCC's models/SAGAN.py (a port of
heykeetae/Self-Attention-GAN), not from vem.models: its own SpectralNorm wrapper (parameters ``weight_bar``,
``weight_u``, ``weight_v``; one power iteration per forward on ``w.view(w.shape[0], -1)``), the layer names
l1..l4 / attn1 / attn2 / last of the 64 px model, and the attention written with explicit permutes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def l2normalize(v, eps=1e-12):
    return v / (v.norm() + eps)   # GCC's (PyTorch's F.normalize divides by max(norm, eps))


class SpectralNorm(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module
        w = module.weight
        height = w.shape[0]
        width = w.view(height, -1).shape[1]
        self.weight_u = nn.Parameter(l2normalize(w.new_empty(height).normal_()), requires_grad=False)
        self.weight_v = nn.Parameter(l2normalize(w.new_empty(width).normal_()), requires_grad=False)
        self.weight_bar = nn.Parameter(w.data.clone())
        del self.module._parameters["weight"]

    def forward(self, *args):
        w = self.weight_bar
        height = w.shape[0]
        self.weight_v.data = l2normalize(torch.mv(w.view(height, -1).data.t(), self.weight_u.data))
        self.weight_u.data = l2normalize(torch.mv(w.view(height, -1).data, self.weight_v.data))
        sigma = self.weight_u.dot(w.view(height, -1).mv(self.weight_v))
        self.module.weight = w / sigma
        return self.module.forward(*args)


class SelfAttn(nn.Module):
    def __init__(self, in_dim):
        super().__init__()
        self.query_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.key_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.value_conv = nn.Conv2d(in_dim, in_dim, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, c, w, h = x.size()
        proj_query = self.query_conv(x).view(b, -1, w * h).permute(0, 2, 1)
        proj_key = self.key_conv(x).view(b, -1, w * h)
        attention = F.softmax(torch.bmm(proj_query, proj_key), dim=-1)
        proj_value = self.value_conv(x).view(b, -1, w * h)
        out = torch.bmm(proj_value, attention.permute(0, 2, 1)).view(b, c, w, h)
        return self.gamma * out + x


class Generator(nn.Module):
    """64 px, z_dim x 1 x 1 input, widths 8/4/2/1 x ngf."""

    def __init__(self, z_dim=128, ngf=64, out_nc=3):
        super().__init__()
        self.l1 = nn.Sequential(SpectralNorm(nn.ConvTranspose2d(z_dim, ngf * 8, 4)), nn.BatchNorm2d(ngf * 8), nn.ReLU())
        self.l2 = nn.Sequential(SpectralNorm(nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1)), nn.BatchNorm2d(ngf * 4),
                                nn.ReLU())
        self.l3 = nn.Sequential(SpectralNorm(nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1)), nn.BatchNorm2d(ngf * 2),
                                nn.ReLU())
        self.l4 = nn.Sequential(SpectralNorm(nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1)), nn.BatchNorm2d(ngf), nn.ReLU())
        self.last = nn.Sequential(nn.ConvTranspose2d(ngf, out_nc, 4, 2, 1), nn.Tanh())
        self.attn1 = SelfAttn(ngf * 2)
        self.attn2 = SelfAttn(ngf)

    def forward(self, z):
        z = z.view(z.size(0), z.size(1), 1, 1)
        out = self.l3(self.l2(self.l1(z)))
        out = self.attn1(out)
        out = self.attn2(self.l4(out))
        return self.last(out)


class Discriminator(nn.Module):
    def __init__(self, ndf=64, in_nc=3):
        super().__init__()
        self.l1 = nn.Sequential(SpectralNorm(nn.Conv2d(in_nc, ndf, 4, 2, 1)), nn.LeakyReLU(0.1))
        self.l2 = nn.Sequential(SpectralNorm(nn.Conv2d(ndf, ndf * 2, 4, 2, 1)), nn.LeakyReLU(0.1))
        self.l3 = nn.Sequential(SpectralNorm(nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1)), nn.LeakyReLU(0.1))
        self.l4 = nn.Sequential(SpectralNorm(nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1)), nn.LeakyReLU(0.1))
        self.last = nn.Conv2d(ndf * 8, 1, 4)
        self.attn1 = SelfAttn(ndf * 4)
        self.attn2 = SelfAttn(ndf * 8)

    def forward(self, x):
        out = self.attn1(self.l3(self.l2(self.l1(x))))
        out = self.attn2(self.l4(out))
        return self.last(out).squeeze()


def load_from(ours: nn.Module, ref: nn.Module) -> None:
    """Copy our weights (spectral-norm original weights, u and v included) into the reference, by name."""
    sd = ours.state_dict()
    new = {}
    for k in ref.state_dict():
        src = k
        for a, b in ((".0.weight_bar", ".0.parametrizations.weight.original"),
                     (".0.weight_u", ".0.parametrizations.weight.0._u"),
                     (".0.weight_v", ".0.parametrizations.weight.0._v"),
                     (".0.module.bias", ".0.bias")):
            src = src.replace(a, b)
        new[k] = sd[src].clone()
    ref.load_state_dict(new)

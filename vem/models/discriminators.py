"""PatchGAN discriminators (pix2pix ``n_layers``) and OMGD's two-headed ``multi_n_layers`` variant."""

from __future__ import annotations

from torch import nn

from .generators import norm_layer


def _patch_layers(in_nc, ndf, n_layers, norm):
    """The PatchGAN as a list of blocks (each block: conv [+ norm] + LeakyReLU), then the 1-channel head."""
    nl = norm_layer(norm)
    use_bias = norm != "batch"
    blocks = [nn.Sequential(nn.Conv2d(in_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True))]
    mult = 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2**n, 8)
        stride = 2 if n < n_layers else 1
        blocks.append(nn.Sequential(nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=use_bias),
                                    nl(ndf * mult), nn.LeakyReLU(0.2, True)))
    head = nn.Conv2d(ndf * mult, 1, 4, 1, 1)
    return blocks, head


class NLayerDiscriminator(nn.Module):
    def __init__(self, in_nc=6, ndf=64, n_layers=3, norm="batch"):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"discriminator n_layers must be >= 1, got {n_layers}")
        blocks, head = _patch_layers(in_nc, ndf, n_layers, norm)
        self.model = nn.Sequential(*blocks, head)

    def forward(self, x):
        return self.model(x)


class MultiNLayerDiscriminator(nn.Module):
    """One PatchGAN per teacher whose first ``n_share`` blocks are shared (OMGD's pix2pix setting)."""

    def __init__(self, in_nc=6, ndf=128, n_layers=3, norm="batch", n_share=3, n_heads=2):
        super().__init__()
        blocks, head = _patch_layers(in_nc, ndf, n_layers, norm)
        n_share = max(0, min(n_share, len(blocks)))
        self.shared = nn.Sequential(*blocks[:n_share])
        self.heads = nn.ModuleList()
        for i in range(n_heads):
            b, h = _patch_layers(in_nc, ndf, n_layers, norm) if i else (blocks, head)
            self.heads.append(nn.Sequential(*b[n_share:], h))

    def forward(self, x, head: int = 0):
        return self.heads[head](self.shared(x))

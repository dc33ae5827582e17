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
    """One PatchGAN per teacher (OMGD's ``multi_n_layers``): of its ``n_layers + 2`` stages (the conv blocks,
    then the output conv) the first ``n_share`` are shared. ``n_share = n_layers + 2`` (OMGD's 5 at
    ``n_layers`` 3, both paper U-Net scripts) shares the output conv too: one discriminator for both."""

    def __init__(self, in_nc=6, ndf=128, n_layers=3, norm="batch", n_share=3, n_heads=2):
        super().__init__()
        if not 0 <= n_share <= n_layers + 2:
            raise ValueError(f"n_share must be in [0, n_layers + 2 = {n_layers + 2}] (stages of the PatchGAN), "
                             f"got {n_share}")

        def stages():
            blocks, head = _patch_layers(in_nc, ndf, n_layers, norm)
            return blocks + [head]

        first = stages()
        self.shared = nn.Sequential(*first[:n_share])
        self.heads = nn.ModuleList(nn.Sequential(*(stages() if i else first)[n_share:]) for i in range(n_heads))

    def forward(self, x, head: int = 0):
        return self.heads[head](self.shared(x))

"""Fréchet distance through clean-fid with a feature network trained inside the workflow.

The embedded suite has no Inception weights offline, so its number is **FD-FMNIST**: the Fréchet
distance between 128-d penultimate features of ``FeatureNet`` (a Fashion-MNIST classifier trained on
the real training images). It is *not* FID and is never labelled so. Images are quantised to uint8 and
written as PNGs into a zip before features are taken (as the anchors quantise before FID) and read back
(``vem.eval.backends.FDFMNIST``) at their native 32x32 size; the extractor below maps a float [0, 255] RGB
batch (what clean-fid hands a ``custom_feat_extractor``) back to the network's [-1, 1] grayscale input.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class FDExtractor(nn.Module):
    """clean-fid ``custom_feat_extractor``: B x 3 x H x W float in [0, 255] -> B x D features."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.eval()

    @torch.no_grad()
    def forward(self, x):
        x = x.float().mean(dim=1, keepdim=True) / 127.5 - 1.0
        return self.net.features(x)


def stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    feats = np.asarray(feats, dtype=np.float64)
    return feats.mean(0), np.cov(feats, rowvar=False)


def frechet(mu1, s1, mu2, s2) -> float:
    from cleanfid import fid

    return float(fid.frechet_distance(mu1, s1, mu2, s2))

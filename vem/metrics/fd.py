"""Fréchet distance through clean-fid with a feature network trained inside the workflow.

The embedded suite has no Inception weights offline, so its number is **FD-FMNIST**: the Fréchet
distance between 128-d penultimate features of ``FeatureNet`` (a Fashion-MNIST classifier trained on
the real training images). It is *not* FID and is never labelled so. Images are quantised to uint8 and
written as PNGs into a zip before features are taken (as the anchors quantise before FID); clean-fid's
``get_files_features`` reads them (``vem.evaluate.zip_features``), a ``custom_fn_resize`` keeps the native
32x32 size and the ``custom_feat_extractor`` below maps clean-fid's float [0, 255] RGB batch back to the
network's [-1, 1] grayscale input. ``array_features`` gives the same features from memory (learning curves).
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


def array_features(images_u8: np.ndarray, extractor: FDExtractor, batch_size: int = 512) -> np.ndarray:
    """Same features from in-memory uint8 images (N x H x W), for learning curves and tests."""
    out = []
    for i in range(0, len(images_u8), batch_size):
        x = torch.from_numpy(images_u8[i:i + batch_size]).float().unsqueeze(1).expand(-1, 3, -1, -1)
        out.append(extractor(x).numpy())
    return np.concatenate(out)


def stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    feats = np.asarray(feats, dtype=np.float64)
    return feats.mean(0), np.cov(feats, rowvar=False)


def frechet(mu1, s1, mu2, s2) -> float:
    from cleanfid import fid

    return float(fid.frechet_distance(mu1, s1, mu2, s2))


def fd_arrays(images_u8: np.ndarray, ref_mu, ref_sigma, extractor: FDExtractor) -> float:
    return frechet(*stats(array_features(images_u8, extractor)), ref_mu, ref_sigma)

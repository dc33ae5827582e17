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


def frechet(mu1, s1, mu2, s2, eps: float = 1e-6) -> float:
    """clean-fid's ``fid.frechet_distance`` step for step (``tests/test_metrics.py`` checks the two are equal
    to the last bit): |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2)), with clean-fid's retry on a
    singular product (``eps`` on both diagonals) and its refusal of a large imaginary part. Not imported from
    clean-fid because ``cleanfid.fid`` imports torchvision and torch._dynamo (~2 s per job, the largest part of
    a mini evaluation job's time); the paper path's FID goes through clean-fid itself (``vem.metrics.inception``)."""
    from scipy import linalg

    mu1, mu2, s1, s2 = np.atleast_1d(mu1), np.atleast_1d(mu2), np.atleast_2d(s1), np.atleast_2d(s2)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError(f"frechet: mismatched statistics {mu1.shape} vs {mu2.shape}, {s1.shape} vs {s2.shape}")
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"frechet: imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))

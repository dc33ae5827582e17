"""CRD: Contrastive Representation Distillation (Tian et al., ICLR 2020), adapted to generators.

Image-to-image tasks have no class labels, so every training image is its own class ("exact" mode
with the positive = the sample itself and negatives = other training indices). Both tensors are
average-pooled to ``pool x pool``, flattened, embedded by a linear head (one for the student, one for
the teacher) into ``feat_dim`` (128) and L2-normalised. A memory bank keeps one student and one
teacher embedding per training image (momentum ``nce_m`` = 0.5). The loss is CRD's symmetric NCE with
temperature ``nce_t`` (0.07), ``nce_k`` negatives, noise prior 1/n_data and normalising constants Z
estimated once from the first batch. The memory is updated inside ``loss`` (after the scores are
computed), as in the original. Heads are trained with the student.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import MIAddon
from .options import check_options

_EPS = 1e-7


class _Embed(nn.Module):
    def __init__(self, channels: int, pool: int, feat_dim: int):
        super().__init__()
        self.pool = pool
        self.linear = nn.Linear(channels * pool * pool, feat_dim)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(x, self.pool).flatten(1)
        return F.normalize(self.linear(x), dim=1)


class CRD(MIAddon):
    name = "crd"

    def __init__(self, s_channels: int, t_channels: int | None = None, n_data: int | None = None,
                 feat_dim: int = 128, pool: int = 4, nce_k: int = 4096, nce_t: float = 0.07,
                 nce_m: float = 0.5, lambda_mi: float = 0.1):
        super().__init__()
        check_options("crd", {"feat_dim": feat_dim, "pool": pool, "nce_k": nce_k, "nce_t": nce_t, "nce_m": nce_m,
                              "lambda_mi": lambda_mi}, where="crd")
        t_channels = s_channels if t_channels is None else t_channels
        if n_data is None:
            raise ValueError("CRD needs n_data, the number of training images (size of its memory bank)")
        if n_data < 2:
            raise ValueError(f"CRD needs at least 2 training images, got n_data={n_data}")
        if not 1 <= nce_k < n_data:
            raise ValueError(f"CRD nce_k={nce_k} must be >= 1 and smaller than the number of training "
                             f"images (n_data={n_data})")
        self.embed_s = _Embed(s_channels, pool, feat_dim)
        self.embed_t = _Embed(t_channels, pool, feat_dim)
        self.n_data, self.nce_k, self.nce_t, self.nce_m = n_data, nce_k, nce_t, nce_m
        self.lambda_mi = float(lambda_mi)
        stdv = 1.0 / math.sqrt(feat_dim / 3)
        self.register_buffer("memory_s", torch.rand(n_data, feat_dim) * 2 * stdv - stdv)
        self.register_buffer("memory_t", torch.rand(n_data, feat_dim) * 2 * stdv - stdv)
        self.register_buffer("z_s", torch.tensor(-1.0))
        self.register_buffer("z_t", torch.tensor(-1.0))

    def student_parameters(self):
        return list(self.embed_s.parameters()) + list(self.embed_t.parameters())

    def contrast_indices(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, K+1): column 0 the positive (idx itself), then K uniform draws from the other indices."""
        b = idx.shape[0]
        neg = torch.randint(0, self.n_data - 1, (b, self.nce_k), device=idx.device)
        neg = neg + (neg >= idx.unsqueeze(1)).long()  # skip the anchor's own index
        return torch.cat([idx.unsqueeze(1), neg], dim=1)

    def _nce(self, x: torch.Tensor) -> torch.Tensor:
        """CRD's NCE loss on normalised scores x (B, K+1), positive in column 0."""
        k, pn = x.shape[1] - 1, 1.0 / self.n_data
        log_pos = torch.log(x[:, 0] / (x[:, 0] + k * pn + _EPS))
        log_neg = torch.log((k * pn) / (x[:, 1:] + k * pn + _EPS))
        return -(log_pos + log_neg.sum(1)).mean()

    def scores(self, v_t, v_s, cidx):
        w_s = self.memory_s[cidx].detach()  # (B, K+1, D): teacher anchor vs student memory
        w_t = self.memory_t[cidx].detach()
        out_t = torch.exp(torch.bmm(w_s, v_t.unsqueeze(2)).squeeze(2) / self.nce_t)
        out_s = torch.exp(torch.bmm(w_t, v_s.unsqueeze(2)).squeeze(2) / self.nce_t)
        if self.z_s < 0:
            self.z_s.fill_((out_s.mean() * self.n_data).item())
        if self.z_t < 0:
            self.z_t.fill_((out_t.mean() * self.n_data).item())
        return out_t / self.z_t, out_s / self.z_s

    def loss(self, t, s, idx=None):
        if idx is None:
            raise ValueError("CRD needs the dataset indices of the batch (idx)")
        idx = idx.to(self.memory_s.device).long()
        if idx.min() < 0 or idx.max() >= self.n_data:
            raise ValueError(f"CRD idx out of range [0, {self.n_data}): min {idx.min().item()}, "
                             f"max {idx.max().item()}")
        v_s, v_t = self.embed_s(s), self.embed_t(t.detach())
        out_t, out_s = self.scores(v_t, v_s, self.contrast_indices(idx))
        loss = self._nce(out_s) + self._nce(out_t)
        with torch.no_grad():
            for mem, v in ((self.memory_s, v_s), (self.memory_t, v_t)):
                mem[idx] = F.normalize(mem[idx] * self.nce_m + v.detach() * (1 - self.nce_m), dim=1)
        return self.lambda_mi * loss

"""VID: Variational Information Distillation (Ahn et al., CVPR 2019).

q(t|s) = prod_c N(t_c; mu_c(s), sigma_c^2) with a learned per-channel variance
sigma_c^2 = softplus(a_c) + eps, initialised to ``init_var`` (5). The student term is the Gaussian
negative log-likelihood (up to the constant 0.5 log 2 pi)::

    lambda_mi * mean_{n,c,h,w} 0.5 * [(mu(s) - t)^2 / sigma_c^2 + log sigma_c^2]

``mode="output"``: identity mean mu(s) = s (what VEM's reference code uses for its VID ablation);
``mode="feature"``: mu = 1x1 conv (C_s -> C_mid) - ReLU - 1x1 conv (C_mid -> C_mid) - ReLU -
1x1 conv (C_mid -> C_t), no biases (the VID paper's regressor). Variances and regressor are trained
with the student (``student_parameters``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import MIAddon
from .options import check_options


def _match_spatial(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive-average-pool the larger map to the smaller one's size."""
    if a.shape[-2:] == b.shape[-2:]:
        return a, b
    if a.shape[-1] * a.shape[-2] > b.shape[-1] * b.shape[-2]:
        return F.adaptive_avg_pool2d(a, b.shape[-2:]), b
    return a, F.adaptive_avg_pool2d(b, a.shape[-2:])


class VID(MIAddon):
    name = "vid"

    def __init__(self, s_channels: int, t_channels: int | None = None, mode: str = "output",
                 mid_channels: int | None = None, init_var: float = 5.0, eps: float = 1e-5,
                 lambda_mi: float = 0.1):
        super().__init__()
        t_channels = s_channels if t_channels is None else t_channels
        check_options("vid", {"mode": mode, "mid_channels": mid_channels, "init_var": init_var, "eps": eps,
                              "lambda_mi": lambda_mi}, where="vid")
        if init_var <= eps:
            raise ValueError(f"VID init_var must exceed eps={eps}, got {init_var}")
        if mode == "output":
            if s_channels != t_channels:
                raise ValueError(f"VID output mode needs equal channels, got student {s_channels} "
                                 f"vs teacher {t_channels}; use mode='feature'")
            self.regressor: nn.Module = nn.Identity()
        else:
            mid = mid_channels or t_channels
            self.regressor = nn.Sequential(
                nn.Conv2d(s_channels, mid, 1, bias=False), nn.ReLU(),
                nn.Conv2d(mid, mid, 1, bias=False), nn.ReLU(),
                nn.Conv2d(mid, t_channels, 1, bias=False))
        self.mode, self.eps, self.lambda_mi = mode, eps, float(lambda_mi)
        # softplus^-1(init_var - eps)
        self.log_scale = nn.Parameter(torch.full((t_channels,), math.log(math.expm1(init_var - eps))))

    def variance(self) -> torch.Tensor:
        return F.softplus(self.log_scale) + self.eps

    def nll(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Mean Gaussian NLL of t under q(t|s), without the 0.5 log 2 pi constant."""
        mu, t = _match_spatial(self.regressor(s), t.detach())
        var = self.variance().view(1, -1, *([1] * (t.dim() - 2)))
        return 0.5 * ((mu - t).pow(2) / var + torch.log(var)).mean()

    def loss(self, t, s, idx=None):
        return self.lambda_mi * self.nll(t, s)

    def student_parameters(self):
        return list(self.parameters())

"""StyleGAN2's training recipe (rosinality's ``train.py``, which CAGC's ``train.py`` extends), in pieces a
method reuses: the non-saturating logistic losses, R1 on real images and the path-length regulariser on
their lazy schedules, style mixing, the generator EMA and the lazily-regularised Adam.

* D: softplus(D(fake)) + softplus(-D(real)); every ``d_reg_every`` iterations also
  (r1 / 2) x E ||grad_x D(x_real)||^2 x d_reg_every.
* G: softplus(-D(G(z))); every ``g_reg_every`` iterations also path_regularize x g_reg_every x
  E (|J_w^T y| - a)^2 on a batch of batch // path_batch_shrink, y ~ N(0, I) / sqrt(H W), a the running
  mean of the path lengths (decay 0.01).
* Style mixing with probability ``mixing``: two latents, the second from a uniform inject index in
  [1, n_latent - 1].
* EMA of the generator: g_ema <- decay g_ema + (1 - decay) g after every G step (rosinality: 0.5^(32 / 10,000)
  per iteration at batch 32, CAGC's 0.99778).
* Adam with lr x k / (k + 1) and betas (0, 0.99^(k / (k + 1))) for a net regularised every k iterations
  (G 4: 4/5, D 16: 16/17).

The mixing coin, its second latent and its inject index come from the run's seeded batch generator (exact
resume); the per-pixel noise from torch's global RNG (saved with the resume state).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def d_logistic(real_pred: torch.Tensor, fake_pred: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real_pred).mean() + F.softplus(fake_pred).mean()


def g_nonsaturating(fake_pred: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_pred).mean()


def r1_penalty(D: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """E ||grad_x D(x)||^2 over real images (the unweighted R1 term)."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real).sum(), real, create_graph=True)
    return grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()


class PathLength(nn.Module):
    """The path-length regulariser with its running mean (a buffer: resumable state)."""

    def __init__(self, decay: float = 0.01):
        super().__init__()
        self.decay = decay
        self.register_buffer("mean_path", torch.zeros(()))

    def forward(self, G, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(penalty, path lengths) for W+ ``latent`` (requires grad); updates the running mean."""
        img = G.synthesis(latent)
        y = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * y).sum(), latent, create_graph=True)
        lengths = grad.pow(2).sum(2).mean(1).sqrt()
        mean = self.mean_path + self.decay * (lengths.mean() - self.mean_path)   # rosinality: not detached here
        self.mean_path.copy_(mean.detach())
        return (lengths - mean).pow(2).mean(), lengths.detach()


def draw_mixing(z: torch.Tensor, prob: float, n_latent: int, gen: torch.Generator):
    """Style mixing's draws from ``gen``: with probability ``prob`` a second latent batch and an inject index
    in [1, n_latent - 1], else (None, None). Coin, latents, index: always in that order."""
    if prob > 0 and float(torch.rand((), generator=gen, device="cpu")) < prob:
        z2 = torch.randn(z.shape[0], z.flatten(1).shape[1], generator=gen, device="cpu").to(z)
        return z2, int(torch.randint(1, n_latent, (), generator=gen, device="cpu"))
    return None, None


def styles(G, z: torch.Tensor, z2: torch.Tensor | None = None, index: int | None = None) -> torch.Tensor:
    """G's W+ latents of ``z`` (mixed with ``z2`` from ``index`` on, when given)."""
    w = G.mapping(z.flatten(1))
    return G.latents(w) if z2 is None else G.latents(w, G.mapping(z2), index)


def mixed_latents(G, z: torch.Tensor, prob: float, gen: torch.Generator) -> tuple[torch.Tensor, int | None]:
    """W+ latents of the batch ``z`` (B x z_dim), mixed with probability ``prob`` (:func:`draw_mixing`); the
    inject index is returned (None: not mixed)."""
    z2, index = draw_mixing(z, prob, G.n_latent, gen)
    return styles(G, z, z2, index), index


@torch.no_grad()
def ema_update(g_ema: nn.Module, g: nn.Module, decay: float) -> None:
    for pe, p in zip(g_ema.parameters(), g.parameters()):
        pe.lerp_(p, 1.0 - decay)
    for be, b in zip(g_ema.buffers(), g.buffers()):
        be.copy_(b)


def lazy_adam(params, lr: float, reg_every: int, beta2: float = 0.99) -> torch.optim.Adam:
    ratio = reg_every / (reg_every + 1) if reg_every > 0 else 1.0
    return torch.optim.Adam(params, lr=lr * ratio, betas=(0.0, beta2 ** ratio))


def d_step(D, opt_d, real: torch.Tensor, fake: torch.Tensor, c: dict, it: int) -> dict:
    """One discriminator step (logistic) on ``real`` vs ``fake`` (detached), then R1 when ``it`` is due
    (``c``: ``r1``, ``d_reg_every``)."""
    loss_d = d_logistic(D(real), D(fake.detach()))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    stats = {"d_loss": loss_d.item()}
    if c["d_reg_every"] and it % c["d_reg_every"] == 0:
        r1 = r1_penalty(D, real)
        opt_d.zero_grad(set_to_none=True)
        (c["r1"] / 2 * r1 * c["d_reg_every"]).backward()
        opt_d.step()
        stats["r1"] = r1.item()
    return stats


def path_step(G, path: PathLength, opt_g, z: torch.Tensor, c: dict, it: int, gen: torch.Generator) -> dict:
    """The lazy path-length step when ``it`` is due: on the first batch // ``path_batch_shrink`` latents of
    ``z``, freshly mixed (``c``: ``g_reg_every``, ``path_regularize``, ``path_batch_shrink``, ``mixing``)."""
    if not (c["g_reg_every"] and it % c["g_reg_every"] == 0):
        return {}
    n = max(1, len(z) // c["path_batch_shrink"])
    penalty, lengths = path(G, mixed_latents(G, z[:n], c["mixing"], gen)[0])
    opt_g.zero_grad(set_to_none=True)
    (c["path_regularize"] * c["g_reg_every"] * penalty).backward()
    opt_g.step()
    return {"path_penalty": penalty.item(), "path_length": lengths.mean().item()}

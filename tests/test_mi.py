"""Behavioural tests for the mutual-information add-ons in ``vem.mi`` (VEM, VID, CRD).

Every test compares against an answer known independently of the code under test: the stationary law
of an AR(1) chain, a closed-form Gaussian NLL, the maximum-likelihood variance, an exact update
formula, or a direction of motion that a sign error would reverse. All runs are small (1x8x8 images,
tiny nets) and seeded, so the whole file takes a few seconds on 2 CPU cores.
"""

from __future__ import annotations

import copy
import io
import math
import os
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from vem.mi import (  # noqa: E402
    CRD,
    VID,
    EnergyMI,
    NoAddon,
    NonFiniteError,
    ResnetEBM,
    SNConv2d,
    build_addon,
    langevin,
)

H = 8  # image side used by most tests




# --------------------------------------------------------------------------------------------------
# helpers


class QuadEnergy(nn.Module):
    """E(t, s) = 0.5 * sum((t - mu)^2) / v per sample; ignores s. ``dummy`` adds an unused parameter
    so that EnergyMI can build its Adam optimiser around it."""

    def __init__(self, mu: float, v: float, dummy: bool = False):
        super().__init__()
        self.mu, self.v = mu, v
        if dummy:
            self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, t, s):
        return 0.5 * ((t - self.mu) ** 2).flatten(1).sum(1) / self.v


class NaNEnergy(nn.Module):
    """Has a parameter (so Adam can be built) but always returns NaN energies."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, t, s):
        return (t * self.w).flatten(1).sum(1) * float("nan")


class PixelEnergy(nn.Module):
    """A tiny energy: a per-pixel MLP on the pair (t_hw, s_hw), averaged over pixels."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2, hidden, 1), nn.SiLU(), nn.Conv2d(hidden, hidden, 1), nn.SiLU(),
                                 nn.Conv2d(hidden, 1, 1))

    def forward(self, t, s):
        return self.net(torch.cat([t, s], 1)).mean(dim=(1, 2, 3))


class ResidualEnergy(nn.Module):
    """A tiny energy of the residual only: E(t, s) = mean_hw psi(t_hw - s_hw), psi a learned MLP.

    Its partition function does not depend on s, so with well-mixed negatives the student term of
    eq. (9) is the gradient of psi at the true residual: it pulls s towards t (a known direction)."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, hidden, 1), nn.SiLU(), nn.Conv2d(hidden, hidden, 1), nn.SiLU(),
                                 nn.Conv2d(hidden, 1, 1))

    def forward(self, t, s):
        return self.net(t - s).mean(dim=(1, 2, 3))


def smooth_images(n: int, g: torch.Generator, size: int = H) -> torch.Tensor:
    """Smooth random images in (-1, 1): bilinear upsampling of 4x4 Gaussian noise, then tanh."""
    z = torch.randn(n, 1, 4, 4, generator=g)
    return torch.tanh(F.interpolate(z, size=(size, size), mode="bilinear", align_corners=False))


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.flatten() - a.mean()
    b = b.flatten() - b.mean()
    return float(a @ b / (a.norm() * b.norm()))


def rms(a: torch.Tensor) -> float:
    return float(a.pow(2).mean().sqrt())


def roundtrip(sd: dict) -> dict:
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


# --------------------------------------------------------------------------------------------------
# 1. Langevin on an analytic quadratic energy


@pytest.mark.parametrize("mu,v,eta,sigma,steps", [
    (0.3, 0.5, 0.25, 0.1, 200),     # eta/v = 0.5: exact AR(1) variance is 4/3 of the small-step formula
    (-0.2, 1.0, 0.02, 0.05, 800),   # eta/v = 0.02: small-step regime, density ~ exp(-2 eta E / sigma^2)
    (0.5, 1.0, 0.005, 0.1, 2500),   # paper's eq. (7): sigma^2 = lambda, eta = lambda/2 -> samples exp(-E)
])
def test_langevin_quadratic_stationary_moments(mu, v, eta, sigma, steps):
    g = torch.Generator().manual_seed(0)
    t0 = torch.zeros(64, 1, 16, 16)                       # 16384 independent chains, started at 0
    out = langevin(QuadEnergy(mu, v), t0, t0, steps, eta, sigma, clamp=None, generator=g)
    n = out.numel()
    exact_var = sigma**2 / (1 - (1 - eta / v) ** 2)
    mean, var = out.mean().item(), out.var().item()
    assert abs(mean - mu) < 5 * math.sqrt(exact_var / n) + 1e-4
    assert abs(var / exact_var - 1) < 5 * math.sqrt(2 / n)      # ~5 standard errors (~5.5 %)
    approx_var = sigma**2 * v / (2 * eta)                        # density exp(-2 eta E / sigma^2)
    r = eta / v                                                  # exact / approx = 1 / (1 - r / 2)
    assert abs(var / approx_var - 1) < r / (2 - r) + 5 * math.sqrt(2 / n)
    if eta / v >= 0.5:                                           # the exact formula is not the approximation
        assert abs(var / approx_var - 1) > 0.2
    if math.isclose(sigma**2, 2 * eta):                          # eq. (7) targets q = exp(-E): var ~ v
        assert abs(var / v - 1) < 0.05
    assert torch.equal(t0, torch.zeros_like(t0))                 # the start is not modified in place


def test_langevin_clamp_keeps_outputs_in_range_even_if_target_is_outside():
    g = torch.Generator().manual_seed(1)
    t0 = torch.zeros(16, 1, 8, 8)
    energy = QuadEnergy(mu=3.0, v=1.0)
    free = langevin(energy, t0, t0, 200, 0.1, 0.1, clamp=None, generator=g)
    assert abs(free.mean().item() - 3.0) < 0.05                 # the unclamped chain goes to mu = 3
    clamped = langevin(energy, t0, t0, 200, 0.1, 0.1, clamp=(-1.0, 1.0), generator=g)
    assert clamped.min() >= -1.0 and clamped.max() <= 1.0
    assert (clamped == 1.0).float().mean() > 0.99                # nearly all pixels pinned at the bound
    # steps=0 returns the clamped start, detached
    start = torch.full((2, 1, 4, 4), 2.5, requires_grad=True)
    out0 = langevin(energy, start, start, 0, 0.1, 0.1)
    assert not out0.requires_grad and torch.all(out0 == 1.0)
    with pytest.raises(ValueError, match="steps"):
        langevin(energy, t0, t0, -1, 0.1, 0.1)


def test_langevin_is_reproducible_and_leaves_energy_parameters_alone():
    torch.manual_seed(0)
    net = ResnetEBM(1, 4, image_size=H).eval()   # train mode would advance the SN power iteration
    t0 = torch.rand(4, 1, H, H) * 2 - 1
    s = (torch.rand(4, 1, H, H) * 2 - 1).requires_grad_()
    a = langevin(net, t0, s, 5, 1.0, 0.01, generator=torch.Generator().manual_seed(3))
    b = langevin(net, t0, s, 5, 1.0, 0.01, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not a.requires_grad
    assert not torch.equal(a, t0)                                # it did move
    assert all(p.grad is None for p in net.parameters())        # grads are taken w.r.t. t only
    assert s.grad is None


# --------------------------------------------------------------------------------------------------
# 2. the EBM learns the dependence t = f(s) + noise


def f_map(s):
    return -s                                                    # a fixed simple map


def _pairs(n, g, noise=0.05):
    s = smooth_images(n, g)
    return f_map(s) + noise * torch.randn(s.shape, generator=g), s


def _margin(energy, g, n=256):
    t, s = _pairs(n, g)
    energy.eval()
    with torch.no_grad():
        e_pos = energy(t, s)
        e_shuf = energy(t[torch.randperm(n, generator=g)], s)
    energy.train()
    return (e_shuf - e_pos).mean().item(), (e_shuf > e_pos).float().mean().item()


def test_default_resnet_ebm_learns_margin_between_true_and_shuffled_pairs():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    addon = EnergyMI(channels=1, image_size=H, width=8, steps=5, step_size=1.0, step_ref_size=None, lr=2e-3)
    m0, frac0 = _margin(addon.energy, torch.Generator().manual_seed(99))
    assert abs(m0) < 0.05                                        # untrained: no preference (~0.005)
    for _ in range(100):
        t, s = _pairs(32, g)
        stats = addon.fit_step(t, s)
    assert stats["e_pos"] < stats["e_neg"] and stats["energy_gap"] > 0
    margin, frac = _margin(addon.energy, torch.Generator().manual_seed(99))
    assert margin > 0.5, margin                                  # seed 0: 1.59 (seeds 0-5: 1.03-1.82)
    assert frac > 0.9, frac                                      # seed 0: 0.97 (seeds 0-5: 0.93-1.0)


def test_tiny_ebm_margin_and_langevin_moves_perturbed_start_towards_f_of_s():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    # negatives need enough noise to explore around f(s), else the energy is not a basin there
    addon = EnergyMI(channels=1, energy=PixelEnergy(), steps=10, step_size=3.0, step_ref_size=None,
                     noise_std=0.1, lr=5e-3, clamp=None)
    ge = torch.Generator().manual_seed(7)
    s = smooth_images(256, ge)
    start = f_map(s) + 0.5 * smooth_images(256, ge)
    d0 = rms(start - f_map(s))
    untrained = langevin(addon.energy, start, s, 10, 3.0, 0.0, clamp=None)
    assert rms(untrained - f_map(s)) > 0.9 * d0                  # control: a random energy does not help
    for _ in range(80):
        t, s_b = _pairs(32, g)
        addon.fit_step(t, s_b)
    margin, frac = _margin(addon.energy, torch.Generator().manual_seed(99))
    assert margin > 0.5 and frac > 0.9, (margin, frac)          # seeds 0-5: 1.4-2.6 / 1.0
    addon.energy.eval()
    moved = langevin(addon.energy, start, s, 10, 3.0, 0.0, clamp=None)
    d1 = rms(moved - f_map(s))
    assert d1 < 0.6 * d0, (d0, d1)                               # seeds 0-5: 0.26 -> 0.009-0.135


# --------------------------------------------------------------------------------------------------
# 3. sign test: only the VEM term moves a linear student towards (or, negated, away from) the teacher


def _sign_run(sign: float, seed: int, iters: int = 80):
    """Fit s = W * x to t = A * x with only addon.fit_step + sign * addon.loss.

    The known answer needs two choices. (a) A residual energy psi(t - s): MI alone is invariant to
    invertible maps, so with a generic E(t, s) the student only becomes *informative* (|corr| -> 1,
    measured: it converged to corr -1 for 2 of 3 seeds), not equal to t. (b) Negatives that mix
    (noise_std 0.3): with noise 0.1 the short-run chains stay near s, the energy learns "t close to s
    is unlikely", and the correctly signed term pushed seed 0 *away* (distance 0.63 -> 3.4)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(1, 1, 3, 3, generator=g) / 3                # teacher t = A * x (3x3 conv)
    W = nn.Parameter(torch.randn(1, 1, 3, 3, generator=g) / 3)  # student s = W * x, random init
    addon = EnergyMI(channels=1, energy=ResidualEnergy(), steps=10, step_size=3.0, step_ref_size=None,
                     noise_std=0.3, lr=5e-3, clamp=None, lambda_mi=1.0)
    opt = torch.optim.Adam([W], lr=1e-2)
    x_eval = smooth_images(256, g)
    t_eval = F.conv2d(x_eval, A, padding=1)

    def evaluate():
        with torch.no_grad():
            s_eval = F.conv2d(x_eval, W, padding=1)
        return rms(s_eval - t_eval), corr(s_eval, t_eval)

    before = evaluate()
    for _ in range(iters):
        x = smooth_images(32, g)
        t, s = F.conv2d(x, A, padding=1), F.conv2d(x, W, padding=1)
        addon.fit_step(t, s.detach())
        loss = sign * addon.loss(t, s)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return before, evaluate()


@pytest.mark.filterwarnings("ignore:VEM energies saturate")
@pytest.mark.parametrize("seed", [0, 2])
def test_vem_term_alone_pulls_linear_student_towards_teacher(seed):
    (d0, c0), (d1, c1) = _sign_run(+1.0, seed)
    assert d1 < 0.25 * d0, (d0, d1)                              # seeds 0-7: d1/d0 = 0.025-0.09
    assert c1 > 0.95 and c1 > c0, (c0, c1)                       # seeds 0-7: c1 = 0.989-0.999


@pytest.mark.filterwarnings("ignore:VEM energies saturate")
@pytest.mark.parametrize("seed", [0, 2])
def test_negated_vem_term_pushes_linear_student_away(seed):
    (d0, c0), (d1, c1) = _sign_run(-1.0, seed)
    assert d1 > 1.2 * d0, (d0, d1)                               # seeds 0-7: d1/d0 = 1.27-3.3
    assert c1 < 0.9, (c0, c1)                                    # seeds 0-7: c1 = -0.69-0.58


def test_student_term_sends_gradient_to_s_only_and_reuses_negatives(monkeypatch):
    torch.manual_seed(0)
    addon = EnergyMI(channels=1, image_size=H, width=4, steps=2, step_size=1.0, step_ref_size=None)
    t = (torch.rand(4, 1, H, H) * 2 - 1).requires_grad_()
    s = (torch.rand(4, 1, H, H) * 2 - 1).requires_grad_()
    addon.fit_step(t, s.detach())
    grads_after_fit = [p.grad.clone() for p in addon.energy.parameters()]
    calls = []
    orig = addon.sample
    monkeypatch.setattr(addon, "sample", lambda x: calls.append(1) or orig(x))
    loss = addon.loss(t, s)
    assert calls == []                                           # negatives of fit_step were reused
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    for p, g0 in zip(addon.energy.parameters(), grads_after_fit):
        assert p.requires_grad and torch.equal(p.grad, g0)       # frozen during the student term
    # a second loss() on a new s has no cached negatives and samples again
    addon.loss(t, s.detach() + 0.1)
    assert calls == [1]


# --------------------------------------------------------------------------------------------------
# 4. VID


def _gauss_nll(mu, t, var):
    """Mean over elements of -log N(t; mu, var) - 0.5 log 2 pi, via torch.distributions."""
    std = var.sqrt().view(1, -1, 1, 1)
    return (-torch.distributions.Normal(mu, std).log_prob(t) - 0.5 * math.log(2 * math.pi)).mean()


def test_vid_output_mode_equals_closed_form_gaussian_nll():
    torch.manual_seed(0)
    vid = VID(3, lambda_mi=0.7)
    with torch.no_grad():
        vid.log_scale.copy_(torch.tensor([-1.0, 0.3, 2.0]))
    t, s = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    var = F.softplus(torch.tensor([-1.0, 0.3, 2.0])) + 1e-5
    expected = 0.7 * _gauss_nll(s, t, var)
    torch.testing.assert_close(vid.loss(t, s, None), expected, rtol=1e-5, atol=1e-6)
    # initial variance is init_var
    torch.testing.assert_close(VID(3).variance(), torch.full((3,), 5.0), rtol=1e-5, atol=1e-6)


def test_vid_feature_mode_equals_closed_form_with_regressor_and_pooling():
    torch.manual_seed(0)
    vid = build_addon("vid", channels=4, t_channels=3, mode="feature", mid_channels=5, lambda_mi=1.0)
    s = torch.randn(2, 4, 8, 8, requires_grad=True)
    t = torch.randn(2, 3, 4, 4, requires_grad=True)
    w1, w2, w3 = (m.weight.detach() for m in vid.regressor if isinstance(m, nn.Conv2d))
    assert w1.shape == (5, 4, 1, 1) and w3.shape == (3, 5, 1, 1)
    mu = torch.einsum("oi,nihw->nohw", w1[:, :, 0, 0], s).relu()
    mu = torch.einsum("oi,nihw->nohw", w2[:, :, 0, 0], mu).relu()
    mu = torch.einsum("oi,nihw->nohw", w3[:, :, 0, 0], mu)
    mu = mu.unflatten(2, (4, 2)).unflatten(4, (4, 2)).mean(dim=(3, 5))  # 8x8 -> 4x4 average
    expected = _gauss_nll(mu, t.detach(), vid.variance().detach())
    loss = vid.loss(t, s)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    loss.backward()
    assert s.grad is not None and t.grad is None
    assert {id(p) for p in vid.student_parameters()} == {id(p) for p in vid.parameters()}
    with pytest.raises(ValueError, match="channels"):
        VID(3, 2, mode="output")


def test_vid_variance_converges_to_residual_variance():
    g = torch.Generator().manual_seed(0)
    v = torch.tensor([0.01, 0.25])
    s = torch.randn(64, 2, 8, 8, generator=g)
    t = s + v.sqrt().view(1, 2, 1, 1) * torch.randn(s.shape, generator=g)
    mle = (t - s).pow(2).mean(dim=(0, 2, 3))                    # the exact minimiser (empirical)
    vid = VID(2)
    opt = torch.optim.Adam([vid.log_scale], lr=0.1)
    for _ in range(400):
        opt.zero_grad()
        vid.loss(t, s).backward()
        opt.step()
    var = vid.variance().detach()
    torch.testing.assert_close(var, mle, rtol=0.02, atol=0.0)
    torch.testing.assert_close(var, v, rtol=0.1, atol=0.0)


# --------------------------------------------------------------------------------------------------
# 5. CRD


def _crd_with_identical_heads(n_data=64, nce_k=16, nce_m=0.5):
    torch.manual_seed(0)
    crd = CRD(1, 1, n_data=n_data, feat_dim=16, pool=4, nce_k=nce_k, nce_m=nce_m)
    crd.embed_t.load_state_dict(crd.embed_s.state_dict())
    g = torch.Generator().manual_seed(1)
    data = torch.randn(n_data, 1, H, H, generator=g)
    with torch.no_grad():
        emb = crd.embed_s(data)
        crd.memory_s.copy_(emb)
        crd.memory_t.copy_(emb)
    return crd, data


def test_crd_aligned_pairs_have_lower_loss_than_shuffled():
    crd, data = _crd_with_identical_heads()
    idx = torch.arange(16)
    perm = idx[torch.randperm(16, generator=torch.Generator().manual_seed(2))]
    assert (perm != idx).all() or (perm != idx).sum() >= 12
    aligned, shuffled = copy.deepcopy(crd), copy.deepcopy(crd)
    torch.manual_seed(5)
    la = aligned.loss(data[idx], data[idx], idx)
    shuffled.z_s.copy_(aligned.z_s)                              # same normalising constants
    shuffled.z_t.copy_(aligned.z_t)
    torch.manual_seed(5)                                         # same negatives
    ls = shuffled.loss(data[idx], data[perm], idx)               # student outputs misaligned
    assert torch.isfinite(la) and torch.isfinite(ls)
    assert la < ls - 0.05, (la.item(), ls.item())


def test_crd_memory_rows_update_with_momentum_only_at_idx():
    crd, data = _crd_with_identical_heads(nce_m=0.3)               # asymmetric: m != 1 - m
    torch.manual_seed(0)
    with torch.no_grad():                                        # make memory differ from embeddings
        crd.memory_s.copy_(F.normalize(torch.randn_like(crd.memory_s), dim=1))
        crd.memory_t.copy_(F.normalize(torch.randn_like(crd.memory_t), dim=1))
    idx = torch.tensor([3, 10, 40, 63])
    s, t = data[idx] * 0.5, data[idx]
    mem_s, mem_t = crd.memory_s.clone(), crd.memory_t.clone()
    with torch.no_grad():
        v_s, v_t = crd.embed_s(s), crd.embed_t(t)
    crd.loss(t, s, idx)
    m = crd.nce_m
    torch.testing.assert_close(crd.memory_s[idx], F.normalize(mem_s[idx] * m + v_s * (1 - m), dim=1))
    torch.testing.assert_close(crd.memory_t[idx], F.normalize(mem_t[idx] * m + v_t * (1 - m), dim=1))
    others = torch.ones(crd.n_data, dtype=torch.bool)
    others[idx] = False
    assert torch.equal(crd.memory_s[others], mem_s[others])
    assert torch.equal(crd.memory_t[others], mem_t[others])
    assert not torch.allclose(crd.memory_s[idx], mem_s[idx])


def test_crd_contrast_indices_and_argument_checks():
    crd = CRD(1, 1, n_data=10, feat_dim=8, nce_k=9)
    torch.manual_seed(0)
    idx = torch.tensor([0, 4, 9])
    for _ in range(20):
        c = crd.contrast_indices(idx)
        assert c.shape == (3, 10)
        assert torch.equal(c[:, 0], idx)
        assert (c[:, 1:] != idx[:, None]).all() and c.min() >= 0 and c.max() < 10
    with pytest.raises(ValueError, match="nce_k"):
        CRD(1, 1, n_data=10, nce_k=10)
    with pytest.raises(ValueError, match="nce_k"):
        build_addon("crd", channels=1, n_data=100, nce_k=4096)
    x = torch.randn(2, 1, H, H)
    with pytest.raises(ValueError, match="idx"):
        crd.loss(x, x)
    with pytest.raises(ValueError, match="out of range"):
        crd.loss(x, x, torch.tensor([0, 10]))


def test_crd_built_by_name_without_teacher_channels():
    crd = build_addon("crd", channels=3, n_data=50, nce_k=8, feat_dim=16)
    x = torch.randn(4, 3, H, H, requires_grad=True)
    loss = crd.loss(x.detach() + 0.1, x, torch.arange(4))
    assert torch.isfinite(loss)
    loss.backward()
    assert x.grad is not None
    assert {id(p) for p in crd.student_parameters()} == {id(p) for p in crd.parameters()}


# --------------------------------------------------------------------------------------------------
# 6. save / load round trips


def _vem(seed):
    torch.manual_seed(seed)
    return EnergyMI(channels=1, image_size=H, width=4, steps=3, step_size=1.0, step_ref_size=None, lr=1e-3)


def _vid(seed):
    torch.manual_seed(seed)
    return VID(2, 2, mode="feature", mid_channels=3)


def _crd(seed):
    torch.manual_seed(seed)
    return CRD(2, 2, n_data=20, feat_dim=8, nce_k=5)


def _step(addon, t, s, idx, seed):
    """One training iteration; returns everything that should be reproducible."""
    torch.manual_seed(seed)
    s = s.clone().requires_grad_()
    stats = addon.fit_step(t, s.detach(), idx)
    loss = addon.loss(t, s, idx)
    loss.backward()
    return stats, loss.detach(), s.grad


@pytest.mark.parametrize("make", [_vem, _vid, _crd], ids=["vem", "vid", "crd"])
@pytest.mark.parametrize("via_bytes", [False, True], ids=["in_memory", "torch_save"])
def test_state_dict_round_trip_gives_identical_next_step(make, via_bytes):
    g = torch.Generator().manual_seed(0)
    t1, s1 = torch.rand(4, 2 if make is not _vem else 1, H, H, generator=g) * 2 - 1, None
    s1 = torch.rand(t1.shape, generator=g) * 2 - 1
    t2, s2 = torch.rand(t1.shape, generator=g) * 2 - 1, torch.rand(t1.shape, generator=g) * 2 - 1
    idx1, idx2 = torch.tensor([0, 1, 2, 3]), torch.tensor([2, 5, 7, 11])
    a = make(0)
    _step(a, t1, s1, idx1, seed=1)
    if make is _vem:
        assert a.opt.state, "Adam state should exist after a step"
    if make is _vid:                                             # give VID non-default parameters
        with torch.no_grad():
            for p in a.parameters():
                p.add_(0.1 * torch.randn_like(p))
    sd = a.state_dict()
    b = make(123)                                                # different init
    b.load_state_dict(roundtrip(sd) if via_bytes else sd)
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        if isinstance(va, torch.Tensor):
            assert torch.equal(va, vb), k
    out_a = _step(a, t2, s2, idx2, seed=7)                       # a steps first: b must be independent
    out_b = _step(b, t2, s2, idx2, seed=7)
    assert out_a[0] == out_b[0]
    assert torch.equal(out_a[1], out_b[1])
    assert torch.equal(out_a[2], out_b[2])
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        if isinstance(va, torch.Tensor):
            assert torch.equal(va, vb), k
    if make is _vem:                                             # and the following EBM step too
        out_a, out_b = _step(a, t1, s1, idx1, seed=9), _step(b, t1, s1, idx1, seed=9)
        assert out_a[0] == out_b[0] and torch.equal(out_a[1], out_b[1])


# --------------------------------------------------------------------------------------------------
# 7. argument checks, non-finite handling, step scaling, the default energy net, spectral norm


def test_build_addon_rejects_unknown_names_and_hyper_parameters():
    with pytest.raises(ValueError, match=r"unknown add-on 'vemm'.*none.*vid.*crd.*vem.*module:Class"):
        build_addon("vemm", channels=3)
    with pytest.raises(TypeError, match=r"unknown hyper-parameter.*step_sise.*'vem'"):
        build_addon("vem", channels=1, image_size=H, step_sise=3.0)
    with pytest.raises(TypeError, match=r"'none' takes no hyper-parameters.*lambda_mi"):
        build_addon("none", lambda_mi=0.1)
    with pytest.raises(ValueError, match="on_nonfinite"):
        build_addon("vem", channels=1, image_size=H, on_nonfinite="ignore")
    with pytest.raises(ValueError, match="mode"):
        build_addon("vid", channels=3, mode="features")
    none = build_addon("none")
    assert isinstance(none, NoAddon)
    x = torch.randn(2, 1, 4, 4)
    assert none.fit_step(x, x) == {} and none.loss(x, x).item() == 0.0 and none.student_parameters() == []
    vem = build_addon("vem", channels=1, image_size=H, width=4, steps=3, lambda_mi=0.5)
    assert isinstance(vem, EnergyMI) and vem.steps == 3 and vem.lambda_mi == 0.5
    assert isinstance(build_addon("vid", channels=3, t_channels=3), VID)


def test_vem_raises_nonfinite_error_naming_the_step_on_huge_step_size():
    torch.manual_seed(0)
    # with eta/v = 1e6 the chain grows by ~1e6 per step and overflows to inf within 10 steps
    addon = EnergyMI(channels=1, energy=QuadEnergy(0.0, 1.0, dummy=True), steps=10, step_size=1e6,
                     step_ref_size=None, noise_std=0.005)
    t = torch.rand(2, 1, H, H) * 2 - 1
    with pytest.raises(NonFiniteError, match=r"Langevin step \d+/10"):
        addon.fit_step(t, t * 0.5)
    addon2 = EnergyMI(channels=1, energy=NaNEnergy(), steps=4, step_size=1.0, step_ref_size=None)
    with pytest.raises(NonFiniteError, match=r"Langevin step 1/4"):
        addon2.fit_step(t, t)


def test_vem_skip_mode_counts_and_returns_finite_zero_loss():
    torch.manual_seed(0)
    addon = EnergyMI(channels=1, energy=NaNEnergy(), steps=4, step_size=1.0, step_ref_size=None,
                     on_nonfinite="skip")
    t = torch.rand(2, 1, H, H) * 2 - 1
    s = (torch.rand(2, 1, H, H) * 2 - 1).requires_grad_()
    w0 = addon.energy.w.detach().clone()
    stats = addon.fit_step(t, s.detach())
    assert stats == {"vem_skipped": 1} and int(addon.skipped) == 1
    assert torch.equal(addon.energy.w.detach(), w0)              # no EBM update
    loss = addon.loss(t, s)
    assert int(addon.skipped) == 2
    assert torch.isfinite(loss) and loss.item() == 0.0
    loss.backward()                                              # still usable in a training loop
    assert torch.equal(s.grad, torch.zeros_like(s))


class ConstEnergy(nn.Module):
    """E = c for every pair (a learnable constant)."""

    def __init__(self, c: float):
        super().__init__()
        self.c = nn.Parameter(torch.tensor(c))

    def forward(self, t, s):
        return self.c + 0.0 * t.flatten(1).sum(1)


def test_vem_warns_once_when_energies_saturate():
    t = torch.rand(2, 1, H, H) * 2 - 1
    ok = EnergyMI(channels=1, energy=ConstEnergy(1.0), steps=1, step_size=1.0, step_ref_size=None, alpha=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ok.fit_step(t, t)["saturated"] == 0                # |E| = 1 < 0.9 * 1 / (2 * 0.05)
    sat = EnergyMI(channels=1, energy=ConstEnergy(9.5), steps=1, step_size=1.0, step_ref_size=None,
                   alpha=0.05)
    with pytest.warns(RuntimeWarning, match="saturate"):
        assert sat.fit_step(t, t)["saturated"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sat.fit_step(t, t)["saturated"] == 1               # counted again, but warned only once


def test_effective_step_scales_with_pixel_count():
    addon = EnergyMI(channels=1, energy=QuadEnergy(0.0, 1.0, dummy=True), step_size=100.0, step_ref_size=256,
                     noise_std=0.0, steps=1, clamp=None)
    for h, w in [(256, 256), (32, 32), (16, 64), (8, 8)]:
        assert addon.effective_step(torch.zeros(1, 1, h, w)) == pytest.approx(100.0 * h * w / 256**2)
    addon.step_ref_size = None
    assert addon.effective_step(torch.zeros(1, 1, 32, 32)) == 100.0
    # sample() really uses it: one noiseless step on E = 0.5|t|^2 gives t1 = (1 - step) * t0
    addon.step_ref_size = 64                                    # 16x16 -> step 100 * 256 / 4096 = 6.25
    addon.step_size = 0.32 * 4096 / 256                          # -> effective step 0.32
    s = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(addon.sample(s), (1 - 0.32) * s)


def test_default_resnet_ebm_input_gradient_falls_about_as_one_over_pixels():
    # per-pixel |dE/dt| at init, averaged over 8 random inits per size (default depth per size);
    # 1/(H W) predicts a 16x16 : 32x32 ratio of 4; measured ~3.0 (groups of 6 seeds: 2.3-4.1)
    def grad_mag(size, seed):
        torch.manual_seed(seed)
        net = ResnetEBM(3, 8, image_size=size)
        torch.manual_seed(1000 + seed)
        t = (torch.rand(4, 3, size, size) * 2 - 1).requires_grad_()
        s = torch.rand(4, 3, size, size) * 2 - 1
        (g,) = torch.autograd.grad(net(t, s).sum(), t)
        return g.abs().mean().item()

    seeds = range(8)
    ratio = sum(grad_mag(16, k) for k in seeds) / sum(grad_mag(32, k) for k in seeds)
    assert 2.0 < ratio < 6.0, ratio

    # one fixed network (3 blocks) evaluated at both sizes: the same trend, less spread (~3.1-3.4)
    ratios = []
    for seed in range(3):
        torch.manual_seed(seed)
        net = ResnetEBM(3, 8, n_blocks=3)
        mags = []
        for size in (16, 32):
            torch.manual_seed(1000 + seed)
            t = (torch.rand(4, 3, size, size) * 2 - 1).requires_grad_()
            (g,) = torch.autograd.grad(net(t, torch.rand(4, 3, size, size) * 2 - 1).sum(), t)
            mags.append(g.abs().mean().item())
        ratios.append(mags[0] / mags[1])
    assert all(2.0 < r < 6.0 for r in ratios), ratios


def test_resnet_ebm_default_depth_and_near_zero_residual_branches():
    for size, blocks in [(8, 2), (16, 3), (32, 4), (256, 7), (1024, 7)]:
        assert len(ResnetEBM(1, 4, image_size=size).blocks) == blocks
    torch.manual_seed(0)
    net = ResnetEBM(1, 4, image_size=16)
    assert net(torch.zeros(3, 1, 16, 16), torch.zeros(3, 1, 16, 16)).shape == (3,)
    for block in net.blocks:
        assert block.conv2.lower_bound and block.conv2.weight.abs().max() < 1e-8
        x = torch.randn(2, block.conv1.in_channels, 8, 8)
        with torch.no_grad():
            branch = block.conv2(F.leaky_relu(block.conv1(x), block.slope))
            shortcut = block.shortcut(x)
        assert branch.abs().max() < 1e-6 * shortcut.abs().max()  # block starts as shortcut only
    with pytest.raises(ValueError, match="width"):
        ResnetEBM(1, 0)


@pytest.mark.parametrize("size", [3, 7, 8, 15, 17, 32, 33, 100, 256])
def test_energy_depth_is_the_deepest_network_that_runs(size):
    """vem.mi.options.energy_depth (the dry run's check of addon.vem.n_blocks): that many blocks run on size-px
    images; one more is refused when built, where without the check the forward would fail (a 0 x 0 map)."""
    from vem.mi.options import energy_depth

    d = energy_depth(size)
    x = torch.rand(1, 1, size, size)
    assert ResnetEBM(1, 2, image_size=size, n_blocks=d)(x, x).shape == (1,)
    with pytest.raises(RuntimeError, match="too small"):
        ResnetEBM(1, 2, n_blocks=d + 1)(x, x)
    with pytest.raises(ValueError, match=f"n_blocks={d + 1} is too deep for {size} px images"):
        ResnetEBM(1, 2, image_size=size, n_blocks=d + 1)


def test_lower_bound_spectral_norm_keeps_tiny_weight_and_plain_sn_normalises_it():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 8, 8)

    def sn_after_iterations(lower_bound, std):
        conv = SNConv2d(8, 16, 3, padding=1, lower_bound=lower_bound)
        nn.init.normal_(conv.weight, std=std)
        for _ in range(30):                                      # power iteration runs once per forward
            conv(x)
        w = conv.sn_weight().detach().reshape(16, -1)
        return torch.linalg.matrix_norm(w, ord=2).item(), conv

    lb_norm, lb_conv = sn_after_iterations(True, 1e-10)
    assert lb_norm < 1e-8                                        # measured ~1.2e-9: left as it is
    torch.testing.assert_close(lb_conv.sn_weight(), lb_conv.weight)
    plain_norm, _ = sn_after_iterations(False, 1e-10)
    assert abs(plain_norm - 1) < 0.01                            # blown up to spectral norm 1
    big_lb, _ = sn_after_iterations(True, 1.0)                   # sigma > 1: lower bound divides too
    assert abs(big_lb - 1) < 0.05
    big_plain, _ = sn_after_iterations(False, 1.0)
    assert abs(big_plain - 1) < 0.05                             # measured ~1.02 after 30 iterations
    # eval mode does not advance the power iteration
    conv = SNConv2d(8, 16, 3, padding=1).eval()
    u0 = conv.sn_u.clone()
    conv(x)
    assert torch.equal(conv.sn_u, u0)


def test_gradient_probe_known_answer():
    """A linear student s = W x with method loss |s - a|^2 and add-on loss lam |s - t|^2: the gradients at s
    are 2 (s - a) and 2 lam (s - t), at W their products with x (written out with numpy)."""
    from vem.mi import gradient_probe

    g = torch.Generator().manual_seed(0)
    x, a, t = (torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(3))
    W = torch.randn(4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    s = x @ W
    lam = 0.3
    st = gradient_probe(((s - a) ** 2).sum(), lam * ((s - t) ** 2).sum(), s, [W], t)
    S, X, A, T = (v.detach().numpy() for v in (s, x, a, t))
    gm_s, ga_s = 2 * (S - A), 2 * lam * (S - T)
    gm_w, ga_w = X.T @ gm_s, X.T @ ga_s

    def cos(u, v):
        return float((u * v).sum() / np.linalg.norm(u) / np.linalg.norm(v))

    assert st["probe_ratio_out"] == pytest.approx(np.linalg.norm(ga_s) / np.linalg.norm(gm_s), rel=1e-12)
    assert st["probe_ratio_params"] == pytest.approx(np.linalg.norm(ga_w) / np.linalg.norm(gm_w), rel=1e-12)
    assert st["probe_cos_out"] == pytest.approx(cos(ga_s, gm_s), rel=1e-12)
    assert st["probe_cos_params"] == pytest.approx(cos(ga_w, gm_w), rel=1e-12)
    assert st["probe_cos_to_positive"] == pytest.approx(1.0, rel=1e-12)   # an L2 pull toward t
    away = gradient_probe(((s - a) ** 2).sum(), -lam * ((s - t) ** 2).sum(), s, [W], t)
    assert away["probe_cos_to_positive"] == pytest.approx(-1.0, rel=1e-12)
    assert gradient_probe(((s - a) ** 2).sum(), s.new_zeros(()), s, [W], t) == {}
    alone = gradient_probe(s.new_zeros(()), lam * ((s - t) ** 2).sum(), s, [W], t)   # no method loss at all
    assert math.isnan(alone["probe_ratio_out"]) and alone["probe_cos_to_positive"] == pytest.approx(1.0)
    assert W.grad is None    # the probe leaves no gradient behind


def test_probe_summary_of_a_curve():
    import pandas as pd

    from vem.mi.probe import summarise_curve

    c = pd.DataFrame({"iter": [10, 20, 30], "val": [3.0, 2.0, 1.0], "probe_cos_to_positive": [-0.5, 0.1, -0.2],
                      "probe_ratio_out": [1e-3, 2e-3, 3e-3]})
    s = summarise_curve(c)
    assert s["cos_to_positive"] == pytest.approx(-0.2) and s["ratio_out"] == pytest.approx(2e-3)
    assert s["share_points_away_from_positive"] == pytest.approx(2 / 3) and s["points"] == 3
    assert summarise_curve(c[["iter", "val"]]) == {}


def test_frozen_energy_keeps_its_initialisation():
    """train_energy=False (the positive control's frozen-energy arm): fit_step samples and reports but never
    updates the energy network; the student term still has a gradient."""
    from vem.mi import build_addon

    torch.manual_seed(0)
    frozen = build_addon("vem", channels=1, image_size=16, width=4, n_blocks=1, train_energy=False)
    learned = build_addon("vem", channels=1, image_size=16, width=4, n_blocks=1)
    learned.energy.load_state_dict(frozen.energy.state_dict())
    before = {k: v.clone() for k, v in frozen.energy.state_dict().items()}
    t, s = torch.rand(4, 1, 16, 16) * 2 - 1, (torch.rand(4, 1, 16, 16) * 2 - 1).requires_grad_(True)
    for _ in range(3):
        st = frozen.fit_step(t, s.detach())
        learned.fit_step(t, s.detach())
    assert {"energy_gap", "langevin_disp"} <= set(st)
    for k, v in frozen.energy.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert any(not torch.equal(v, before[k]) for k, v in learned.energy.state_dict().items())
    frozen.loss(t, s).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()

"""VEM: an energy-based variational distribution q(t|s) = exp(-E(t, s)) / Z(s) and its Langevin sampler.

Paper: Kang et al., "Information-Theoretic GAN Compression with Variational Energy-based Model",
NeurIPS 2022, sections 3-4. Mapping of the hyper-parameters:

=====================  ===========================  ====================================================
paper                  here                         meaning
=====================  ===========================  ====================================================
K (10 steps)           ``steps``                    short-run Langevin steps, chain started at s
lambda (step 100/50)   ``step_size``                gradient step, given at ``step_ref_size``^2 pixels
noise std 0.005        ``noise_std``                std of the Gaussian noise added per step
lambda_MI (0.1)        ``lambda_mi``                weight of the student term, eq. (10)
Adam lr 1e-4           ``lr``, ``betas=(0, .999)``  the energy network's own optimiser (constant lr)
(not in the paper)     ``alpha`` (0.05)             E^2 penalty of the reference code
=====================  ===========================  ====================================================

EBM step (eq. 6):     min_theta  mean E(t+, s) - mean E(t~, s) + alpha * mean(E(t+, s)^2 + E(t~, s)^2)
Student term (eq. 9): lambda_mi * [mean E(t+, s) - mean E(t~, s)]   (EBM frozen, t+ and t~ detached)

``t+`` is the positive: the teacher output, or the ground truth for paired tasks (paper section 5.3).
The negatives t~ drawn for the EBM step are reused by the student term (paper section 4.2.1).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .base import MIAddon, NonFiniteError
from .options import check_options, energy_depth

# --------------------------------------------------------------------------------------------------
# spectral normalisation with an optional "lower bound" mode


def _spectral_sigma(weight: torch.Tensor, u: torch.Tensor, update: bool) -> torch.Tensor:
    """Largest singular value of ``weight`` (as a matrix out x rest) by one power iteration."""
    w = weight.reshape(weight.shape[0], -1)
    with torch.no_grad():
        v = F.normalize(w.t() @ u, dim=0, eps=1e-12)
        u_new = F.normalize(w @ v, dim=0, eps=1e-12)
        if update:
            u.copy_(u_new)
        u_used = u_new.clone()
    return torch.dot(u_used, w @ v)


class _SNMixin:
    """Divides the weight by its spectral norm sigma; with ``lower_bound`` only when sigma > 1.

    PyTorch's ``spectral_norm`` always divides, which turns a near-zero initialisation into an
    O(1) one. The lower-bound mode leaves small weights as they are, so a residual branch whose last
    conv starts at std 1e-10 starts (almost) switched off.
    """

    def _init_sn(self, lower_bound: bool) -> None:
        self.lower_bound = lower_bound
        u = F.normalize(torch.randn(self.weight.shape[0]), dim=0)
        self.register_buffer("sn_u", u)

    _w_cache: torch.Tensor | None = None

    def sn_weight(self) -> torch.Tensor:
        if self._w_cache is not None:
            return self._w_cache
        sigma = _spectral_sigma(self.weight, self.sn_u, update=self.training)
        if self.lower_bound:
            sigma = torch.clamp(sigma, min=1.0)
        return self.weight / sigma


class SNConv2d(_SNMixin, nn.Conv2d):
    def __init__(self, *args, lower_bound: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_sn(lower_bound)

    def forward(self, x):
        return self._conv_forward(x, self.sn_weight(), self.bias)


class SNLinear(_SNMixin, nn.Linear):
    def __init__(self, *args, lower_bound: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_sn(lower_bound)

    def forward(self, x):
        return F.linear(x, self.sn_weight(), self.bias)


class frozen_weights:
    """Context: compute every SN layer's normalised weight once, detached, and reuse it (the energy's
    parameters are constant during a Langevin chain and in the student term)."""

    def __init__(self, module: nn.Module):
        self.layers = [m for m in module.modules() if isinstance(m, _SNMixin)]

    def __enter__(self):
        with torch.no_grad():
            for m in self.layers:
                m._w_cache = None
                m._w_cache = m.sn_weight().detach()
        return self

    def __exit__(self, *exc):
        for m in self.layers:
            m._w_cache = None
        return False


# --------------------------------------------------------------------------------------------------
# the energy network


class EBMBlock(nn.Module):
    """Residual block: SN-conv -> LeakyReLU -> SN-conv (lower-bound SN, init std 1e-10) + shortcut,
    then 2x2 average pooling and LeakyReLU."""

    def __init__(self, c_in: int, c_out: int, slope: float):
        super().__init__()
        self.conv1 = SNConv2d(c_in, c_in, 3, padding=1)
        self.conv2 = SNConv2d(c_in, c_out, 3, padding=1, lower_bound=True)
        self.shortcut = SNConv2d(c_in, c_out, 3, padding=1) if c_in != c_out else nn.Identity()
        self.slope = slope
        nn.init.normal_(self.conv2.weight, std=1e-10)

    def forward(self, x):
        h = self.conv2(F.leaky_relu(self.conv1(x), self.slope))
        out = F.avg_pool2d(h + self.shortcut(x), 2)
        return F.leaky_relu(out, self.slope)


class ResnetEBM(nn.Module):
    """E(t, s) -> one scalar per pair; the reference architecture with configurable width and depth.

    Both images are average-pooled x2 (k3, s2, p1) and concatenated; ``fromRGB`` SN-conv to ``width``;
    residual blocks widen width -> 2 width -> 4 width (capped) and halve the resolution each;
    ReLU -> global mean -> SN-linear. With ``n_blocks=None`` the depth brings the pooled input to 1x1
    (the reference: 7 blocks for 256^2 inputs), capped at 7.
    """

    def __init__(self, channels: int = 3, width: int = 32, image_size: int | None = None,
                 n_blocks: int | None = None, slope: float = 0.01):
        super().__init__()
        if width < 1:
            raise ValueError(f"energy width must be >= 1, got {width}")
        if not n_blocks:   # None or 0: automatic
            n_blocks = 7 if image_size is None else max(1, min(7, int(math.log2(max(image_size // 2, 2)))))
        elif image_size is not None and n_blocks > energy_depth(image_size):
            raise ValueError(f"energy n_blocks={n_blocks} is too deep for {image_size} px images (each block halves "
                             f"the {-(-image_size // 2)} px pooled input: at most {energy_depth(image_size)})")
        self.from_rgb = SNConv2d(2 * channels, width, 3, padding=1)
        widths = [width * min(2**i, 4) for i in range(n_blocks + 1)]
        self.blocks = nn.Sequential(*[EBMBlock(widths[i], widths[i + 1], slope) for i in range(n_blocks)])
        self.head = SNLinear(widths[-1], 1)
        self.slope = slope
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if not (isinstance(m, SNConv2d) and m.lower_bound):
                    nn.init.normal_(m.weight, std=1.0)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        x = torch.cat([F.avg_pool2d(t, 3, 2, 1), F.avg_pool2d(s, 3, 2, 1)], dim=1)
        h = F.leaky_relu(self.from_rgb(x), self.slope)
        h = self.blocks(h)
        return self.head(F.relu(h).mean(dim=(2, 3))).squeeze(1)


# --------------------------------------------------------------------------------------------------
# Langevin sampler


def langevin(energy, t0: torch.Tensor, s: torch.Tensor, steps: int, step_size: float, noise_std: float,
             clamp: tuple[float, float] | None = (-1.0, 1.0), generator: torch.Generator | None = None
             ) -> torch.Tensor:
    """Short-run Langevin chain ``t <- t - step_size * dE/dt + noise_std * eps``, started at ``t0``.

    The step is used exactly as given (no resolution scaling here). The chain starts at ``t0``
    (detached; VEM passes the student output), the samples are clamped to ``clamp`` once after the
    loop (as the reference code does) and returned detached. Gradients are taken w.r.t. the first
    (teacher-slot) input only; the energy's parameters get no gradient.

    With a decoupled step eta and noise sigma the update is an Euler-Maruyama discretisation of
    Langevin dynamics whose stationary density is p(t) ∝ exp(-2 eta E(t, s) / sigma^2). The paper's
    eq. (7), ``t - (lambda/2) dE/dt + N(0, lambda I)``, is the special case sigma^2 = lambda, eta = lambda/2,
    which targets q = exp(-E) itself. The paper's settings (eta = 100, sigma = 0.005) therefore sample
    exp(-E / 1.25e-7): at temperature ~1e-7, i.e. nearly noiseless descent on E from the student output.
    """
    if steps < 0:
        raise ValueError(f"langevin steps must be >= 0, got {steps}")
    s = s.detach()
    t = t0.detach().clone()
    for k in range(steps):
        t.requires_grad_(True)
        with torch.enable_grad():
            e = energy(t, s)
            (grad,) = torch.autograd.grad(e.sum(), t)
        if not torch.isfinite(grad).all():
            raise NonFiniteError(f"Langevin step {k + 1}/{steps}: non-finite energy gradient "
                                 f"(step_size={step_size:g}); lower the step size")
        noise = torch.randn(t.shape, generator=generator, dtype=t.dtype, device=t.device)
        t = (t.detach() - step_size * grad + noise_std * noise).detach()
    if clamp is not None:
        t = t.clamp(*clamp)
    return t.detach()


# --------------------------------------------------------------------------------------------------
# the add-on


class EnergyMI(MIAddon):
    """VEM add-on: maximises a variational lower bound of I(T; S) with an energy-based q(t|s).

    Args:
        channels: image channels (of t and of s).
        image_size: training resolution; sets the default depth of the energy network.
        energy: your own ``nn.Module`` mapping ``(t, s) -> (N,)`` energies; replaces ``ResnetEBM``.
        width: base width of the default energy network (reference: 32 for pix2pix, 8 for CycleGAN).
        steps, step_size, noise_std: Langevin chain (paper: 10, 100 (50 Cityscapes/FFHQ), 0.005).
        step_ref_size: ``step_size`` is meant at ``step_ref_size`` x ``step_ref_size`` pixels. The energy
            gradient per pixel falls about as 1/(H W) (the energy averages over space), so the step used
            on an H x W input is ``step_size * H * W / step_ref_size**2``: step 100 at 256^2 and at 32^2
            then move pixels by about the same amount. ``None`` uses ``step_size`` as given.
        alpha: weight of the E^2 penalty; energies saturate near -/+ 1 / (2 alpha).
        lambda_mi: weight of the student term.
        on_nonfinite: "raise" (default) or "skip" (skip the step, count it in ``self.skipped``).
        saturation: warn when mean |E| exceeds this fraction of 1 / (2 alpha).
        train_energy: False keeps the energy network at its initialisation (a control: the Langevin
            negatives and the student term still run; only the EBM update is skipped).
    """

    name = "vem"

    def __init__(self, channels: int = 3, image_size: int | None = None, energy: nn.Module | None = None,
                 width: int = 32, n_blocks: int | None = None, steps: int = 10, step_size: float = 100.0,
                 step_ref_size: int | None = 256, noise_std: float = 0.005, alpha: float = 0.05,
                 lambda_mi: float = 0.1, lr: float = 1e-4, betas: tuple[float, float] = (0.0, 0.999),
                 clamp: tuple[float, float] | None = (-1.0, 1.0), on_nonfinite: str = "raise",
                 saturation: float = 0.9, train_energy: bool = True):
        super().__init__()
        check_options("vem", {"width": width, "n_blocks": n_blocks, "steps": steps, "step_size": step_size,
                              "step_ref_size": step_ref_size, "noise_std": noise_std, "alpha": alpha,
                              "lambda_mi": lambda_mi, "lr": lr, "betas": list(betas), "on_nonfinite": on_nonfinite,
                              "saturation": saturation, "train_energy": train_energy}, where="vem")
        if not math.isfinite(step_size):
            raise ValueError(f"vem.step_size must be a finite number, got {step_size}")
        self.energy = energy if energy is not None else ResnetEBM(channels, width, image_size, n_blocks)
        self.steps, self.step_size, self.step_ref_size = steps, float(step_size), step_ref_size
        self.noise_std, self.alpha, self.lambda_mi = float(noise_std), float(alpha), float(lambda_mi)
        self.clamp, self.on_nonfinite, self.saturation = clamp, on_nonfinite, saturation
        self.train_energy = bool(train_energy)
        self.opt = torch.optim.Adam(self.energy.parameters(), lr=lr, betas=tuple(betas))
        self.register_buffer("skipped", torch.zeros((), dtype=torch.long))
        self._negatives: tuple[torch.Tensor, torch.Tensor] | None = None
        self._warned = False

    def _optimizers(self):
        return {"energy_opt": self.opt}

    def effective_step(self, t: torch.Tensor) -> float:
        """The Langevin step for inputs shaped like ``t`` (see ``step_ref_size``)."""
        if self.step_ref_size is None:
            return self.step_size
        return self.step_size * t.shape[-1] * t.shape[-2] / float(self.step_ref_size) ** 2

    def sample(self, s: torch.Tensor) -> torch.Tensor:
        """Negatives t~ ~ q(t|s): a short-run chain started at the (detached) student output."""
        was_training = self.energy.training
        self.energy.eval()
        try:
            with frozen_weights(self.energy):
                return langevin(self.energy, s, s, self.steps, self.effective_step(s), self.noise_std,
                                self.clamp)
        finally:
            self.energy.train(was_training)

    def _fail(self, what: str) -> None:
        if self.on_nonfinite == "raise":
            raise NonFiniteError(f"VEM: non-finite {what}; lower step_size/lambda_mi or use on_nonfinite=skip")
        self.skipped += 1

    def fit_step(self, t, s, idx=None) -> dict:
        t, s = t.detach(), s.detach()
        try:
            neg = self.sample(s)
        except NonFiniteError:
            if self.on_nonfinite == "raise":
                raise
            self.skipped += 1
            self._negatives = None
            return {"vem_skipped": int(self.skipped)}
        if self.train_energy:
            self.energy.train()
            e_pos, e_neg = self.energy(t, s), self.energy(neg, s)
        else:   # frozen: weights and spectral-norm estimates stay as initialised; the energies only reported
            self.energy.eval()
            with torch.no_grad(), frozen_weights(self.energy):
                e_pos, e_neg = self.energy(t, s), self.energy(neg, s)
        loss = e_pos.mean() - e_neg.mean() + self.alpha * (e_pos.pow(2) + e_neg.pow(2)).mean()
        if not torch.isfinite(loss):
            self._fail(f"energy in the EBM step (E+={e_pos.mean().item():.3g}, E-={e_neg.mean().item():.3g})")
            self._negatives = None
            return {"vem_skipped": int(self.skipped)}
        if self.train_energy:
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            grads_ok = all(torch.isfinite(p.grad).all() for p in self.energy.parameters() if p.grad is not None)
            if not grads_ok:
                self._fail("gradient in the EBM step")
                self.opt.zero_grad(set_to_none=True)
                self._negatives = None
                return {"vem_skipped": int(self.skipped)}
            self.opt.step()
        self._negatives = (neg, s)
        mean_abs = 0.5 * (e_pos.abs().mean() + e_neg.abs().mean()).item()
        bound = 1.0 / (2.0 * self.alpha) if self.alpha > 0 else float("inf")
        saturated = mean_abs > self.saturation * bound
        if saturated and not self._warned:
            warnings.warn(f"VEM energies saturate (mean |E| = {mean_abs:.2f}, bound {bound:.2f}): the energy "
                          "net separates positives from negatives perfectly and the student term may swamp "
                          "distillation; check the step size", RuntimeWarning, stacklevel=2)
            self._warned = True
        return {
            "ebm_loss": loss.item(),
            "e_pos": e_pos.mean().item(),
            "e_neg": e_neg.mean().item(),
            "energy_gap": (e_neg.mean() - e_pos.mean()).item(),
            "langevin_disp": (neg - s).abs().mean().item(),
            "saturated": int(saturated),
        }

    def loss(self, t, s, idx=None):
        cached = self._negatives
        self._negatives = None
        if cached is not None and cached[0].shape == s.shape and torch.equal(cached[1], s.detach()):
            neg = cached[0]
        else:
            try:
                neg = self.sample(s)
            except NonFiniteError:
                if self.on_nonfinite == "raise":
                    raise
                self.skipped += 1
                return s.sum() * 0.0
        params = list(self.energy.parameters())
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        was_training = self.energy.training
        self.energy.eval()
        try:
            with frozen_weights(self.energy):
                term = self.energy(t.detach(), s).mean() - self.energy(neg, s).mean()
        finally:
            for p, f in zip(params, flags):
                p.requires_grad_(f)
            self.energy.train(was_training)
        if not torch.isfinite(term):
            self._fail("energy in the student term")
            return s.sum() * 0.0
        return self.lambda_mi * term

"""Gradient probe: how an add-on's push on the student compares with the method's own loss.

At a probed iteration, before the student's backward pass, the gradients of the method's loss and of the
(lambda-weighted) add-on loss are taken separately - with respect to the student's output ``s`` and to its
parameters - from the same graph (no recomputation, no randomness drawn), so training is unchanged:

* ``probe_ratio_out`` / ``probe_ratio_params``: ||grad add-on|| / ||grad method loss|| at ``s`` / at the
  parameters (Adam follows the summed gradient, so this, not the loss share, says how much the add-on moves
  the student);
* ``probe_cos_out`` / ``probe_cos_params``: the cosine between the two gradients;
* ``probe_cos_to_positive``: cos(-grad_s add-on, t+ - s): > 0 when the add-on's descent direction moves
  the student output toward the positive, < 0 when it pushes it away.
"""

from __future__ import annotations

import math

import torch


def _flat(grads, like) -> torch.Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, like)])


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    na, nb = a.norm(), b.norm()
    return float((a @ b) / (na * nb)) if na > 0 and nb > 0 else math.nan


def _ratio(a: torch.Tensor, b: torch.Tensor) -> float:
    nb = b.norm()
    return float(a.norm() / nb) if nb > 0 else math.nan


def gradient_probe(method_loss: torch.Tensor, addon_loss: torch.Tensor, s: torch.Tensor, params,
                   positive: torch.Tensor) -> dict:
    """The probe's statistics (see the module); {} when the add-on loss does not depend on the student."""
    if not addon_loss.requires_grad:
        return {}
    params = [p for p in params if p.requires_grad]
    wrt = [s, *params]
    # a method loss without gradient (every term switched off) counts as a zero gradient: ratios are NaN
    g_m = (torch.autograd.grad(method_loss, wrt, retain_graph=True, allow_unused=True) if method_loss.requires_grad
           else [None] * len(wrt))
    g_a = torch.autograd.grad(addon_loss, wrt, retain_graph=True, allow_unused=True)
    gm_s, ga_s = _flat(g_m[:1], [s]), _flat(g_a[:1], [s])
    gm_p, ga_p = _flat(g_m[1:], params), _flat(g_a[1:], params)
    toward = (positive.detach() - s.detach()).reshape(-1)
    return {"probe_ratio_out": _ratio(ga_s, gm_s), "probe_ratio_params": _ratio(ga_p, gm_p),
            "probe_cos_out": _cos(ga_s, gm_s), "probe_cos_params": _cos(ga_p, gm_p),
            "probe_cos_to_positive": _cos(-ga_s, toward)}


def summarise_curve(curve) -> dict:
    """A run's probe in one record, from its curve (a DataFrame whose rows average the probes between two
    curve points): the mean of every probe column over the points, and the share of points whose
    ``probe_cos_to_positive`` is negative (the add-on pushing the student away from the positive)."""
    cols = [c for c in curve.columns if c.startswith("probe_")]
    if not cols:
        return {}
    out = {c.removeprefix("probe_"): float(curve[c].mean()) for c in cols}
    if "probe_cos_to_positive" in cols:
        cos = curve["probe_cos_to_positive"].dropna()
        out["share_points_away_from_positive"] = float((cos < 0).mean()) if len(cos) else math.nan
        out["points"] = int(len(cos))
    return out

"""The protocol every mutual-information add-on follows.

A training loop calls, once per student iteration and in this order::

    stats = addon.fit_step(t, s.detach(), idx)   # update the add-on's own model (EBM); {} if it has none
    loss = algo_loss + addon.loss(t, s, idx)     # already weighted by lambda_mi; grads reach s only
    student_opt = Adam([*student.parameters(), *addon.student_parameters()])

``t`` is the teacher-side tensor (a teacher output, or the ground truth where a task says so) and ``s``
the student output, both ``N x C x H x W`` in [-1, 1]. ``idx`` holds the dataset indices of the batch
(needed by CRD's memory bank). Add-ons are ``nn.Module`` s: ``state_dict()`` carries their weights,
buffers and (through ``get_extra_state``) their private optimiser state, so a resumed run continues
exactly.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class NonFiniteError(FloatingPointError):
    """Raised when an add-on meets a NaN/Inf energy, loss or gradient."""


class MIAddon(nn.Module):
    """Base class: no own model, no loss. Subclasses override what they need."""

    name = "none"
    lambda_mi: float = 0.0

    def fit_step(self, t: torch.Tensor, s: torch.Tensor, idx: torch.Tensor | None = None) -> dict:
        """Update the add-on's own model from detached ``t`` and ``s``; returns scalar statistics."""
        return {}

    def loss(self, t: torch.Tensor, s: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """The term added to the student's loss (weighted by ``lambda_mi``)."""
        return s.new_zeros(())

    def student_parameters(self) -> list[nn.Parameter]:
        """Parameters the student's optimiser must also update (VID variances, CRD heads)."""
        return []

    # private optimisers travel inside state_dict() through PyTorch's extra-state hook
    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def get_extra_state(self):
        return {k: opt.state_dict() for k, opt in self._optimizers().items()}

    def set_extra_state(self, state) -> None:
        # deep copy: Optimizer.load_state_dict keeps the given state tensors (exp_avg, step, ...) when
        # dtype/device already match, so loading another live add-on's state_dict() would make both
        # optimisers update the same tensors in place.
        for k, opt in self._optimizers().items():
            if k in state:
                opt.load_state_dict(copy.deepcopy(state[k]))


class NoAddon(MIAddon):
    """The 'none' add-on: the compression method alone."""

    name = "none"

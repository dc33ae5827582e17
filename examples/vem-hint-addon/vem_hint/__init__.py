"""A trivial MI add-on for the vem harness: a FitNets-style hint, the mean squared distance between the student's
and the teacher's outputs (average-pooled by ``pool``), weighted by ``lambda_mi``. It has no model of its own,
so ``fit_step`` and ``student_parameters`` keep the base class's (nothing to fit, no extra parameters)."""

import torch.nn.functional as F

from vem.mi.base import MIAddon


class HintAddon(MIAddon):
    name = "hint"                      # the id: run folders results/runs/<task>/<method>/hint_lam<λ>/...
    title = "Hint"                     # what tables print: "OMGD + Hint"
    options = {"pool": {"type": "integer", "minimum": 1}}   # checked at `snakemake -n` (addon.hint.pool)

    def __init__(self, lambda_mi: float = 0.1, pool: int = 1):
        super().__init__()
        self.lambda_mi, self.pool = float(lambda_mi), int(pool)

    def loss(self, t, s, idx=None):
        if self.pool > 1:
            t, s = F.avg_pool2d(t, self.pool), F.avg_pool2d(s, self.pool)
        return self.lambda_mi * F.mse_loss(s, t.detach())

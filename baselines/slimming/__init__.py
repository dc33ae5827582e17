"""Slimming (Liu et al., ICCV 2017) as the paper's SAGAN baseline row: GCC's pipeline with its online
teacher, distillation losses and selective-activation discriminator switched off, at the same MAC budget -
BN-L1 pre-training, bisection pruning to the budget, the pruned generator re-initialised and retrained
with a plain discriminator (``baselines.gcc.train``; GCC's variant of Slimming, the anchors' reading of
the row). A baseline row only: it has no teacher, so it is not combined with the MI add-ons.
"""

from __future__ import annotations

from pathlib import Path

from ..gcc import GCC


class Slimming(GCC):
    id = "slimming"
    title = "Slimming"
    config_file = Path(__file__).with_name("config.yaml")
    distill_keys = ()          # no distillation of its own
    combines_addons = False
    last_stage = ("retrain", (), "the pruned generator re-initialised and retrained with a plain discriminator")

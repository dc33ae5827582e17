"""GCC: GAN Compression with online Collaborative distillation and a selective-activation discriminator
(Li et al., NeurIPS 2021; SJLeo/GCC), on SAGAN for the unconditional tasks (the paper's CelebA rows).

Stages (training code in ``baselines.gcc.train``):

* ``pretrain`` (per task): SAGAN at the pre-training width (paper ngf 48) with L1 on the generator's BN
  scales (``bn_l1`` 1e-2, added to their gradients as strength x sign), plain discriminator, 1/10 of the
  Original's epochs;
* ``prune`` (per task): bisection on a global, signed gamma threshold until the generator's MACs - counted in
  GCC's convention (``vem.metrics.cost.count_macs_thop_legacy``) - are within ``tolerance`` of
  ``target_macs``; the pruned widths only (GCC re-initialises the student, nothing is inherited);
* ``distill`` (per run, with the add-on): a teacher SAGAN (paper ngf 64) trained from scratch beside the
  student on the same batch and z (its own D and G step first); the student's G loss = hinge + content and
  Gram-style losses on the generator taps (through 1x1 convs) and the teacher discriminator's taps, + the
  MI add-on with t = G_t(z), s = G_s(z); the student's D is the selective-activation discriminator (a
  straight-through channel gate after every SN conv; weights and gates have their own optimisers), whose
  gates alone move in an architecture step on a second batch: loss = |d_s - d_t| + L_real + L_fake with the
  student's gap d_s = |L_Gfake - L_fake| and the teacher's gap d_t smoothed by an EMA (factor 1 - epoch /
  epochs). The gate threshold is 0.5 as in GCC's SAGAN code (its script's ``--threshold 0.1`` never reaches
  the SAGAN discriminator); ``gate_threshold`` takes 0.1 as an option. GCC's code hands the online-distilling
  student's and the gated discriminator's optimisers the spectrally normalised and attention convolutions'
  parameters twice (``train.listed_twice``): two Adam updates per step for those, as the code does
  (``duplicate_params: true``); ``false`` updates each once.
"""

from __future__ import annotations

from pathlib import Path

from vem.methods import Method, Stage
from vem.schema import BOOL, NONNEG, POSITIVE, TEACHER, ConfigError, check_teacher, integer, number, section

TAPS = {"type": "array", "uniqueItems": True, "items": {"enum": ["l1", "l2", "l3", "l4", "attn1", "attn2"]}}
BETA = number(minimum=0, exclusive_maximum=1)


class GCC(Method):
    id = "gcc"
    title = "GCC"
    config_file = Path(__file__).with_name("config.yaml")
    distill_keys = ("lambda_content", "lambda_gram", "lambda_l1")   # the hinge GAN term stays
    originals = ("sagan",)
    schema = section({
        "pretrain": TEACHER, "target_macs": number(exclusive_minimum=0), "tolerance": NONNEG,
        "max_bisection_steps": integer(1),
        "teacher": section({"ngf": integer(1), "ndf": integer(1)}), "online_teacher": BOOL,
        "ndf": integer(1), "gated_d": BOOL, "gate_threshold": number(exclusive_minimum=0, maximum=1),
        "arch_lr": POSITIVE, "duplicate_params": BOOL,
        "iters": integer(1), "batch": integer(1), "lr": POSITIVE, "lr_d": POSITIVE, "beta1": BETA, "beta2": BETA,
        "lambda_content": NONNEG, "lambda_gram": NONNEG, "lambda_l1": NONNEG, "g_taps": TAPS, "d_taps": TAPS,
        "eval_every": integer(1),
    })

    # the last stage: its name, what else it reads, what it does (Slimming retrains instead)
    last_stage = ("distill", (), "the pruned student re-initialised and trained with the online teacher, the "
                                 "selective-activation discriminator and the add-on")

    def stages(self, cfg: dict) -> tuple[Stage, ...]:
        name, needs, what = self.last_stage
        return (Stage("pretrain", "task", help="SAGAN at the pre-training width with L1 on the BN scales"),
                Stage("prune", "task", ("pretrain",), "bisection on a global gamma threshold to the MAC budget "
                                                      "(GCC's counting convention)"),
                Stage(name, "run", ("prune",) + needs, what))

    def check(self, cfg: dict) -> None:
        from vem.models.geometry import sagan_levels

        c = cfg[self.id]
        if cfg["kind"] != "unconditional":
            raise ConfigError(f"{self.id} compresses SAGAN: it runs on unconditional tasks, not {cfg['task']}")
        check_teacher(c["pretrain"], f"{self.id}.pretrain", cfg["kind"])
        if c["pretrain"].get("arch") != "sagan":
            raise ConfigError(f"{self.id}.pretrain.arch must be 'sagan', got {c['pretrain'].get('arch')!r}")
        from vem.data.tasks import get_task

        n = sagan_levels(get_task(cfg["task"]).size)
        for key in ("g_taps", "d_taps"):
            bad = [t for t in c[key] if t.startswith("l") and int(t[1:]) > n]
            if bad:
                raise ConfigError(f"{self.id}.{key}: {bad} do not exist at {get_task(cfg['task']).size} px "
                                  f"(layers l1..l{n}, attn1, attn2)")
        from .arithmetic import sagan_macs

        smallest = sagan_macs([1] * n, get_task(cfg["task"]).out_channels, get_task(cfg["task"]).size)
        if smallest > c["target_macs"] + c["tolerance"]:     # what prune would find after the pre-training
            raise ConfigError(f"{self.id}.target_macs {c['target_macs']:.6g} (+ tolerance {c['tolerance']:.6g}) is "
                              f"below the smallest SAGAN, one channel per layer ({smallest} MACs in GCC's count)")
        if not c["online_teacher"]:
            on = [k for k in ("lambda_content", "lambda_gram", "lambda_l1") if c[k]]
            if on or c["gated_d"]:
                raise ConfigError(f"{self.id}: online_teacher false leaves no teacher for "
                                  f"{on or ['gated_d']} (set them to 0 / false)")
            if self.combines_addons:      # its add-on runs would have no teacher either: that is Slimming
                raise ConfigError(f"{self.id}.online_teacher false leaves its add-on runs no teacher; the method "
                                  f"without a teacher and add-ons is slimming")

    def run_stage(self, stage: str, ctx):
        from . import train

        return {"pretrain": train.pretrain, "prune": train.prune, self.last_stage[0]: train.distill}[stage](ctx)

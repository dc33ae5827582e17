"""OMGD: Online Multi-Granularity Distillation (Ren et al., ICCV 2021), as in bytedance/OMGD.

Stages (the training code is in ``baselines.omgd.train``):

* paired tasks, ``share_teachers: true`` (mini): ``teachers`` (per task and seed: the online wide + deep
  teachers trained once, their trajectory recorded) -> ``distill`` (every add-on's student replays it);
* paired tasks, ``share_teachers: false`` (paper): ``distill`` alone (the teachers train inside it);
* unpaired tasks: ``teacher`` (per task: OMGD's CycleGAN teacher with val-scored snapshots) -> ``distill``.
"""

from __future__ import annotations

from pathlib import Path

from vem.methods import Method, Stage
from vem.schema import BOOL, FRACTION, NONNEG, POSITIVE, TEACHER, ConfigError, check_teacher, choice, integer, section


class OMGD(Method):
    id = "omgd"
    title = "OMGD"
    config_file = Path(__file__).with_name("config.yaml")
    distill_keys = ("lambda_ssim", "lambda_style", "lambda_feature", "lambda_cd")   # TV stays: a prior, no teacher
    schema = section({
        "student_ngf": integer(1), "wide_ngf": integer(1), "deep_ngf": integer(1), "share_teachers": BOOL,
        "teacher": TEACHER,
        "iters": integer(1), "batch": integer(1), "lr": POSITIVE, "decay_from": FRACTION, "n_dis": integer(1),
        "n_share": integer(0), "ndf": integer(1), "n_layers_d": integer(1),
        "lambda_ssim": NONNEG, "ssim_unit_range": BOOL, "lambda_style": NONNEG, "lambda_feature": NONNEG,
        "lambda_tv": NONNEG, "lambda_cd": NONNEG, "eval_every": integer(1), "init": choice("normal", "default"),
    }, required=False)

    def stages(self, cfg: dict) -> tuple[Stage, ...]:
        distill = "distill: the student (SSIM, style, feature, TV and channel distillation from the teachers)"
        if cfg["kind"] == "unpaired":
            return (Stage("teacher", "task", help="OMGD's CycleGAN teacher; its val-scored snapshots teach the "
                                                  "student in phases"),
                    Stage("distill", "run", ("teacher", "perceptual"), distill))
        if cfg[self.id]["share_teachers"]:
            return (Stage("teachers", "seed", help="the online wide + deep teachers, trained once per seed; "
                                                   "their outputs are recorded and replayed by every add-on"),
                    Stage("distill", "run", ("teachers", "perceptual"), distill))
        return (Stage("distill", "run", ("perceptual",), distill + "; the online teachers train inside it"),)

    def check(self, cfg: dict) -> None:
        o = cfg[self.id]
        if "teacher" in o:                          # the unpaired tasks' own CycleGAN teacher
            check_teacher(o["teacher"], "omgd.teacher", cfg["kind"])
        if "n_share" in o and o["n_share"] > o["n_layers_d"] + 2:
            raise ConfigError(f"omgd.n_share must be <= omgd.n_layers_d + 2 = {o['n_layers_d'] + 2} (the "
                              f"discriminator's stages; n_layers_d + 2 shares all of them), got {o['n_share']}")

    def run_stage(self, stage: str, ctx):
        from . import train

        return {"teacher": train.teacher, "teachers": train.teachers, "distill": train.distill}[stage](ctx)

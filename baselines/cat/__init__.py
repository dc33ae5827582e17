"""CAT: Compression and Teaching (Jin et al., CVPR 2021, "Teachers Do More Than Teach"), as in snap-research/CAT.

Unpaired (CycleGAN) tasks. Stages (training code in ``baselines.cat.train``):

* ``teacher`` (per task): CAT's inception-block generator trained with CycleGAN's losses; val-scored
  snapshots of G_A and the discriminator D_A that judges it; the best snapshot teaches;
* ``prune`` (per task): |gamma| bisection on one global threshold to a MAC budget (CAT's profiler
  convention) over the norm scales of the down-sampling path, the first norm of every inception branch and
  the up-sampling path; the widths found, both MAC counts and the bisection trace are its outputs;
* ``distill`` (per run): the pruned architecture, re-initialised N(0, 0.02) as CAT's code does, trained
  from the teacher: L1 to its output x lambda_recon + LSGAN x lambda_gan (D initialised from the teacher's
  D_A) + kernel alignment on the four CAT layers x lambda_distill, + the MI add-on.
"""

from __future__ import annotations

from pathlib import Path

from vem.methods import Method, Stage
from vem.schema import FRACTION, NONNEG, POSITIVE, TEACHER, ConfigError, check_teacher, choice, integer, number, section


class CAT(Method):
    id = "cat"
    title = "CAT"
    config_file = Path(__file__).with_name("config.yaml")
    distill_keys = ("lambda_recon", "lambda_distill")   # L1 to the teacher, kernel alignment (LSGAN stays)
    schema = section({
        "teacher": TEACHER,
        "target_macs": number(exclusive_minimum=0), "prune_cin_lb": integer(1),
        "iters": integer(1), "batch": integer(1), "lr": POSITIVE, "decay_from": FRACTION,
        "gan_mode": choice("lsgan", "hinge", "vanilla"), "lambda_recon": NONNEG, "lambda_gan": NONNEG,
        "lambda_distill": NONNEG, "eval_every": integer(1),
    })

    def stages(self, cfg: dict) -> tuple[Stage, ...]:
        return (Stage("teacher", "task", help="CAT's inception-block CycleGAN teacher (G_A and D_A snapshots)"),
                Stage("prune", "task", ("teacher",), "|gamma| bisection to the MAC budget: the student's widths"),
                Stage("distill", "run", ("teacher", "prune"), "the re-initialised pruned student: L1 + GAN + "
                                                              "kernel alignment from the teacher"))

    def check(self, cfg: dict) -> None:
        c = cfg["cat"]
        check_teacher(c["teacher"], "cat.teacher", cfg["kind"])
        if c["teacher"]["arch"] != "inception" or c["teacher"]["norm"] in ("none", "instance"):
            raise ConfigError(f"cat.teacher must be an inception generator with affine norms (CAT prunes by their "
                              f"scales), got arch {c['teacher']['arch']!r}, norm {c['teacher']['norm']!r}")
        from vem.data.tasks import get_task

        from .arithmetic import inception_macs, smallest_widths

        spec, t = get_task(cfg["task"]), c["teacher"]
        smallest = inception_macs(smallest_widths(t["n_blocks"], c["prune_cin_lb"]), spec.in_channels,
                                  spec.out_channels, spec.size, t["norm"])
        if smallest > c["target_macs"]:           # what the prune stage would find after the teacher trained
            raise ConfigError(f"cat.target_macs {c['target_macs']:.6g} is below the smallest network the threshold "
                              f"can reach ({smallest} MACs at {spec.size} px with cat.prune_cin_lb "
                              f"{c['prune_cin_lb']}); raise the target or lower the bound")
        if c["lambda_distill"] > 0 and c["batch"] < 2:
            raise ConfigError(f"cat.batch must be >= 2 when cat.lambda_distill > 0: kernel alignment over a batch "
                              f"of 1 is identically 1 (no signal), got batch {c['batch']}")

    def run_stage(self, stage: str, ctx):
        from . import train

        return {"teacher": train.teacher, "prune": train.prune, "distill": train.distill}[stage](ctx)

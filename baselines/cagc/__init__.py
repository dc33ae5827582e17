"""CAGC: Content-Aware GAN Compression (Liu et al., CVPR 2021; lychenyoko/content-aware-gan-compression),
on StyleGAN2 for the unconditional tasks whose Original is a StyleGAN2 (the paper's FFHQ rows).

Stages (training code in ``baselines.cagc.train``):

* ``prune`` (per task): content-aware channel scores of the Original's EMA generator - the gradient of a
  salt-and-pepper loss restricted to the content of interest (mini: the item's ink pixels; paper: a face
  parse), mean |dL/dW| of each modulated conv weight over (out, k, k) per input channel, summed over
  ``n_sample`` latents - then the ``prune_ratio`` lowest-scoring channels of every channel group
  (``net_shape``) removed; the kept channels' weights are inherited;
* ``distill`` (per run, with the add-on): the pruned generator trained against the Original's
  discriminator (copied) with StyleGAN2's losses and lazy regularisers, EMA and style mixing (the inject
  index shared with the frozen teacher), plus the content-aware distillation: L1 and LPIPS between the
  teacher's and the student's images, both masked by the teacher image's content (``lambda_l1`` x 3,
  ``lambda_lpips`` x 3), plus the MI add-on with t = G_t(z), s = G_s(z) for the same latents (each with its
  own per-pixel noise, as CAGC's ``randomize_noise``).
"""

from __future__ import annotations

from pathlib import Path

from vem.methods import Method, Stage
from vem.schema import FRACTION, NONNEG, POSITIVE, ConfigError, choice, integer, number, section


class CAGC(Method):
    id = "cagc"
    title = "CAGC"
    config_file = Path(__file__).with_name("config.yaml")
    distill_keys = ("lambda_l1", "lambda_lpips")       # StyleGAN2's own losses stay
    originals = ("stylegan2",)
    schema = section({
        "prune_ratio": number(minimum=0, exclusive_maximum=1), "n_sample": integer(1), "score_batch": integer(1),
        "noise_prob": number(exclusive_minimum=0, maximum=1), "content": choice("ink", "face"), "ink": integer(0),
        "iters": integer(1), "batch": integer(1), "lr": POSITIVE, "r1": NONNEG, "d_reg_every": integer(0),
        "g_reg_every": integer(0), "path_regularize": NONNEG, "path_batch_shrink": integer(1),
        "path_decay": number(exclusive_minimum=0, maximum=1), "mixing": FRACTION,
        "ema_decay": number(minimum=0, maximum=1), "lambda_l1": NONNEG, "lambda_lpips": NONNEG,
        "eval_every": integer(1),
    })

    def stages(self, cfg: dict) -> tuple[Stage, ...]:
        return (Stage("prune", "task", ("original", "face_parser"), "content-aware channel scores of the "
                      "Original, the lowest removed per channel group, weights inherited"),
                Stage("distill", "run", ("prune", "original", "perceptual", "lpips", "face_parser"),
                      "the pruned generator trained with StyleGAN2's losses, content-aware KD and the add-on"))

    def check(self, cfg: dict) -> None:
        c = cfg[self.id]
        if cfg["kind"] != "unconditional":
            raise ConfigError(f"{self.id} compresses StyleGAN2: it runs on unconditional tasks, not {cfg['task']}")
        arch = cfg["teachers"]["original"].get("arch")
        if arch != "stylegan2":
            raise ConfigError(f"{self.id} compresses StyleGAN2; the Original of {cfg['task']} is {arch}")
        if c["batch"] % min(c["batch"], 4):
            raise ConfigError(f"{self.id}.batch must be divisible by 4 (StyleGAN2's minibatch-stddev group), "
                              f"got {c['batch']}")
        if c["content"] == "face" and cfg["scale"] != "paper":
            raise ConfigError(f"{self.id}.content 'face' needs the paper scale's face parser; {cfg['task']} is a "
                              "mini task (content: ink)")
        if c["score_batch"] > c["n_sample"]:
            raise ConfigError(f"{self.id}.score_batch ({c['score_batch']}) exceeds n_sample ({c['n_sample']})")

    def run_stage(self, stage: str, ctx):
        from . import train

        return {"prune": train.prune, "distill": train.distill}[stage](ctx)

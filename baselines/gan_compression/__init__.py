"""GAN-Compression (Li et al., CVPR 2020 / T-PAMI; mit-han-lab/gan-compression), its *Fast* pipeline for
CycleGAN: a once-for-all supernet trained directly from the Original, an evolutionary search under a MAC
budget on held-out training images, then the chosen sub-network exported.

Unpaired (CycleGAN) tasks. Stages (training code in ``baselines.gan_compression.train``; all per run):

* ``supernet``: the width-sliceable mobile ResNet (``vem.models.slimmable``) at the widest configuration;
  every iteration samples one configuration uniformly and uses it for the D and the G update; losses
  L1 to the Original's output x lambda_recon + LSGAN x lambda_gan + MSE of the four stream maps through
  learnable 1x1 adaptors (sliced with the student's width) x lambda_distill, + the MI add-on on the
  sampled sub-network's output (the paper adds VEM to each method's distillation; for GAN-Compression
  that is where the student learns from the teacher);
* ``search``: evolutionary search on the val split (held-out training images, GAN-Compression's
  ``train2A``; the test split is never read) - population, parents, mutation, crossover, the MAC budget
  in GAN-Compression's profiler convention (``macs.py``) with redraw of over-budget samples, results
  cached per configuration; every evaluated configuration is in its table;
* ``export``: the chosen sub-network sliced into a standalone student (``slimmable_mobile_resnet`` at its
  configuration), optionally fine-tuned with the supernet's losses at that configuration (off by default,
  as GAN-Compression's README advises for horse2zebra).
"""

from __future__ import annotations

from pathlib import Path

from vem.methods import Method, Stage
from vem.schema import FRACTION, NONNEG, POSITIVE, ConfigError, choice, integer, number, section

GENES = {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "integer", "minimum": 1}}


class GANCompression(Method):
    id = "gan_compression"
    title = "GAN-Compression"
    config_file = Path(__file__).with_name("config.yaml")
    distill_keys = ("lambda_recon", "lambda_distill")   # L1 to the Original's output, feature MSE (LSGAN stays)
    keeps_snapshots = False     # the student is the searched sub-network, not a point of a training curve
    schema = section({
        "choices": {"type": "array", "minItems": 8, "maxItems": 8, "items": GENES,
                    "description": "the widths c0..c7 may take (GAN-Compression's config set, widest first)"},
        "n_blocks": integer(3), "iters": integer(1), "batch": integer(1), "lr": POSITIVE, "decay_from": FRACTION,
        "gan_mode": choice("lsgan", "hinge", "vanilla"), "lambda_recon": NONNEG, "lambda_gan": NONNEG,
        "lambda_distill": NONNEG, "ndf": integer(1), "n_layers_d": integer(1), "norm_d": choice("instance", "batch"),
        "eval_every": integer(1),
        "search": section({
            "budget_macs": number(exclusive_minimum=0), "population": integer(2), "generations": integer(1),
            "parent_ratio": FRACTION, "mutation_ratio": FRACTION, "mutate_prob": FRACTION,
            "weighted_sample": number(minimum=1), "max_redraws": integer(1)}),
        "finetune_iters": integer(0),
    })

    def stages(self, cfg: dict) -> tuple[Stage, ...]:
        export_needs = ("supernet", "search") + (("original",) if cfg[self.id]["finetune_iters"] else ())
        return (Stage("supernet", "run", ("original",), "the once-for-all supernet trained from the Original "
                                                        "(one sampled sub-network per iteration), with the add-on",
                      addon=True),
                Stage("search", "run", ("supernet",), "evolutionary search under the MAC budget on the val split"),
                Stage("export", "run", export_needs, "the chosen sub-network as a standalone student "
                                                     "(optionally fine-tuned)"))

    def check(self, cfg: dict) -> None:
        from vem.data.tasks import get_task
        from vem.metrics.slimmable import config_str, macs

        c, s = cfg[self.id], cfg[self.id]["search"]
        if round(s["parent_ratio"] * s["population"]) < 1:
            raise ConfigError(f"{self.id}.search.parent_ratio x population must keep >= 1 parent, got "
                              f"{s['parent_ratio']} x {s['population']}")
        spec = get_task(cfg["task"])
        smallest = [min(ch) for ch in c["choices"]]
        m = macs(smallest, c["n_blocks"], spec.in_channels, spec.out_channels, spec.size, norms=True)
        if m > s["budget_macs"]:
            raise ConfigError(f"{self.id}.search.budget_macs {s['budget_macs']:.6g} is below the smallest sub-network "
                              f"{config_str(smallest)} ({m} MACs at {spec.size} px): no configuration fits")

    def run_stage(self, stage: str, ctx):
        from . import train

        return {"supernet": train.supernet, "search": train.search, "export": train.export}[stage](ctx)

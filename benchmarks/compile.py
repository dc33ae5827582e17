"""Would ``torch.compile`` (the inductor's CPU code) make the embedded default's training steps faster?

    python benchmarks/compile.py [--reps 30] [--out benchmarks/compile.csv]

For the networks that dominate the default's student iterations (``benchmarks/README.md``, *Where a default
student iteration goes*): OMGD's paired U-Net and unpaired mobile ResNet students (ngf 8, batch 8), the mini
SAGAN generator (GCC's; ngf 16, batch 64, hinge-style loss on its output) and the mini StyleGAN2 discriminator
(CAGC's D step; channel_max 32, batch 16): one training step (forward, backward, Adam) eager vs the same
module under ``torch.compile`` (default mode), one thread, interleaved, median of ``reps`` after warm-up, and
the first compiled step's seconds (tracing + code generation + the C++ compiler, paid in every fresh process
unless the inductor's on-disk caches hold the graph). A compiled step is not bit-identical to the eager one.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.batching import interleaved  # noqa: E402


def networks():
    from vem.config import resolve
    from vem.models import build, from_config
    from vem.models.stylegan2 import StyleGAN2Discriminator

    out = {}
    for task, kind in (("fmnist_edges2shoes", "OMGD paired U-Net student"),
                       ("fmnist_sneaker2boot", "OMGD unpaired mobile ResNet student")):
        cfg = resolve(task, {}, method="omgd")
        base = cfg["teachers"]["original"] if "paired" in kind and "unpaired" not in kind else cfg["omgd"]["teacher"]
        out[kind] = (lambda base=base: build(from_config(base, 1, 1, ngf=8)), lambda: torch.randn(8, 1, 32, 32))
    sagan = resolve("fmnist_uncond", {})["teachers"]["original"]
    out["mini SAGAN generator"] = (lambda: build(from_config(sagan, 128, 1, image_size=32)),
                                   lambda: torch.randn(64, 128))
    out["mini StyleGAN2 discriminator"] = (lambda: StyleGAN2Discriminator(1, 32, 2, 32),
                                           lambda: torch.randn(16, 1, 32, 32))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = []
    for kind, (make, draw) in networks().items():
        eager = make()
        compiled = torch.compile(make())
        opts = {m: torch.optim.Adam(m.parameters(), 2e-4) for m in (eager, compiled)}
        x = draw()

        def step(m, opts=opts, x=x):
            opts[m].zero_grad(set_to_none=True)
            m(x).float().abs().mean().backward()
            opts[m].step()

        t0 = time.perf_counter()
        step(compiled)
        first = time.perf_counter() - t0
        variants = {"eager": functools.partial(step, eager), "compiled": functools.partial(step, compiled)}
        e, c = (r["median_ms"] for r in interleaved(kind, variants, a.reps))
        rows.append({"network": kind, "eager_ms": e, "compiled_ms": c, "speed_up": round(e / c, 2),
                     "first_compiled_step_s": round(first, 1)})
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    print(df.to_markdown(index=False))
    if a.out:
        df.to_csv(a.out, index=False)


if __name__ == "__main__":
    main()

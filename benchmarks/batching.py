"""Would training several seeds of a cell as one batched model make the embedded default faster?

    python benchmarks/batching.py [--reps 30] [--out benchmarks/batching.csv]

For the mini students of OMGD (paired U-Net ngf 8, unpaired mobile ResNet ngf 8): the time of one training
step (forward, backward, Adam) at batch 8, 16 and 24, and of three seeds' steps at batch 8 taken one after
the other vs the three stacked into one model with ``torch.func`` (``stack_module_state`` + ``vmap`` over
``functional_call``), and, for the mechanism a hand-written batched backbone would use, a plain stack of
3x3 convolutions at the students' widths (8-16-32-16-8 channels) three times vs once with three times the
channels and ``groups=3``. One thread, variants interleaved, median of ``reps``. The stacked variants only
time the forward/backward (per-seed BatchNorm statistics would need more care); if they are not faster, the
batched-seeds idea does not pay on this CPU.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import pandas as pd
import torch


def students():
    from vem.config import resolve
    from vem.models import build, from_config

    out = {}
    for task, kind in (("fmnist_edges2shoes", "paired U-Net"), ("fmnist_sneaker2boot", "unpaired mobile ResNet")):
        cfg = resolve(task, {}, method="omgd")
        base = cfg["teachers"]["original"] if kind.startswith("paired") else cfg["omgd"]["teacher"]
        out[kind] = lambda base=base: build(from_config(base, 1, 1, ngf=8))
    return out


def interleaved(what: str, variants: dict, reps: int) -> list[dict]:
    """Median wall time of each variant, the variants run in turn ``reps`` times after 3 warm-up rounds."""
    times = {k: [] for k in variants}
    for _ in range(3):
        for f in variants.values():
            f()
    for _ in range(reps):
        for k, f in variants.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return [{"student": what, "variant": k, "median_ms": round(1000 * statistics.median(v), 2)}
            for k, v in times.items()]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    from torch.func import functional_call, stack_module_state, vmap

    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = []
    widths = [1, 8, 16, 32, 16, 8, 1]

    def convs(k=1):
        layers = []
        for a_, b_ in zip(widths[:-1], widths[1:]):
            layers += [torch.nn.Conv2d(a_ * k, b_ * k, 3, padding=1, groups=k), torch.nn.ReLU()]
        return torch.nn.Sequential(*layers[:-1])

    plain, grouped = [convs() for _ in range(3)], convs(3)
    x3c = torch.randn(3, 8, 1, 32, 32)
    conv_variants = {
        "3 conv stacks x batch 8, one after another (fwd+bwd)":
            lambda: [m(x3c[i]).square().mean().backward() for i, m in enumerate(plain)],
        "3 conv stacks x batch 8, one grouped conv stack (fwd+bwd)":
            lambda: grouped(x3c.permute(1, 0, 2, 3, 4).reshape(8, 3, 32, 32)).square().mean().backward()}
    rows += interleaved("conv stack", conv_variants, a.reps)
    for kind, make in students().items():
        g = make()
        opt = torch.optim.Adam(g.parameters())
        three = [make() for _ in range(3)]
        params, bufs = stack_module_state(three)
        meta = copy.deepcopy(three[0]).to("meta")
        x3 = torch.randn(3, 8, 1, 32, 32)

        def step(b, g=g, opt=opt):
            opt.zero_grad(set_to_none=True)
            g(torch.randn(b, 1, 32, 32)).square().mean().backward()
            opt.step()

        def seq(three=three, x3=x3):
            for i, m in enumerate(three):
                m(x3[i]).square().mean().backward()

        def stacked(params=params, bufs=bufs, meta=meta, x3=x3):
            out = vmap(lambda p, b, x: functional_call(meta, (p, b), (x,)), randomness="different")(params, bufs, x3)
            out.square().mean().backward()

        variants = {"batch 8": lambda: step(8), "batch 16": lambda: step(16), "batch 24": lambda: step(24),
                    "3 seeds x batch 8, one after another (fwd+bwd)": seq,
                    "3 seeds x batch 8, torch.func stacked (fwd+bwd)": stacked}
        rows += interleaved(kind, variants, a.reps)
    df = pd.DataFrame(rows)
    print(df.to_markdown(index=False))
    if a.out:
        df.to_csv(a.out, index=False)


if __name__ == "__main__":
    main()

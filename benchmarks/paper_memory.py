"""How much memory does a paper-scale CycleGAN teacher iteration need, and does it fit one GPU?

    python benchmarks/paper_memory.py [--out benchmarks/paper_memory.csv]

Runs one iteration of the real recipe (``vem.train.gan.train_teacher``) of each unpaired paper teacher on the
CPU at 256 px, on random images (memory does not depend on their values), at batch 1 and 2 and at batch 2 in
micro-batches of 1, and records the bytes autograd saves for the backward of each graph (every storage packed
by ``torch.autograd.graph.saved_tensors_hooks`` between two ``backward`` calls, each storage once, the
parameters left out). The largest graph's saved bytes grow linearly with the batch; at the preset's batch they
are a lower bound on a GPU's peak (which adds the weights, their gradients and Adam's two moments - counted
here -, cuDNN's workspaces and the allocator's fragmentation). CAT's teacher is trained at batch 32 over 8
GPUs (4 each) by CAT's script; ``micro_batch`` (gradient accumulation, ``vem.train.gan``) lets one GPU take it.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch


class _StandIn:
    """A paper task's training images at their size (random: the memory does not depend on the values)."""

    def __init__(self, spec, n: int = 4):
        self.spec = spec
        g = torch.Generator().manual_seed(0)
        self.x = {s: torch.rand(n, spec.in_channels, spec.size, spec.size, generator=g) * 2 - 1 for s in "AB"}

    def tensor(self, split, side):
        return self.x[side]

    def batch_indices(self, gen, batch, split="train", side="A"):
        return torch.randint(0, len(self.x[side]), (batch,), generator=gen, device="cpu")


class _NoScore:
    def __call__(self, G):
        return 0.0

    def better(self, a, b):
        return False


class SavedBytes:
    """The bytes autograd saves for backward in each graph built inside the block: each storage once, the
    parameters (leaves that require grad) apart."""

    def __init__(self):
        self.graphs, self.live, self.params = [], {}, {}

    def _pack(self, t):
        s = t.untyped_storage()
        (self.params if t.is_leaf and t.requires_grad else self.live)[s.data_ptr()] = s.nbytes()
        return t

    def _backward(self, *args, **kwargs):
        self.graphs.append(sum(self.live.values()))
        self.live.clear()
        return self._orig(*args, **kwargs)

    def __enter__(self):
        self._orig, torch.autograd.backward = torch.autograd.backward, self._backward
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)
        torch.autograd.backward = self._orig


def one_iteration(recipe: dict, spec, batch: int, micro: int | None) -> dict:
    from vem.train import train_teacher

    t = {**recipe, "iters": 1, "batch": batch, "micro_batch": micro, "snapshot_every": 10**9}
    t0 = time.perf_counter()
    with SavedBytes() as saved:
        train_teacher(t, _StandIn(spec), 0, _NoScore)
    param_bytes = sum(saved.params.values())
    return {"batch": batch, "micro_batch": micro or batch, "graphs": len(saved.graphs),
            "largest_graph_GiB": max(saved.graphs) / 2**30, "params_M": param_bytes / 4 / 1e6,
            "weights_grads_adam_GiB": 4 * param_bytes / 2**30, "cpu_seconds": round(time.perf_counter() - t0, 1)}


def teachers() -> list[tuple[str, str, dict]]:
    from vem.config import resolve

    out = []
    for task in ("horse2zebra",):
        out.append((task, "cat.teacher", resolve(task, {}, method="cat")["cat"]["teacher"]))
        out.append((task, "omgd.teacher", resolve(task, {}, method="omgd")["omgd"]["teacher"]))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    from vem.data.tasks import get_task

    rows = []
    for task, where, recipe in teachers():
        spec = get_task(task)
        runs = [one_iteration(recipe, spec, b, m) for b, m in ((1, None), (2, None), (2, 1))]
        per_image = runs[1]["largest_graph_GiB"] - runs[0]["largest_graph_GiB"]
        fixed = runs[0]["largest_graph_GiB"] - per_image
        preset_b, preset_m = recipe["batch"], recipe.get("micro_batch") or recipe["batch"]
        for r in runs:
            rows.append({"task": task, "recipe": where, "arch": recipe["arch"], "ngf": recipe["ngf"], **r})
        rows.append({"task": task, "recipe": where, "arch": recipe["arch"], "ngf": recipe["ngf"],
                     "batch": preset_b, "micro_batch": preset_m, "graphs": None,
                     "largest_graph_GiB": fixed + per_image * preset_m, "params_M": runs[0]["params_M"],
                     "weights_grads_adam_GiB": runs[0]["weights_grads_adam_GiB"], "cpu_seconds": None,
                     "note": f"preset (extrapolated: {per_image:.3f} GiB per image in a chunk)"})
        if preset_m != preset_b:
            rows.append({**rows[-1], "micro_batch": preset_b, "largest_graph_GiB": fixed + per_image * preset_b,
                         "note": "preset batch without micro-batches (extrapolated)"})
    df = pd.DataFrame(rows).round({"largest_graph_GiB": 3, "params_M": 3, "weights_grads_adam_GiB": 3})
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if a.out:
        df.to_csv(a.out, index=False)


if __name__ == "__main__":
    main()

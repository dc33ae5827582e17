"""How much memory do CAT's paper-scale training iterations need, and do they fit one GPU?

    python benchmarks/paper_memory.py [--out benchmarks/paper_memory.csv] [--addons none,vid,crd,vem]

CAT's script trains its teacher at batch 32 over 8 GPUs and its student at batch 80. This runs one iteration
of the real code on the CPU at 256 px, on random images (memory does not depend on their values): the
unpaired paper teachers' CycleGAN recipe (``vem.train.gan.train_teacher``: CAT's and OMGD's horse2zebra
teachers) at batch 1, 2 and 2 in micro-batches of 1, and CAT's ``distill`` stage with each add-on at batch 2
and 4 (a student pruned to the paper's 2.6 G MACs by CAT's own ``prune`` stage, from a one-iteration teacher
with its norm scales drawn at random: its widths are not a trained teacher's, its size is the budget's).
What is measured is the peak of the bytes autograd holds for backward: every storage a
``saved_tensors_hooks`` pack hook sees, counted once while it is alive (``StorageWeakRef``), the parameters
(``nn.Parameter``) apart - so graphs alive at the same time (CAT's student graph during its D step and the
add-on's fit) add up. That grows linearly with the batch and is a lower bound on a GPU's peak, which adds
the weights, their gradients and Adam's two moments (counted here), cuDNN's workspaces, the allocator's
fragmentation and the transient gradients.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import torch
from torch.multiprocessing.reductions import StorageWeakRef


class _StandIn:
    """A paper task's training images at their size (random: the memory does not depend on the values); ``n``
    reports the task's training count (CRD's memory bank is sized by it), 4 images are stored."""

    def __init__(self, spec, stored: int = 4):
        self.spec = spec
        g = torch.Generator().manual_seed(0)
        self.x = {s: torch.rand(stored, spec.in_channels, spec.size, spec.size, generator=g) * 2 - 1 for s in "AB"}

    def tensor(self, split, side):
        return self.x[side]

    def n(self, split, side="A"):
        return self.spec.train_inputs

    def batch_indices(self, gen, batch, split="train", side="A"):
        return torch.randint(0, len(self.x[side]), (batch,), generator=gen, device="cpu")


class _NoScore:
    def __call__(self, G):
        return 0.0

    def better(self, a, b):
        return False


class SavedBytes:
    """The peak of the bytes held for backward inside the block: each storage a pack hook sees, once, while it
    is alive; the parameters apart. Sampled at every pack and every backward."""

    def __init__(self):
        self.live, self.params, self.peak, self.backwards = {}, {}, 0, 0

    def _sample(self):
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        self.peak = max(self.peak, sum(n for _, n in self.live.values()))

    def _pack(self, t):
        s = t.untyped_storage()
        if isinstance(t._base if t._base is not None else t, torch.nn.Parameter):     # a parameter or its view
            self.params[s.data_ptr()] = s.nbytes()
        else:       # a new storage, or a freed one's address given to another
            seen = self.live.get(s.data_ptr())
            if seen is None or seen[0].expired():
                self.live[s.data_ptr()] = (StorageWeakRef(s), s.nbytes())
                self._sample()
        return t

    def _backward(self, *args, **kwargs):
        self._sample()
        self.backwards += 1
        return self._orig(*args, **kwargs)

    def __enter__(self):
        self._orig, torch.autograd.backward = torch.autograd.backward, self._backward
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)
        torch.autograd.backward = self._orig


def _row(saved: SavedBytes, t0: float, **kw) -> dict:
    p = sum(saved.params.values())
    return {**kw, "backwards": saved.backwards, "peak_saved_GiB": round(saved.peak / 2**30, 3),
            "params_M": round(p / 4 / 1e6, 3), "weights_grads_adam_GiB": round(4 * p / 2**30, 3),
            "cpu_seconds": round(time.perf_counter() - t0, 1)}


def teacher_iteration(recipe: dict, spec, batch: int, micro: int | None, keep_d: bool = False):
    from vem.train import train_teacher

    t = {**recipe, "iters": 1, "batch": batch, "micro_batch": micro, "snapshot_every": 10**9}
    t0 = time.perf_counter()
    with SavedBytes() as saved:
        ck, _ = train_teacher(t, _StandIn(spec), 0, _NoScore, keep_discriminator=keep_d)
    return ck, _row(saved, t0, batch=batch, micro_batch=micro or batch)


def cat_student_iteration(cfg: dict, spec, inputs: dict, addon: str, batch: int) -> dict:
    from baselines.cat import train as cat
    from vem.methods import get_method
    from vem.methods.context import StageContext

    cfg = {**cfg, "cat": {**cfg["cat"], "iters": 1, "batch": batch, "eval_every": 10**9}}
    ctx = StageContext(cfg=cfg, method="cat", stage=get_method("cat").stage(cfg, "distill"), data=_StandIn(spec),
                       seed=0, inputs=inputs, evalnet=Path("unused"), addon=addon)
    ctx.scorer = _NoScore                      # no val scoring: not the memory asked about
    t0 = time.perf_counter()
    with SavedBytes() as saved:
        cat.distill(ctx)
    return _row(saved, t0, batch=batch, micro_batch=batch)


def _spread_norm_scales(teacher_ck: dict) -> None:
    """An untrained teacher's norm scales are all ~1, and a threshold on them keeps nearly every channel or
    nearly none: draw them from U(0.05, 1) (seeded), so that CAT's bisection finds a student of the budget's size."""
    from vem.models import load_generator
    from vem.train import best_snapshot

    snap = best_snapshot(teacher_ck)
    G = load_generator(teacher_ck, snap["state_dict"])
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, torch.nn.InstanceNorm2d) and m.affine:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.95 + 0.05)
    snap["state_dict"] = teacher_ck["state_dict"] = G.state_dict()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--addons", default="none,vid,crd,vem")
    a = ap.parse_args(argv)
    from baselines.cat import train as cat
    from vem.config import resolve
    from vem.data.tasks import get_task

    task = "horse2zebra"
    spec = get_task(task)
    cat_cfg = resolve(task, {}, method="cat")
    rows = []

    def extrapolate(runs: list[dict], what: str, batch: int, chunk: int, note: str) -> dict:
        per = (runs[1]["peak_saved_GiB"] - runs[0]["peak_saved_GiB"]) / (runs[1]["batch"] - runs[0]["batch"])
        fixed = runs[0]["peak_saved_GiB"] - per * runs[0]["batch"]
        return {**runs[0], "what": what, "batch": batch, "micro_batch": chunk, "backwards": None,
                "peak_saved_GiB": round(fixed + per * chunk, 3), "cpu_seconds": None,
                "note": f"{note} (extrapolated: {per:.3f} GiB per image)"}

    for where, recipe in (("cat.teacher", cat_cfg["cat"]["teacher"]),
                          ("omgd.teacher", resolve(task, {}, method="omgd")["omgd"]["teacher"])):
        what = f"{where} ({recipe['arch']} ngf {recipe['ngf']})"
        runs = [{"what": what, **teacher_iteration(recipe, spec, b, m)[1]} for b, m in ((1, None), (2, None), (2, 1))]
        rows += runs
        b, m = recipe["batch"], recipe.get("micro_batch") or recipe["batch"]
        rows.append(extrapolate(runs, what, b, m, "the preset"))
        if m != b:
            rows.append(extrapolate(runs, what, b, b, "the preset's batch at once"))

    with tempfile.TemporaryDirectory() as d:        # CAT's student: its own teacher and prune stages first
        teacher_ck, _ = teacher_iteration(cat_cfg["cat"]["teacher"], spec, 1, None, keep_d=True)
        _spread_norm_scales(teacher_ck)
        torch.save(teacher_ck, Path(d) / "teacher.pt")
        prune_ctx = SimpleNamespace(section=cat_cfg["cat"], spec=spec, load=lambda name: teacher_ck)
        pruned, _ = cat.prune(prune_ctx)
        torch.save(pruned, Path(d) / "prune.pt")
        inputs = {"teacher": Path(d) / "teacher.pt", "prune": Path(d) / "prune.pt"}
        for addon in a.addons.split(","):
            what = f"cat.distill + {addon} (student {pruned['macs_cat'] / 1e9:.2f} G MACs, CAT's convention)"
            runs = [{"what": what, **cat_student_iteration(cat_cfg, spec, inputs, addon, b)} for b in (2, 4)]
            rows += runs
            rows.append(extrapolate(runs, what, cat_cfg["cat"]["batch"], cat_cfg["cat"]["batch"], "the preset"))
    df = pd.DataFrame(rows)
    df.insert(0, "task", task)
    print(df.to_string(index=False))
    if a.out:
        df.to_csv(a.out, index=False)


if __name__ == "__main__":
    main()

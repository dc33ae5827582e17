"""The one resumable training loop: teachers, evaluation-free recorders and every method stage use it.

A stage builds its models, optimisers and schedulers, names every stateful object in ``state`` and
hands the loop a ``step(it) -> stats`` function. The loop then

* resumes from the stage's resume file when there is one (``vem.resume.Resumer``): every object in
  ``state``, every RNG stream (and the batch generator ``rng``), the curve, the pending statistics and the
  snapshots are restored, so the run continues exactly;
* runs iterations ``start + 1 .. total`` with a progress bar on stderr (the rule's log);
* averages the step statistics between curve points, and at every ``eval_every``-th and at the last
  iteration appends a curve row ``{"iter", **score(), "seconds", **mean statistics}`` (``score``: the
  held-out val metric(s)) and, with ``snapshot``, keeps ``{"iter", **scores, **snapshot()}`` (weights to
  select from later);
* saves the resume file periodically (``--checkpoint-every``, or the loop's own ``save_every`` when its
  iterations are long, e.g. the generations of a search) and on SIGTERM/SIGUSR1 (``Resumer.tick``).

Saving consumes no randomness; the loop itself draws none.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch

from ..resume import load_objects_state, objects_state, rng_state, set_rng_state
from ..utils import progress


def check_finite(loss: torch.Tensor, what: str, it: int) -> None:
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite {what} at iteration {it}: {loss.item()}; the run is stopped "
                                 "and no metrics are written")


@dataclasses.dataclass
class LoopResult:
    curve: list[dict]
    snapshots: list[dict]
    resumed_from: int


class Loop:
    def __init__(self, desc: str, total: int, state: dict, rng: torch.Generator | None = None, *,
                 resumer=None, eval_every: int = 0, score: Callable[[], dict] | None = None,
                 snapshot: Callable[[], dict] | None = None, save_every: int = 0):
        if total < 1:
            raise ValueError(f"{desc}: the number of iterations must be >= 1, got {total}")
        self.desc, self.total, self.state, self.rng = desc, int(total), state, rng
        self.resumer, self.eval_every, self.score, self.snapshot = resumer, int(eval_every), score, snapshot
        self.save_every = int(save_every)
        self.curve: list[dict] = []
        self.snapshots: list[dict] = []
        self._agg: dict[str, tuple[float, int]] = {}

    # ---- resume state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return dict(objects_state(self.state), rng=rng_state(self.rng), curve=list(self.curve),
                    agg={k: list(v) for k, v in self._agg.items()}, snapshots=list(self.snapshots))

    def load_state_dict(self, st: dict) -> None:
        load_objects_state(self.state, st)
        set_rng_state(st["rng"], self.rng)
        self.curve, self.snapshots = list(st["curve"]), list(st["snapshots"])
        self._agg = {k: tuple(v) for k, v in st["agg"].items()}

    # ---- the loop --------------------------------------------------------------------------------------
    def _point(self, it: int, t0: float) -> None:
        scores = self.score() if self.score else {}
        row = {"iter": it, **scores, "seconds": time.time() - t0}
        row.update({k: v / n for k, (v, n) in self._agg.items()})
        self._agg.clear()
        self.curve.append(row)
        if self.snapshot is not None:
            self.snapshots.append({"iter": it, **scores, **self.snapshot()})

    def run(self, step: Callable[[int], dict | None]) -> LoopResult:
        start = 0
        saved = self.resumer.load() if self.resumer is not None else None
        if saved is not None:
            self.load_state_dict(saved)
            start = int(saved["iter"])
        t0 = time.time() - (self.curve[-1]["seconds"] if self.curve else 0.0)
        for it in progress(range(start + 1, self.total + 1), self.desc, initial=start, total=self.total):
            for k, v in (step(it) or {}).items():
                s, n = self._agg.get(k, (0.0, 0))
                self._agg[k] = (s + float(v), n + 1)
            if (self.eval_every and it % self.eval_every == 0) or it == self.total:
                self._point(it, t0)
            if self.resumer is not None:
                self.resumer.tick(it, self.state_dict, self.save_every or None)
        return LoopResult(self.curve, self.snapshots, start)


def snapshot_weights(**modules) -> Callable[[], dict]:
    """``snapshot=`` for :class:`Loop`: copies of the modules' state dicts under the given names."""
    return lambda: {name: {k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()}
                    for name, m in modules.items()}   # host memory: a GPU run keeps tens of snapshots

"""Timing helpers for the benchmarks: a stage context whose loop times every iteration (no val scoring)."""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from vem.methods.context import StageContext


def _sync():
    """Wait for the GPU's queued work (a CUDA iteration's time is its kernels', not their launches')."""
    if torch.get_default_device().type == "cuda":
        torch.cuda.synchronize()


class _NoScore:
    """Stands in for the val scorer: benchmarks time training, not evaluation."""

    def __call__(self, G) -> float:
        return 0.0

    def better(self, a, b) -> bool:
        return a < b


@dataclasses.dataclass
class TimedContext(StageContext):
    """``run_stage`` with this context records the seconds of every iteration (``step_seconds``) and of the
    add-on's own work per iteration (``addon_seconds``: fit_step + loss)."""

    step_seconds: list = dataclasses.field(default_factory=list)
    addon_seconds: list = dataclasses.field(default_factory=list)

    def scorer(self):
        return _NoScore()

    def loop(self, desc, total, state, rng, **kw):
        loop = super().loop(desc, total, state, rng, **dict(kw, score=None, snapshot=None))
        run = loop.run

        def timed_run(step):
            def timed(it):
                _sync()
                t0 = time.perf_counter()
                out = step(it)
                _sync()
                self.step_seconds.append(time.perf_counter() - t0)
                return out
            return run(timed)

        loop.run = timed_run
        return loop

    def build_addon(self, *a, **kw):
        addon = super().build_addon(*a, **kw)
        fit, loss = addon.fit_step, addon.loss

        def timed_fit(*x, **k):
            _sync()
            t0 = time.perf_counter()
            out = fit(*x, **k)
            _sync()
            self.addon_seconds.append(time.perf_counter() - t0)
            return out

        def timed_loss(*x, **k):
            _sync()
            t0 = time.perf_counter()
            out = loss(*x, **k)
            _sync()
            self.addon_seconds[-1] += time.perf_counter() - t0
            return out

        addon.fit_step, addon.loss = timed_fit, timed_loss
        return addon


def median_after_warmup(values, warmup: int = 1) -> float:
    return statistics.median(values[warmup:]) if len(values) > warmup else float("nan")

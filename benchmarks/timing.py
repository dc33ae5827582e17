"""Timing helpers for the benchmarks: a stage context whose loop times every iteration (no val scoring)."""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from vem.methods.context import StageContext


def _on_gpu() -> bool:
    return torch.get_default_device().type == "cuda"


def _sync():
    """Wait for the GPU's queued work (a CUDA iteration's time is its kernels', not their launches')."""
    if _on_gpu():
        torch.cuda.synchronize()


class _Spans:
    """The time of some calls inside one iteration. On the CPU their wall seconds; on a GPU the time between CUDA
    events recorded around them, read after the iteration's closing synchronisation - no synchronisation inside
    the iteration, which would drain the GPU's queue and slow the very iteration being timed."""

    def __init__(self):
        self.seconds, self.events, self.called = 0.0, [], False

    def time(self, f, *a, **k):
        self.called = True
        if _on_gpu():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = f(*a, **k)
            end.record()
            self.events.append((start, end))
        else:
            t0 = time.perf_counter()
            out = f(*a, **k)
            self.seconds += time.perf_counter() - t0
        return out

    def take(self) -> float | None:
        """The iteration's total (None: no call), after the iteration's synchronisation; starts afresh."""
        total = self.seconds + sum(s.elapsed_time(e) for s, e in self.events) / 1000 if self.called else None
        self.seconds, self.events, self.called = 0.0, [], False
        return total


class _NoScore:
    """Stands in for the val scorer: benchmarks time training, not evaluation."""

    def __call__(self, G) -> float:
        return 0.0

    def better(self, a, b) -> bool:
        return a < b


@dataclasses.dataclass
class TimedContext(StageContext):
    """``run_stage`` with this context records the seconds of every iteration (``step_seconds``), of the add-on's
    own work per iteration (``addon_seconds``: fit_step + loss) and of any other calls wrapped with ``timed``
    (``span_seconds[name]``)."""

    step_seconds: list = dataclasses.field(default_factory=list)
    span_seconds: dict = dataclasses.field(default_factory=dict)
    _spans: dict = dataclasses.field(default_factory=dict)

    @property
    def addon_seconds(self) -> list:
        return self.span_seconds.get("addon", [])

    def timed(self, name: str, f):
        """``f`` wrapped: the time of its calls within an iteration lands in ``span_seconds[name]``."""
        spans = self._spans.setdefault(name, _Spans())
        return lambda *a, **k: spans.time(f, *a, **k)

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
                for name, spans in self._spans.items():
                    if (seconds := spans.take()) is not None:
                        self.span_seconds.setdefault(name, []).append(seconds)
                return out
            return run(timed)

        loop.run = timed_run
        return loop

    def build_addon(self, *a, **kw):
        addon = super().build_addon(*a, **kw)
        addon.fit_step, addon.loss = self.timed("addon", addon.fit_step), self.timed("addon", addon.loss)
        return addon


def median_after_warmup(values, warmup: int = 1) -> float:
    return statistics.median(values[warmup:]) if len(values) > warmup else float("nan")

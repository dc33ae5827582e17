"""Resumable training: periodic and on-signal checkpoints that a re-run of the same job continues from.

A training loop owns a :class:`Resumer` and calls ``tick(it, state_fn)`` after every completed iteration.
It writes ``state_fn()`` (weights, optimisers, schedulers, add-on/EBM state, every RNG stream, the curve
so far) atomically to ``<out>.resume`` every ``every`` iterations, and also

- on ``SIGUSR1`` (SLURM's ``--signal=USR1@T`` warning before the time limit): at the end of the current
  iteration, then training goes on;
- on ``SIGTERM`` (pre-emption, ``scancel``): at the end of the current iteration, then the process
  exits with status 143 so the scheduler sees an interrupted job.

A re-run whose run identity (config hash, seed, add-on, ...) matches the file resumes from it; a file
from another configuration is ignored and replaced (one warning line). The file is deleted once the
job's outputs are written, so a finished job never leaves one behind. ``kill -9`` loses at most
``every`` iterations. Saving consumes no randomness, so a resumed run ends with the same numbers as an
uninterrupted one (tested).
"""

from __future__ import annotations

import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .utils import atomic_save_torch

RESUME_SUFFIX = ".resume"
_SIGNALS = {signal.SIGTERM: "SIGTERM", signal.SIGUSR1: "SIGUSR1"}


def py_random_state(rng=random) -> dict:
    """A ``random.Random``'s (default: the module's) state as ints/lists (weights-only loadable)."""
    version, internal, gauss_next = rng.getstate()
    return {"version": version, "internal": list(internal), "gauss_next": gauss_next}


def set_py_random_state(st: dict, rng=random) -> None:
    rng.setstate((st["version"], tuple(st["internal"]), st["gauss_next"]))


def rng_state(gen: torch.Generator | None = None) -> dict:
    """Every RNG stream as tensors/ints only, so resume files load with ``weights_only=True``."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    st = {"torch": torch.get_rng_state(),
          "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                    "has_gauss": int(has_gauss), "gauss": float(gauss)},
          "python": py_random_state()}
    if torch.cuda.is_initialized():   # a GPU run's noise, init, Langevin, CRD
        st["cuda"] = torch.cuda.get_rng_state_all()
    if gen is not None:
        st["gen"] = gen.get_state()
    return st


def set_rng_state(st: dict, gen: torch.Generator | None = None) -> None:
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    set_py_random_state(st["python"])
    if "cuda" in st:
        if not torch.cuda.is_available() or torch.cuda.device_count() < len(st["cuda"]):
            raise ValueError(f"the resume state holds {len(st['cuda'])} CUDA RNG stream(s), but "
                             f"{torch.cuda.device_count() if torch.cuda.is_available() else 0} device(s) are visible")
        torch.cuda.set_rng_state_all(st["cuda"])
    if gen is not None and "gen" in st:
        gen.set_state(st["gen"])


def objects_state(objs: dict) -> dict:
    """``{name: obj.state_dict()}`` for named modules, optimisers, schedulers, pools."""
    return {k: o.state_dict() for k, o in objs.items()}


def load_objects_state(objs: dict, st: dict) -> None:
    for k, o in objs.items():
        o.load_state_dict(st[k])


class Resumer:
    def __init__(self, out, identity: str, every: int = 0, log=None):
        if every < 0:
            raise ValueError(f"--checkpoint-every must be >= 0, got {every}")
        self.path = Path(str(out) + RESUME_SUFFIX)
        self.identity, self.every = identity, int(every)
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._pending: str | None = None
        self.saves, self.save_seconds = 0, 0.0
        self._old = {}
        for sig in _SIGNALS:
            try:
                self._old[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread: signals stay with their owner
                pass

    def _on_signal(self, signum, frame):
        self._pending = _SIGNALS.get(signum, str(signum))

    def load(self) -> dict | None:
        """The saved state of this run, or None (no file, unreadable file, or another run's file)."""
        if not self.path.is_file():
            return None
        try:
            st = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - a half-readable resume file is simply not used
            self.log(f"resume file {self.path} is unreadable ({type(e).__name__}); starting from scratch")
            return None
        if not isinstance(st, dict) or st.get("identity") != self.identity:
            self.log(f"resume file {self.path} belongs to another configuration; starting from scratch")
            return None
        self.log(f"resuming from {self.path} at iteration {st['iter']}")
        return st

    def tick(self, it: int, state_fn, every: int | None = None) -> None:
        """At the end of iteration ``it``: save on a signal, and every ``self.every`` iterations (``every``: a
        cadence of this loop's own, e.g. 1 for a search whose iterations are whole generations; none when
        checkpointing is off)."""
        sig, self._pending = self._pending, None
        cadence = (every or self.every) if self.every else 0
        if sig or (cadence and it % cadence == 0):
            self.save(it, state_fn)
        if sig == "SIGTERM":
            self.log(f"SIGTERM: state saved at iteration {it} to {self.path}; exiting (re-run to resume)")
            self.restore_signals()
            sys.exit(143)
        if sig == "SIGUSR1":
            self.log(f"SIGUSR1: state saved at iteration {it} to {self.path}")

    def save(self, it: int, state_fn) -> None:
        t0 = time.perf_counter()
        st = state_fn()
        st.update(identity=self.identity, iter=it)
        atomic_save_torch(self.path, st)
        self.saves += 1
        self.save_seconds += time.perf_counter() - t0

    def finish(self) -> None:
        """The job's outputs are written: the resume file has served its purpose."""
        self.path.unlink(missing_ok=True)
        self.restore_signals()

    def restore_signals(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors gain nothing from threads, and with 2 intra-op threads on a 2-core machine that
    is also running other work, OpenMP spin-waiting made single tests 30x slower (1.6 s -> 50 s)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@functools.cache
def _no_scontrol_dir() -> str:
    """A PATH entry whose `scontrol` fails at once. snakemake-executor-plugin-slurm runs `scontrol show config`
    whenever Snakemake starts; where the host's SLURM client points at a controller that is down, that waits
    ~9 s per Snakemake process. No test here talks to SLURM (scripts/slurm-smoke.sh does, outside pytest)."""
    d = Path(tempfile.mkdtemp(prefix="vem-test-bin-"))
    atexit.register(shutil.rmtree, d, True)
    (d / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (d / "scontrol").chmod(0o755)
    return str(d)


def run_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PATH"] = _no_scontrol_dir() + os.pathsep + env.get("PATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_vem(cmd) -> subprocess.CompletedProcess:
    """``python -m vem ...`` (``cmd`` with or without the leading ``[sys.executable, "-m", "vem"]``) run in this
    process, as ``subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)`` would report it: for a test
    that needs no process of its own (a process costs ~2-3 s of start-up: torch, and dynamo on the first
    optimiser). The process-wide state a command sets is put back: torch's threads, its deterministic flags and
    the RNGs of torch, numpy and ``random``. A kill -9 needs a real process: ``interrupt`` starts one."""
    import contextlib
    import io
    import random

    import numpy as np
    import torch

    from vem.cli import main

    args = [str(a) for a in cmd]
    if args[1:3] == ["-m", "vem"]:
        args = args[3:]
    threads, rngs = torch.get_num_threads(), (torch.get_rng_state(), np.random.get_state(), random.getstate())
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    fill = torch.utils.deterministic.fill_uninitialized_memory
    out, err, cwd = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(ROOT)                  # as the subprocess calls run (contextlib.chdir needs Python 3.11)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as e:     # argparse's --help
                code = e.code if isinstance(e.code, int) else 0
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
        torch._C._set_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        torch.utils.deterministic.fill_uninitialized_memory = fill
        torch.set_rng_state(rngs[0])
        np.random.set_state(rngs[1])
        random.setstate(rngs[2])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def fmnist_available() -> bool:
    from vem.data import fmnist

    try:
        fmnist.find_file("train_images", ROOT / "resources" / "fmnist")
        return True
    except fmnist.DataMissingError:
        return False


@pytest.fixture(scope="session")
def edges_assets(tmp_path_factory):
    """A prepared fmnist_edges2shoes npz (d.npz) and barely trained feature/perceptual nets (read-only: built
    once for all pytest-xdist workers, ~18 s, in the folder their temporary folders share)."""
    from filelock import FileLock

    from vem.config import resolve
    from vem.evalnets import train_classifier
    from vem.utils import atomic_save_torch

    if not fmnist_available():
        pytest.skip("Fashion-MNIST is not installed (make setup installs it)")
    base = tmp_path_factory.getbasetemp()
    d = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "edges_assets"
    with FileLock(f"{d}.lock"):
        if not (d / ".complete").exists():
            d.mkdir(exist_ok=True)
            task = "fmnist_edges2shoes"
            save_task_data(task, d)
            cfg = resolve(task, {})
            for kind in ("feature", "perceptual"):
                ck, _ = train_classifier(kind, dict(cfg["evalnets"][kind], iters=3), 0, ROOT / "resources" / "fmnist")
                atomic_save_torch(d / f"{kind}.pt", ck)
            (d / ".complete").touch()
    return d


def save_task_data(task: str, d: Path) -> Path:
    """A mini task's prepared data ``d / "d.npz"``, built from resources/fmnist as ``prepare-data`` does."""
    import numpy as np

    from vem.data import fmnist
    from vem.data.tasks import build_task
    from vem.utils import atomic_save_npz

    atomic_save_npz(d / "d.npz", **build_task(task, fmnist.load(ROOT / "resources" / "fmnist"), seed=0),
                    task=np.array(task))
    return d / "d.npz"


def stage_context(method, stage, task, data_path, overrides, seed, inputs, evalnet, addon="none", lambda_mi=None,
                  keep_snapshots=False, resumer=None):
    """What ``python -m vem stage`` hands a method's stage, built in-process (tests call run_stage directly)."""
    from pathlib import Path

    from vem.config import resolve
    from vem.data.taskdata import open_task_data
    from vem.methods import get_method
    from vem.methods.context import StageContext

    cfg = resolve(task, overrides, method=method)
    m = get_method(method)
    st = m.stage(cfg, stage)
    return StageContext(cfg=cfg, method=method, stage=st, data=open_task_data(data_path, task, cfg, seed), seed=seed,
                        inputs={k: Path(v) for k, v in inputs.items()}, evalnet=Path(evalnet), addon=addon,
                        lambda_mi=lambda_mi, resumer=resumer, keep_snapshots=keep_snapshots,
                        trains_addon=st == m.addon_stage(cfg))


def interrupt(cmd, resume_file, how, min_iter=12, env=None, before=None):
    """Start ``cmd`` (in ``env``, default ``run_env()``), wait until it has saved a resume state at >= ``min_iter``,
    call ``before(proc)`` if given, then kill -9 or SIGTERM it."""
    import signal
    import time

    import torch

    proc = subprocess.Popen(cmd, env=env or run_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if resume_file.is_file():
            try:
                it = torch.load(resume_file, weights_only=True)["iter"]
            except Exception:  # noqa: BLE001 - being replaced right now
                it = 0
            if it >= min_iter:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted: " + proc.stderr.read()[-500:]
    if before is not None:
        before(proc)
    proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def assert_resumes_exactly(make_cmd, tmp_path, out_name: str, every: int, min_iter: int, curve: str | None = None):
    """Exact resume: ``make_cmd(out_dir, checkpoint_every)`` run once uninterrupted, once killed (-9) after a
    resume save at >= ``min_iter`` and rerun; the two ``out_name`` checkpoints hold equal weights (and the
    ``curve`` tables are equal but for their timings). Returns both checkpoints."""

    import pandas as pd
    import torch

    ref_dir, run = tmp_path / "ref", tmp_path / "run"
    r = run_vem(make_cmd(ref_dir, 0))
    assert r.returncode == 0, r.stderr[-1500:]
    code, err = interrupt(make_cmd(run, every), run / f"{out_name}.resume", "kill", min_iter)
    assert code == -9, err[-800:]
    r = run_vem(make_cmd(run, every))
    assert r.returncode == 0 and "resuming from" in r.stderr, r.stderr[-1500:]
    a, b = (torch.load(x / out_name, weights_only=True) for x in (ref_dir, run))
    assert b["resumed_from"] >= min_iter
    for k, v in a["state_dict"].items():
        assert torch.equal(b["state_dict"][k], v), k
    if curve:
        pd.testing.assert_frame_equal(*(pd.read_csv(x / curve).drop(columns=["seconds"]) for x in (ref_dir, run)),
                                      check_exact=True)
    return a, b

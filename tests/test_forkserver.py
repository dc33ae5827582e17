"""The fork server (vem/forkserver.py): a job run in a child of the server gives the same files, exit status and
messages as its own process; signals reach the child, a killed job's child dies, and a job whose environment
differs from the server's runs in its own process."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import ROOT, fmnist_available, interrupt, run_env, run_vem
from tests.test_omgd import _compress_cmd

_ENV = {}


@pytest.fixture(scope="module")
def server():
    folder = Path(tempfile.mkdtemp(prefix="vem-fs-test-"))     # a short path: a socket's is at most 107 bytes
    sock, log = folder / "socket", folder / "server.log"
    _ENV.update(_base_env())     # the jobs' environment: the server's (the tests' own changes as fixtures run)
    proc = subprocess.Popen([sys.executable, "-m", "vem.forkserver", "--socket", str(sock), "--log", str(log)],
                            env=_ENV, cwd=ROOT, stdin=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not sock.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert sock.exists(), f"the server did not start (exit {proc.poll()})"
    yield sock, log
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    assert not sock.exists() and "fork server stopped" in log.read_text()
    shutil.rmtree(folder)


def _base_env():
    """The tests' environment but for pytest's name of the running test (it changes from test to test)."""
    return {k: v for k, v in run_env().items() if k != "PYTEST_CURRENT_TEST"}


def _env(sock, **extra):
    return dict(_ENV, VEM_FORKSERVER=str(sock), **extra)


def _jobs(log, verb="exit"):
    """The server's records: [(pid, text)] of the lines 'job <pid>: <verb> ...'."""
    out = []
    for line in log.read_text().splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[1] == "job" and parts[3].startswith(verb):
            out.append((int(parts[2].rstrip(":")), parts[3]))
    return out


def test_exit_status_and_messages_are_those_of_its_own_process(server, tmp_path):
    sock, log = server
    bad = [sys.executable, "-m", "vem", "stage", "--task", "fmnist_nope", "--method", "omgd", "--addon", "vem",
           "--data", "x", "--input", "perceptual=x", "--evalnet", "x", "--out", str(tmp_path / "s.pt"),
           "--table", str(tmp_path / "c.csv")]
    n = len(_jobs(log))
    for cmd in (bad, [sys.executable, "-m", "vem", "evaluate", "--help"]):
        own = subprocess.run(cmd, capture_output=True, text=True, env=run_env(), cwd=ROOT, timeout=120)
        forked = subprocess.run(cmd, capture_output=True, text=True, env=_env(sock), cwd=ROOT, timeout=120)
        assert (forked.returncode, forked.stdout, forked.stderr) == (own.returncode, own.stdout, own.stderr)
    assert own.returncode == 0 and "--task" in own.stdout
    assert [t.split()[:2] for _, t in _jobs(log)[n:]] == [["exit", "2"], ["exit", "0"]], log.read_text()


def test_a_job_in_another_environment_or_without_a_server_runs_itself(server, tmp_path):
    sock, log = server
    cmd = [sys.executable, "-m", "vem", "methods"]
    own = subprocess.run(cmd, capture_output=True, text=True, env=run_env(), cwd=ROOT, timeout=120)
    n = len(_jobs(log, "vem"))
    for key, value in (("VEM_TEST_OTHER", "1"), ("OPENBLAS_NUM_THREADS", "2")):   # the second: read at load time
        other = subprocess.run(cmd, capture_output=True, text=True, env=_env(sock, **{key: value}), cwd=ROOT,
                               timeout=120)
        assert (other.returncode, other.stdout) == (0, own.stdout)
        assert len(_jobs(log, "vem")) == n and f"it differs in ${key}" in log.read_text()
    gone = subprocess.run(cmd, capture_output=True, text=True, env=_env(tmp_path / "no-socket"), cwd=ROOT,
                          timeout=120)
    assert (gone.returncode, gone.stdout) == (0, own.stdout)


@pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST is not installed (make setup installs it)")
def test_a_forked_training_stage_equals_its_own_process(server, edges_assets, tmp_path):
    sock, log = server
    forked, own = tmp_path / "forked", tmp_path / "own"
    n = len(_jobs(log))
    res = subprocess.run(_compress_cmd(edges_assets, forked, every=0, iters=8), capture_output=True, text=True,
                         env=_env(sock), cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-1500:]
    assert len(_jobs(log)) == n + 1
    r = run_vem(_compress_cmd(edges_assets, own, every=0, iters=8))
    assert r.returncode == 0, r.stderr[-1500:]
    a, b = (torch.load(x / "student.pt", weights_only=True) for x in (own, forked))
    for k, v in a["state_dict"].items():
        assert torch.equal(b["state_dict"][k], v), k
    assert {k: v for k, v in a.items() if k not in ("state_dict", "generator")} == \
        {k: v for k, v in b.items() if k not in ("state_dict", "generator")}
    pd.testing.assert_frame_equal(*(pd.read_csv(x / "curve.csv").drop(columns=["seconds"]) for x in (own, forked)),
                                  check_exact=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST is not installed (make setup installs it)")
def test_sigterm_reaches_the_child_and_kill9_of_the_job_kills_it(server, edges_assets, tmp_path):
    sock, log = server
    out = tmp_path / "run"
    cmd = _compress_cmd(edges_assets, out, iters=400)
    children = []

    def running_child(proc):
        children.append(_jobs(log, "vem")[-1][0])
        assert _alive(children[-1]) and children[-1] != proc.pid

    # the stage's handler: save the state, exit 143
    code, err = interrupt(cmd, out / "student.pt.resume", "term", min_iter=6, env=_env(sock), before=running_child)
    assert code == 143 and "SIGTERM: state saved" in err, err[-800:]
    assert not _alive(children[-1])

    code, _ = interrupt(cmd, out / "student.pt.resume", "kill", min_iter=9, env=_env(sock), before=running_child)
    assert code == -9
    child = children[-1]
    deadline = time.time() + 30
    while _alive(child) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the child of a killed job still runs"
    assert any(pid == child and text.startswith("exit -9 ") for pid, text in _jobs(log)), log.read_text()
    assert not (out / "student.pt").exists()


def test_a_silent_or_broken_caller_does_not_stop_the_server(server):
    import socket

    sock, log = server
    cmd = [sys.executable, "-m", "vem", "evaluate", "--help"]
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(str(sock))                                   # connects, sends nothing
    broken = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    broken.connect(str(sock))
    broken.sendall(b"\x00\x00\x10")                             # a torn header, then gone
    broken.close()
    n = len(_jobs(log))
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(sock), cwd=ROOT, timeout=60)
    silent.close()
    assert res.returncode == 0 and "--task" in res.stdout
    assert [t.split()[:2] for _, t in _jobs(log)[n:]] == [["exit", "0"]], log.read_text()
    assert log.read_text().count("bad request") >= 2


def test_the_servers_imports_ask_nothing_of_cuda():
    """A process that has queried CUDA (even ``torch.cuda.is_available()``, which initialises the driver) cannot
    hand a working CUDA to the children it forks: a GPU job forked from the server would fail at its first CUDA
    call. The server's preloads (``PRELOAD``) must therefore not query CUDA at all. Checked in a fresh process with
    torch's device queries instrumented (this torch is a CUDA build; no GPU is needed to see a query being made)."""
    code = (
        "import importlib, torch\n"
        "from vem.forkserver import PRELOAD\n"
        "calls = []\n"
        "def spy(name, f):\n"
        "    def g(*a, **k):\n"
        "        calls.append(name)\n"
        "        return f(*a, **k)\n"
        "    return g\n"
        "for name in ('_cuda_getDeviceCount', '_cuda_init'):\n"
        "    if hasattr(torch._C, name):\n"
        "        setattr(torch._C, name, spy(name, getattr(torch._C, name)))\n"
        "for name in ('is_available', 'device_count', 'init'):\n"
        "    setattr(torch.cuda, name, spy(name, getattr(torch.cuda, name)))\n"
        "for m in PRELOAD:\n"
        "    importlib.import_module(m)\n"
        "print(calls, torch.cuda.is_initialized())\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_env(), cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["[]", "False"]

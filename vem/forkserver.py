"""A fork server for the workflow's jobs: ``python -m vem ...`` without paying torch's import in every job.

A local Snakemake run starts one server (``Snakefile``'s ``onstart``); it imports torch, ``torch._dynamo``
(which the first optimiser would import) and the command line once, then forks one child per job. A job's
``python -m vem ...`` finds the server through ``VEM_FORKSERVER`` (a socket path) and hands it its argv,
working directory, environment and standard streams; the child runs ``vem.cli.main`` exactly as a fresh
process would and the job's process exits with the child's status. The job rules stay plain
``python -m vem ...``: without a server (a dry run, a cluster job, the server gone, ``VEM_FORKSERVER`` unset)
or when the job's interpreter, module path or environment (its thread counts included) differ from the
server's, the command runs in its own process as before. A smoke job costs ~3 s less (of ~6-7 s).

Signals reach the child: SIGTERM / SIGINT / SIGHUP / SIGUSR1 sent to the job's process are passed on (the
stages' checkpoint-on-signal behaviour is unchanged); if the job's process dies (kill -9), the server kills the
child. Standard library only: the job's side must not import torch.
"""

from __future__ import annotations

import array
import json
import os
import select
import signal
import socket
import struct
import sys
import tempfile
import time

ENV = "VEM_FORKSERVER"
# what a server imports before it forks (what most jobs import; each is import-side-effect free)
PRELOAD = ("numpy", "yaml", "torch", "torch._dynamo", "pandas", "jsonschema", "vem.cli", "vem.config", "vem.plan",
           "vem.methods", "vem.eval")
# the thread counts Snakemake gives a one-thread job (every job rule's): the numeric libraries read them when
# they load, so the server starts with them and a job with other counts runs in its own process
THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}
# environment that may differ between a job and the server: the shell's own variables and the job's temporary
# folder (Snakemake's tmpdir resource; the child's tempfile reads it afresh)
PER_JOB_ENV = {"_", "SHLVL", "PWD", "OLDPWD", "TMPDIR", "TMP", "TEMP", "TEMPDIR"}
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
_HEADER = struct.Struct("!I")


def _identity(env: dict) -> dict:
    """What must be equal between a job and the server for the server's imports to be the job's own."""
    import vem

    return {"executable": os.path.realpath(sys.executable), "version": sys.version, "path": sys.path,
            "vem": os.path.realpath(vem.__file__),
            "env": {k: v for k, v in env.items() if k not in PER_JOB_ENV and k != ENV}}


def _recv_exact(conn, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


# ---- the job's side ------------------------------------------------------------------------------------
def submit(path: str, argv: list[str]) -> int | None:
    """Run ``python -m vem argv`` in a child of the server at ``path``; its exit status, or None when the server
    cannot take this job (then the caller runs it itself)."""
    ignored = [sig for sig in FORWARDED if signal.getsignal(sig) is signal.SIG_IGN]   # kept so, as in its own
    pending, child = [], []                                                          # process (nohup, `&`)

    def forward(sig, _frame):
        if child:
            _kill(child[0], sig)
        else:
            pending.append(sig)           # before the child exists: passed on once it does

    old = {sig: signal.signal(sig, forward) for sig in FORWARDED if sig not in ignored}

    def run_here():                       # the server cannot take it: the caller's own signals, then run it
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sig in pending:
            os.kill(os.getpid(), sig)

    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with conn:
        env = dict(os.environ)
        request = json.dumps({"argv0": sys.argv[0], "argv": argv, "cwd": os.getcwd(), "identity": _identity(env),
                              "env": env, "ignored": [int(sig) for sig in ignored]}).encode()
        try:
            conn.settimeout(60)
            conn.connect(path)
            conn.sendmsg([_HEADER.pack(len(request))],
                         [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
            conn.sendall(request)
            pid = _HEADER.unpack(_recv_exact(conn, _HEADER.size))[0]
        except (OSError, ConnectionError):
            pid = 0
        if pid == 0:                      # no server, or refused: another interpreter, module path or environment
            run_here()
            return None
        child.append(pid)
        for sig in pending:
            _kill(pid, sig)
        try:
            conn.settimeout(None)
            status = struct.unpack("!i", _recv_exact(conn, 4))[0]
        except (OSError, ConnectionError):
            print(f"vem: error: the fork server at {path} ended while running this job (pid {pid})", file=sys.stderr)
            return 1
    if status < 0:                        # killed by a signal: end the same way, as its own process would
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        return 128 - status
    return status


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


# ---- the server's side ---------------------------------------------------------------------------------
def _run_child(fds: list[int], request: dict) -> int:
    """In the forked child: become the job's process and run the command; its exit status."""
    ignored = set(request.get("ignored", []))
    for sig in FORWARDED + (signal.SIGCHLD,):
        signal.signal(sig, signal.SIG_IGN if int(sig) in ignored else signal.SIG_DFL)
    if int(signal.SIGINT) not in ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    if sys.stdout.isatty():              # as the job's own interpreter would buffer it
        sys.stdout.reconfigure(line_buffering=True)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None              # the job's own TMPDIR, read on first use as in its own process
    sys.argv = [request["argv0"], *request["argv"]]
    import atexit

    interrupted = False
    try:
        from vem.cli import main

        code = main(request["argv"])
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:            # CPython: the traceback, the exit functions, then death by SIGINT
        sys.excepthook(*sys.exc_info())
        code, interrupted = 130, True
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code & 0xFF


def serve(path: str, log=None) -> None:
    """Listen at ``path`` until the parent process (Snakemake) ends or SIGTERM arrives; fork a child per job."""
    import importlib

    before = dict(os.environ)
    identity = _identity(before)
    for name in PRELOAD:
        importlib.import_module(name)
    # what the imports put into the environment (torch's inductor: its cache folder), as they would in the job
    added = {k: v for k, v in os.environ.items() if before.get(k) != v}
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    jobs: dict[int, socket.socket] = {}          # child pid -> the job's connection
    watched: dict[socket.socket, int] = {}       # connections whose caller is alive -> their child
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the jobs; they pass it on

    def note(text):
        if log is not None:
            print(f"{time.strftime('%H:%M:%S')} {text}", file=log, flush=True)

    def fork(conn, fds, request):
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:                             # the child never returns into the server's loop
            code = 1
            try:
                listener.close()
                for other in [conn, *jobs.values()]:
                    other.close()
                if log is not None:
                    log.close()
                request["env"].update(added)
                code = _run_child(fds, request)
            finally:
                os._exit(code)
        return pid

    note(f"fork server {os.getpid()} ready at {path} (preloaded {', '.join(PRELOAD)})")
    try:
        while not stop and os.getppid() == parent:
            ready, _, _ = select.select([listener, *watched], [], [], 0.2)
            for conn in ready:
                if conn is listener:
                    _accept(listener, identity, fork, jobs, watched, note)
                    continue
                try:
                    gone = not conn.recv(1, socket.MSG_PEEK)
                except OSError:
                    gone = True
                if gone:                                     # the job's process closed its end: it is gone
                    pid = watched.pop(conn)
                    note(f"job {pid}: its caller ended, killing it")
                    _kill(pid, signal.SIGKILL)
            _reap(jobs, watched, note)
    finally:
        for pid in list(jobs):                   # shutting down: the running jobs save their state and end
            _kill(pid, signal.SIGTERM)
        deadline = time.time() + 20
        while jobs and time.time() < deadline:
            _reap(jobs, watched, note)
            time.sleep(0.05)
        for pid in list(jobs):
            _kill(pid, signal.SIGKILL)
        listener.close()
        if os.path.exists(path):
            os.unlink(path)
        note("fork server stopped")


def _accept(listener, identity, fork, jobs, watched, note):
    try:
        conn, _ = listener.accept()
    except OSError:
        return
    fds = array.array("i")
    try:
        conn.settimeout(5)                       # a caller that sends nothing must not stall the other jobs
        msg, anc, _flags, _addr = conn.recvmsg(_HEADER.size, socket.CMSG_LEN(3 * fds.itemsize))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
        request = json.loads(_recv_exact(conn, _HEADER.unpack(msg)[0]))
    except (OSError, ValueError, ConnectionError, struct.error) as e:
        note(f"bad request ({e}); ignored")
        for fd in fds:
            os.close(fd)
        conn.close()
        return
    pid = 0
    if request.get("identity") != identity or len(fds) != 3:
        theirs = request.get("identity") or {}
        differ = sorted(k for k in identity if k != "env" and theirs.get(k) != identity[k])
        env, ours = theirs.get("env") or {}, identity["env"]
        differ += sorted(f"${k}" for k in set(env) | set(ours) if env.get(k) != ours.get(k))
        note(f"refused {request.get('argv', [])[:1]} (runs in its own process): it differs in {', '.join(differ)}")
    else:
        try:
            pid = fork(conn, list(fds), request)
        except OSError as e:
            note(f"cannot fork ({e}): {request['argv'][:1]} runs in its own process")
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(_HEADER.pack(pid))
    except OSError:
        if pid:
            _kill(pid, signal.SIGKILL)
    if not pid:
        conn.close()
        return
    jobs[pid] = conn
    watched[conn] = pid
    note(f"job {pid}: vem {' '.join(request['argv'][:1])} in {request['cwd']}")


def _reap(jobs, watched, note):
    while jobs:
        try:
            pid, status, usage = os.wait3(os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        conn = jobs.pop(pid, None)
        # the job's CPU time and peak memory: Snakemake's benchmark files see only the job's own small process
        note(f"job {pid}: exit {code} (cpu {usage.ru_utime + usage.ru_stime:.1f} s, "
             f"max rss {usage.ru_maxrss / 1024:.0f} MB)")
        if conn is not None:
            watched.pop(conn, None)
            try:
                conn.sendall(struct.pack("!i", code))
            except OSError:
                pass
            conn.close()


# ---- the workflow's side ------------------------------------------------------------------------------
def launch(log: str) -> dict:
    """Start a server for this process's jobs (unless ``VEM_FORKSERVER=off``) and point them at it through
    ``VEM_FORKSERVER``; returns what ``shut_down`` needs. The server runs the interpreter the jobs' ``python``
    will be, with this process's environment, and ends with this process at the latest."""
    import shutil
    import subprocess

    if os.environ.get(ENV) == "off":
        return {}
    folder = tempfile.mkdtemp(prefix="vem-forkserver-")     # a short path: a socket's is at most 107 bytes
    path = os.path.join(folder, "socket")
    os.makedirs(os.path.dirname(log) or ".", exist_ok=True)
    python = shutil.which("python") or sys.executable
    proc = subprocess.Popen([python, "-m", "vem.forkserver", "--socket", path, "--log", log],
                            env={**{k: v for k, v in os.environ.items() if k != ENV}, **THREAD_ENV},
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, start_new_session=True)
    os.environ[ENV] = path
    return {"proc": proc, "folder": folder}


def shut_down(server: dict) -> None:
    import shutil

    proc = server.pop("proc", None)
    if proc is not None:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(server.pop("folder"), ignore_errors=True)
        os.environ.pop(ENV, None)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m vem.forkserver", description=__doc__.splitlines()[0])
    p.add_argument("--socket", required=True, help="the socket path to listen at (jobs find it in $VEM_FORKSERVER)")
    p.add_argument("--log", default=None, help="append the server's one-line job records here")
    args = p.parse_args(argv)
    if args.log:
        with open(args.log, "a") as log:
            serve(args.socket, log)
    else:
        serve(args.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())

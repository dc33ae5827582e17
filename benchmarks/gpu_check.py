"""The paper path's GPU check: one prepared script for a machine with a GPU and no network.

    make gpu-wheels                                  # here (network): the packages a bare GPU image lacks -> .whl/
    bash scripts/gpu-check.sh OUT                    # there: installs .whl/ and this package, then runs this file
    python benchmarks/gpu_check.py --out OUT [--iters 10] [--workflow-iters 100] [--cores 16]

Two parts, each on stand-ins (synthetic images in the real datasets' layouts and sizes, randomly initialised
VGG16 and Inception weights of the real architectures: nothing downloads; the timings are real, the metrics
meaningless):

1. Paper-scale iteration time per task with and without each add-on: ``benchmarks/paper_iteration.py`` (OMGD's
   ``distill`` stage at 256 px, the paper preset's recipe) for edges2shoes (paired) and horse2zebra (unpaired),
   every add-on in one process per task.
2. A short paper-preset OMGD + VEM job through the workflow with ``--device auto`` (the job rules' default):
   ``snakemake results/table1.csv`` for edges2shoes - prepare_paper_data, real_stats, train_teacher and
   evaluate_teacher (the Original), compress (OMGD + VEM) and evaluate_run, render_table - at the preset's
   widths, batch and resolution, with ``--workflow-iters`` iterations for the teacher and the student. Each job's
   wall seconds come from its Snakemake benchmark file; each metrics file says on which device it was trained and
   evaluated.

Writes ``OUT/gpu_check.json`` (everything), ``OUT/gpu_check.md`` (the tables for the README), the workflow's
``table1.csv``, Snakemake's output (``OUT/workflow.log``) and every job's log (``OUT/job_logs.txt``), each part's
files as soon as they exist (part 1 after each task). A part that fails or runs out of time leaves its error in the
JSON and the other part still runs. ``tests/test_paper.py`` runs this file at toy size on the CPU, so the prepared
script is exercised wherever the suite runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TASKS = ("edges2shoes", "horse2zebra")
ADDONS = ("none", "vid", "crd", "vem")


# ---- part 1: iteration times -------------------------------------------------------------------------------
def iteration_times(task: str, addons=ADDONS, iters: int = 10, device: str = "auto", sets=(), timeout: float = 300,
                    log=print) -> tuple[list[dict], str | None]:
    """One ``paper_iteration.py`` process for ``task`` (its own default device), every add-on in it: one dict per
    add-on it finished, and the error (None: all of them; a failure or ``timeout`` seconds keep the rows printed
    before). ``sets``: ``key=value`` overrides passed on (the tests shrink the recipe with them)."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "paper_iteration.py"), "--task", task, "--addon", ",".join(addons),
           "--iters", str(iters), "--device", device]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
        out, err = res.stdout, None if res.returncode == 0 else \
            f"paper_iteration.py --task {task} failed (rc {res.returncode}):\n{res.stderr[-3000:]}"
    except subprocess.TimeoutExpired as e:
        out, err = _text(e.stdout), f"paper_iteration.py --task {task} timed out after {timeout:.0f} s:\n" \
                                    f"{_text(e.stderr)[-3000:]}"
    got = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    log(f"iteration times, {task}: {len(got)} of {len(addons)} add-ons in {time.perf_counter() - t0:.0f} s")
    return got, err


# ---- part 2: the workflow ----------------------------------------------------------------------------------
def paper_workflow(work: Path, overrides: dict, cores: int = 1, targets=("results/table1.csv",), env=None,
                   timeout: float = 1800, logs_to: Path | None = None, log=print) -> dict:
    """``snakemake TARGETS`` for edges2shoes' Table 1 (the Original and OMGD + VEM, seed 0) in ``work``, whose
    ``resources/`` already holds the dataset (``resources/datasets/edges2shoes-r``) and the weights
    (``resources/weights``). Returns the wall seconds and the command; raises on a failure or after ``timeout``
    seconds (then Snakemake and every job it started are stopped: its process group gets SIGTERM, SIGKILL 20 s
    later). Snakemake's output goes to ``LOGS/workflow.log`` as it is printed, every job's log to
    ``LOGS/job_logs.txt`` at the end (``logs_to``, default ``work``)."""
    logs_to = logs_to or work
    cfg = work / "gpu_check.yaml"
    cfg.write_text(json.dumps({"tasks": ["edges2shoes"], "methods": ["omgd"], "addons": ["vem"], "seeds": [0],
                               "tables": [1], "overrides": overrides, "checkpoint_every": 0,
                               "checkpoint_selection": "best_on_test"}))
    env = dict(os.environ if env is None else env)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")   # the jobs call `python`
    snakemake = shutil.which("snakemake", path=env["PATH"]) or str(Path(sys.executable).with_name("snakemake"))
    cmd = [snakemake, "--cores", str(cores), "--scheduler", "greedy", "-s", str(ROOT / "Snakefile"), "-d",
           str(work), *targets, "--configfile", str(cfg)]
    t0 = time.perf_counter()
    with open(logs_to / "workflow.log", "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            _stop_jobs_in(work)
            rc = f"timed out after {timeout:.0f} s"
    wall = time.perf_counter() - t0
    text = (logs_to / "workflow.log").read_text(errors="replace")
    logs = sorted((work / "logs").rglob("*.log"))
    (logs_to / "job_logs.txt").write_text("".join(f"==> {f.relative_to(work)} <==\n{f.read_text(errors='replace')}\n"
                                                  for f in logs))
    if rc != 0:
        raise RuntimeError(f"snakemake {' '.join(targets)} failed (rc {rc}) after {wall:.0f} s:\n{text[-4000:]}")
    log(f"workflow: {' '.join(targets)} in {wall:.0f} s")
    return {"wall_s": wall, "command": " ".join(cmd[1:])}


def _stop_group(proc, grace: float = 20):
    """SIGTERM to ``proc``'s process group (Snakemake and the jobs it started: they save and end), SIGKILL after
    ``grace`` seconds."""
    import signal

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _jobs_in(folder: Path) -> list[int]:
    """The processes working in ``folder`` (Linux's /proc): a workflow's jobs, which Snakemake starts in sessions
    of their own."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def _stop_jobs_in(folder: Path, grace: float = 20):
    """Wait for a stopped Snakemake's jobs to end (it signals them as it stops); SIGKILL what is left after
    ``grace`` seconds."""
    import signal

    deadline = time.time() + grace
    while (pids := _jobs_in(folder.resolve())) and time.time() < deadline:
        time.sleep(0.2)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _text(b) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def job_seconds(work: Path) -> list[dict]:
    """Each job's wall seconds from its Snakemake benchmark file (``results/benchmarks/<rule>/...tsv``)."""
    import pandas as pd

    out = []
    bench = work / "results" / "benchmarks"
    for f in sorted(bench.rglob("*.tsv")):
        rel = f.relative_to(bench)
        out.append({"job": str(rel.with_suffix("")), "s": float(pd.read_csv(f, sep="\t")["s"].iloc[0])})
    return out


def workflow_overrides(iters: int, val_images: int) -> dict:
    """The paper preset's recipe for edges2shoes (widths, batch, 256 px, n_dis, the losses) with ``iters``
    iterations for the Original and the student, one val score at the end, ``val_images`` val images."""
    return {"omgd.iters": iters, "omgd.eval_every": iters, "teachers.original.iters": iters,
            "teachers.original.snapshot_every": iters, "eval.val_images": val_images}


def _environment() -> dict:
    import torch

    from vem.utils import versions

    env = {"python": platform.python_version(), "versions": versions(), "cuda_available": torch.cuda.is_available(),
           "cpu_count": os.cpu_count(), "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(device_name=p.name, device_memory_GiB=round(p.total_memory / 2**30, 1),
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return env


def markdown(report: dict) -> str:
    import pandas as pd

    env = report["environment"]
    lines = [f"GPU check on {env.get('device_name', 'cpu')} (torch {env['versions']['torch']}, "
             f"CUDA {env.get('cuda')}, {env['cpu_count']} CPUs), {report['date']}", ""]
    if report.get("iterations"):
        t = pd.DataFrame(report["iterations"])
        t = t[["task", "addon", "device", "batch", "seconds_per_iter", "online_teachers_seconds", "addon_seconds",
               "peak_GiB"]]
        lines += ["Paper-scale OMGD iteration (median of the timed iterations, after one warm-up):", "",
                  t.to_markdown(index=False, floatfmt=".4f"), ""]
    if report.get("workflow"):
        w = report["workflow"]
        lines += [f"Workflow `{w['command']}` ({w['iters']} iterations each): {w['wall_s']:.0f} s wall", "",
                  pd.DataFrame(w["jobs"]).to_markdown(index=False, floatfmt=".1f"), ""]
        for m in w.get("metrics", []):
            lines.append(f"- {m['method']}+{m['addon']}: {m['metric']['name']} = {m['metric']['value']:.4g} "
                         f"(stand-in weights: meaningless), trained on {m.get('devices', {}).get('train')}, "
                         f"evaluated on {m.get('devices', {}).get('evaluate')}")
    for part in ("iterations", "workflow"):
        if report.get(f"{part}_error"):
            lines += ["", f"**{part} failed**:", "", "```", report[f"{part}_error"][-2000:], "```"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json / .md and the logs")
    ap.add_argument("--iters", type=int, default=10, help="timed iterations per task x add-on (after a warm-up)")
    ap.add_argument("--workflow-iters", type=int, default=100, help="the workflow's teacher and student iterations")
    ap.add_argument("--n-train", type=int, default=64, help="synthetic edges2shoes training pairs")
    ap.add_argument("--n-val", type=int, default=16, help="synthetic edges2shoes val (= test) pairs")
    # the defaults, with the install and the set-up, end within a 10-minute command
    ap.add_argument("--task-timeout", type=int, default=100, help="seconds part 1 may take per task")
    ap.add_argument("--workflow-timeout", type=int, default=300,
                    help="seconds the workflow may take (its logs come back either way)")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="part 1's device")
    ap.add_argument("--tasks", default=",".join(TASKS), help="part 1's tasks, comma-separated")
    ap.add_argument("--addons", default=",".join(ADDONS), help="part 1's add-ons, comma-separated")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for both parts (repeatable; the tests shrink the recipe with them)")
    ap.add_argument("--skip", choices=["iterations", "workflow"], action="append", default=[])
    ap.add_argument("--work", type=Path, default=None, help="the workflow's folder (default: a temporary one)")
    args = ap.parse_args(argv)
    for name in ("iters", "workflow_iters", "task_timeout", "workflow_timeout", "n_train", "n_val", "cores"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(args, name)})")
    if args.n_val < 2:
        raise SystemExit(f"--n-val must be >= 2 (got {args.n_val}): a val score needs two images")
    from benchmarks.paper_iteration import parse_set
    from benchmarks.stand_ins import INCEPTION, VGG16, stand_in_inception, stand_in_vgg16, synthetic_dataset

    sets = parse_set(args.set)     # a malformed one is refused before any work
    tasks, addons = args.tasks.split(","), args.addons.split(",")
    for t in tasks:
        if t not in TASKS:
            raise SystemExit(f"--tasks: {t!r} is not one of {', '.join(TASKS)}")
    for a in addons:
        if a not in ADDONS:
            raise SystemExit(f"--addons: {a!r} is not one of {', '.join(ADDONS)}")
    args.out.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "environment": _environment()}
    log(json.dumps(report["environment"]))

    def save():
        (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1))
        (args.out / "gpu_check.md").write_text(markdown(report))

    save()                            # the environment first: something comes back whatever happens next
    failed = []
    if "iterations" not in args.skip:
        report["iterations"] = []
        for task in tasks:
            rows, err = iteration_times(task, addons, args.iters, args.device, args.set, args.task_timeout, log=log)
            report["iterations"] += rows
            if err:                       # the next task and the workflow part still run: each is its own finding
                report["iterations_error"] = report.get("iterations_error", "") + err + "\n"
                if "iterations" not in failed:
                    failed.append("iterations")
                log(err)
            save()
    if "workflow" not in args.skip:
        import tempfile

        keep = args.work is not None
        work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
        synthetic_dataset("edges2shoes", work / "resources" / "datasets", n_train=args.n_train, n_val=args.n_val)
        stand_in_inception(work / "resources" / "weights" / INCEPTION)
        stand_in_vgg16(work / "resources" / "weights" / VGG16)
        over = {**workflow_overrides(args.workflow_iters, min(args.n_val, 8)), **sets}
        try:
            w = paper_workflow(work, over, cores=args.cores, timeout=args.workflow_timeout, logs_to=args.out, log=log)
            w.update(iters=args.workflow_iters, overrides=over, jobs=job_seconds(work),
                     metrics=[json.loads(p.read_text()) for p in sorted((work / "results").rglob("metrics.json"))])
            for m in w["metrics"]:
                m.pop("generator", None)
            report["workflow"] = w
            shutil.copy(work / "results" / "table1.csv", args.out / "table1.csv")
        except RuntimeError as e:
            report["workflow_error"] = str(e)
            failed.append("workflow")
            log(str(e))
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        save()
    log(f"wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}")
    if failed:
        raise SystemExit(f"gpu_check: {' and '.join(failed)} failed (see gpu_check.json)")


if __name__ == "__main__":
    main()

# Config validation (schema + the run presets) and the helpers that expand targets from the config.

import json
import os

from snakemake.utils import validate

from vem.config import ConfigError, resolve
from vem.data.tasks import get_task


def _validate_config():
    """Schema validation, reduced to one line naming the bad value."""
    try:
        validate(config, schema="../schemas/config.schema.yaml")
    except WorkflowError as e:
        lines = [l for l in str(e).splitlines() if "ValidationError" in l]
        where = [l for l in str(e).splitlines() if l.startswith("On instance")]
        msg = (
            lines[0].split("ValidationError:", 1)[1].strip()
            if lines
            else str(e).splitlines()[0]
        )
        loc = where[0].replace("On instance", "").strip(" :") if where else ""
        raise WorkflowError(
            f"config error{' in ' + loc if loc else ''}: {msg}"
        ) from None


_validate_config()

config.setdefault("tables", [1, 2, 4, 5])
config.setdefault("lambda_mi_sweep", [])
config.setdefault("sweep_task", "fmnist_scenes")
config.setdefault("teacher_seed", 0)
config.setdefault("evalnet_seed", 0)
config.setdefault("fmnist_dir", None)
config.setdefault("overrides", {})
config.setdefault("checkpoint_every", 100)
config.setdefault("checkpoint_selection", "final")

# every task's run configuration must resolve with the overrides before any job starts
_scales = {get_task(t).scale for t in config["tasks"]}
if len(_scales) > 1:
    raise WorkflowError(
        f"config error: tasks mix scales {sorted(_scales)}; mini and paper numbers never share a run"
    )
if "paper" in _scales:
    raise WorkflowError(
        "config error: paper-scale tasks "
        f"{[t for t in config['tasks'] if get_task(t).scale == 'paper']} need the paper preset "
        "(real-dataset rules, Inception FID, DRN-D-105 mIoU), which is not built yet: see README, Status"
    )
RUN_CONFIG = {}
for _task in config["tasks"]:
    try:
        RUN_CONFIG[_task] = resolve(_task, config["overrides"])
    except ConfigError as e:
        raise WorkflowError(f"config error: {e}") from None
OVERRIDES = json.dumps(config["overrides"], sort_keys=True)
if 5 in config["tables"] and config["sweep_task"] not in config["tasks"]:
    raise WorkflowError(
        f"config error: sweep_task {config['sweep_task']!r} is not among tasks {config['tasks']}"
    )


wildcard_constraints:
    task="|".join(config["tasks"]),
    method="[a-z_]+",
    addon="none|vid|crd|vem",
    lam="[0-9.]+",
    seed=r"\d+",
    role="original|omgd",
    kind="feature|perceptual|segmenter",


def default_lambda(task):
    return RUN_CONFIG[task]["addon"]["lambda_mi"]


def lam_str(x):
    return f"{float(x):g}"


def run_dir(task, method, addon, lam, seed):
    lam = "0" if addon == "none" else lam_str(lam)
    return f"results/runs/{task}/{method}/{addon}_lam{lam}/seed{seed}"


def evalnet_for(task):
    """The network that scores a task: the FD feature net or the scenes segmenter."""
    if get_task(task).metric == "miou":
        return "results/evalnets/segmenter.pt"
    return "results/evalnets/feature.pt"


def teacher_inputs(wildcards):
    """OMGD on unpaired tasks distils from the trained CycleGAN teacher's snapshots; on paired tasks
    every add-on's student replays the online teachers recorded once per (task, seed).
    """
    if wildcards.method != "omgd":
        return {}
    if get_task(wildcards.task).kind == "unpaired":
        return {"teacher": f"results/teachers/{wildcards.task}/omgd/generator.pt"}
    return {
        "trajectory": f"results/teachers/{wildcards.task}/omgd_online/seed{wildcards.seed}/trajectory.pt"
    }


def teacher_arg(wildcards, input):
    if "teacher" in input.keys():
        return f"--teacher {input.teacher}"
    if "trajectory" in input.keys():
        return f"--trajectory {input.trajectory}"
    return ""


def real_stats_for(wildcards):
    if get_task(wildcards.task).metric == "fd":
        return {"real_stats": f"results/stats/{wildcards.task}.npz"}
    return {}


def real_stats_arg(wildcards, input):
    return f"--real-stats {input.real_stats}" if "real_stats" in input.keys() else ""


def table_tasks(n):
    kinds = {1: "paired", 2: "unpaired"}
    if n == 5:
        return [config["sweep_task"]]
    return [t for t in config["tasks"] if n == 4 or get_task(t).kind == kinds[n]]


def table_metrics(n):
    """Every metrics.json a table needs (its rows x seeds)."""
    out = []
    seeds = config["seeds"]
    for task in table_tasks(n):
        if n in (1, 2):
            out.append(f"results/teachers/{task}/original/metrics.json")
        for method in config["methods"]:
            addons = [a for a in config["addons"] if n != 5 or a in ("none", "vem")]
            for addon in addons:
                lams = [default_lambda(task)]
                if n == 5 and addon == "vem":
                    lams = config["lambda_mi_sweep"] or lams
                for lam in lams:
                    for seed in seeds:
                        out.append(
                            os.path.join(
                                run_dir(task, method, addon, lam, seed), "metrics.json"
                            )
                        )
    return out


def table_curves(n):
    return [m.replace("metrics.json", "curve.csv") for m in table_metrics(n)]


def table_quality(n):
    out = ["results/evalnets/feature.json"]
    if any(get_task(t).metric == "miou" for t in table_tasks(n)):
        out.append("results/evalnets/segmenter.json")
    return out


def all_done_message():
    tables = " ".join(f"results/table{n}.csv" for n in config["tables"])
    return (
        f"\nDone. Tables: {tables} (Markdown twins: .md). Per-run metrics: results/runs/*/*/*/*/metrics.json\n"
        "Mini numbers (FD-FMNIST, mIoU-FMNIST-scenes) are not comparable with the paper's FID / mIoU."
    )

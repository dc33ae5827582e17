# Config validation (schema + the run presets) and the helpers that expand targets from the config.

import json
import os

from snakemake.utils import validate

from vem.config import ConfigError, resolve
from vem.data.paper_datasets import FID_WEIGHTS, weights_file
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
SCALE = _scales.pop()
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


def data_file(task):
    """Prepared task data: the npz of a mini task, the image index of a paper task."""
    if get_task(task).scale == "paper":
        return f"resources/data/{task}.json"
    return f"resources/data/{task}.npz"


def evalnet_for(task):
    """The network that scores a task. Mini: the FD feature net or the scenes segmenter (trained here).
    Paper: the Inception weights of the configured FID mode, or DRN-D-105 for Cityscapes mIoU.
    """
    spec = get_task(task)
    if spec.scale == "paper":
        if spec.metric == "miou":
            return weights_file("drn_d_105_cityscapes")
        return weights_file(FID_WEIGHTS[RUN_CONFIG[task]["eval"]["fid_mode"]])
    if spec.metric == "miou":
        return "results/evalnets/segmenter.pt"
    return "results/evalnets/feature.pt"


def perceptual_for(task):
    if get_task(task).scale == "paper":
        return weights_file("vgg16")
    return "results/evalnets/perceptual.pt"


def teacher_path(task, role):
    """A trained teacher, or a released one imported by the import_teacher rule (teachers.<role>.source)."""
    source = RUN_CONFIG[task]["teachers"][role].get("source", "train")
    if source == "train":
        return f"results/teachers/{task}/{role}/generator.pt"
    return f"resources/teachers/{source}/generator.pt"


def teacher_inputs(wildcards):
    """OMGD on unpaired tasks distils from the trained CycleGAN teacher's snapshots; on paired tasks
    every add-on's student replays the online teachers recorded once per (task, seed) when
    omgd.share_teachers is true (mini), and trains them itself otherwise (paper: no trajectory file).
    """
    if wildcards.method != "omgd":
        return {}
    if get_task(wildcards.task).kind == "unpaired":
        return {"teacher": teacher_path(wildcards.task, "omgd")}
    if not RUN_CONFIG[wildcards.task]["omgd"].get("share_teachers", True):
        return {}
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
            out.append(original_metrics(task))
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


def original_metrics(task):
    return f"results/teachers/{task}/original/metrics.json"


def table_curves(n):
    """Learning curves of the trained runs (an imported teacher has none)."""
    out = []
    for m in table_metrics(n):
        task = m.split("/")[2]
        if m == original_metrics(task) and teacher_path(task, "original").startswith(
            "resources/"
        ):
            continue
        out.append(m.replace("metrics.json", "curve.csv"))
    return out


def table_quality(n):
    if SCALE == "paper":
        return []
    out = ["results/evalnets/feature.json"]
    if any(get_task(t).metric == "miou" for t in table_tasks(n)):
        out.append("results/evalnets/segmenter.json")
    return out


def all_done_message():
    tables = " ".join(f"results/table{n}.csv" for n in config["tables"])
    if SCALE == "paper":
        return (
            f"\nDone. Tables: {tables} (Markdown twins: .md), measured paper-scale numbers next to the "
            "paper's with their difference."
        )
    return (
        f"\nDone. Tables: {tables} (Markdown twins: .md). Per-run metrics: results/runs/*/*/*/*/metrics.json\n"
        "Mini numbers (FD-FMNIST, mIoU-FMNIST-scenes) are not comparable with the paper's FID / mIoU."
    )

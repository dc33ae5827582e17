# Config validation (schema, then the resolved configuration of every run) and the plan every rule reads
# its files from (vem.plan: derived from the stages the registered methods declare; no method is named here).

import json
import os
from pathlib import Path

from snakemake.utils import validate

from vem.config import ConfigError
from vem.plan import ADDON_RE, ARMS_RE, VARIANT, Plan
from vem.utils import source_commit


def _retyped(given, read):
    """``given`` (as snakemake read it) with each text leaf that YAML reads as a number, boolean or null
    replaced by that value; structure and every other value as given."""
    if isinstance(given, dict) and isinstance(read, dict):
        return {k: _retyped(v, read[k]) if k in read else v for k, v in given.items()}
    if isinstance(given, list) and isinstance(read, list) and len(given) == len(read):
        return [_retyped(g, r) for g, r in zip(given, read)]
    if isinstance(given, str) and (
        read is None or isinstance(read, (bool, int, float))
    ):
        return read
    return given


def _typed_command_line_config():
    """`--config key=[...]` and `key={...}` read as a config file would read them. Snakemake parses the values
    nested in `--config` as text (the BaseLoader of YAML: `seeds=[0,1,2,3]` gives the texts 0, 1, 2, 3,
    `overrides={eval.test_images: 300}` the text 300); read again with the safe loader of YAML, the numbers,
    booleans and nulls in them get their types. A value YAML cannot read stays as snakemake gave it (the schema
    names it).
    """
    import yaml

    for entry in workflow.config_settings.config_args or []:
        key, sep, text = entry.partition("=")
        if not sep or key not in config or text.lstrip()[:1] not in ("[", "{"):
            continue  # a plain value: snakemake already reads numbers and booleans there
        try:
            read = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        config[key] = _retyped(config[key], read)


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


_typed_command_line_config()
_validate_config()

config.setdefault("tables", [1, 2, 3, 4, 5])
config.setdefault("lambda_mi_sweep", [])
config.setdefault("sweep_task", "fmnist_scenes")
config.setdefault(
    "dose_response", {"tasks": [], "lambdas": [0.1], "addons": ["vem"], "seeds": [0]}
)
config.setdefault(
    "control", {"tasks": [], "methods": [], "addons": ["vem"], "seeds": [0]}
)
config.setdefault(
    "tuning",
    {"tasks": [], "methods": [], "addons": [], "trials": 1, "seeds": [0], "space": {}},
)
config.setdefault("teacher_seed", 0)
config.setdefault("evalnet_seed", 0)
config.setdefault("fmnist_dir", None)
config.setdefault("overrides", {})
config.setdefault("checkpoint_every", 100)
config.setdefault("checkpoint_selection", "final")

# every task's and every (task, method)'s run configuration resolves and passes its checks before any job
try:
    PLAN = Plan(config)
except (ConfigError, ValueError) as e:
    raise WorkflowError(f"config error: {e}") from None
# module:Class add-ons and methods: every job registers them too
os.environ.update(PLAN.plugin_env())
SCALE = PLAN.scale


RUN_META = {
    "commit": source_commit(workflow.basedir),
    "tasks": config["tasks"],
    "seeds": config["seeds"],
    "overrides": PLAN.overrides,
    "scale": SCALE,
    "config_hash": __import__("hashlib")
    .sha256(json.dumps(config, sort_keys=True, default=str).encode())
    .hexdigest()[:16],
}


wildcard_constraints:
    task="|".join(config["tasks"]),
    method="[a-z][a-z0-9_]*",
    addon=ADDON_RE,
    lam="[0-9.]+",
    arms=ARMS_RE,
    seed=r"\d+",
    role="original",
    kind="feature|perceptual|segmenter",
    variant=VARIANT,
    stage=r"(?!(student|curve)\.)[a-z][a-z0-9_]*",  # student.pt, curve.csv: the last stage (rule compress)


def final_stage(w):
    return PLAN.stages(w.task, w.method)[-1].name


def run_variant(w):
    return f"{w.addon}_lam{w.lam}{w.arms}/seed{w.seed}"


def real_stats_for(wildcards):
    if PLAN.needs_real_stats(wildcards.task):
        return {"real_stats": f"results/stats/{wildcards.task}.npz"}
    return {}


def real_stats_arg(wildcards, input):
    return f"--real-stats {input.real_stats}" if "real_stats" in input.keys() else ""


def tuned_runs_of(w):
    """A method's runs with the add-ons' chosen values: known once the tune checkpoint has chosen them."""
    out = checkpoints.tune.get(method=w.method).output.json
    return PLAN.tuned_metrics(w.method, json.loads(Path(out).read_text())["choice"])


def tuned_lists(n):
    """Table 4 reads the tuned runs through their list files: its other inputs stay in the DAG from the start."""
    return (
        [f"results/tuning/{m}.runs" for m in PLAN.tuning_methods()]
        if int(n) == 4
        else []
    )


def tuning_md():
    return [f"results/tuning/{m}.md" for m in PLAN.tuning_methods()]


def all_done_message():
    tables = " ".join(f"results/table{n}.csv" for n in config["tables"])
    if SCALE == "paper":
        return (
            f"\nDone. Tables: {tables} (twins: .md Markdown, .tex LaTeX), measured paper-scale numbers next to the "
            "paper's with their difference."
        )
    return (
        f"\nDone. Tables: {tables} (twins: .md Markdown, .tex LaTeX). Per-run metrics: results/runs/*/*/*/*/metrics.json\n"
        "Mini numbers (FD-FMNIST, mIoU-FMNIST-scenes) are not comparable with the paper's FID / mIoU."
    )


# ---- the run's fork server (vem/forkserver.py): jobs skip torch's import ------------------------------
_FORKSERVER = {}


def start_forkserver():
    """A local run's jobs (`python -m vem ...`) fork from one server that has imported torch once (~3 s less
    per job). Not for cluster jobs, dry runs or `VEM_FORKSERVER=off`; a job it cannot take runs as before.
    """
    if workflow.non_local_exec or workflow.remote_exec:
        return
    from vem.forkserver import launch

    _FORKSERVER.update(launch("logs/forkserver.log"))


def stop_forkserver():
    from vem.forkserver import shut_down

    shut_down(_FORKSERVER)

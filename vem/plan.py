"""The workflow's plan: which jobs a table needs and which files each job reads and writes (torch-free).

The Snakefile builds one :class:`Plan` from its configuration. Building it resolves and checks every
(task, method) configuration with the overrides, the same way every job will, so a value a job would
reject fails ``snakemake -n``. Every job derives from the registered methods' stage declarations
(``vem.methods``): no method is named here.

Files of a method on a task (``results/runs/<task>/<method>/``)::

    shared/<stage>.pt|.csv                  scope "task" (teacher_seed)
    shared/seed<s>/<stage>.pt|.csv          scope "seed"
    <addon>_lam<λ>/seed<s>/<stage>.pt|.csv  scope "run", before the last stage
    <addon>_lam<λ>/seed<s>/student.pt       the last stage (+ curve.csv), then metrics.json, images.zip, samples.png
"""

from __future__ import annotations

import json
import os
import re

from .config import ConfigError, method_kinds, numbers_meant, resolve
from .data.tasks import get_task
from .methods import get_method, label, method_ids
from .mi.registry import canonical
from .tuning import LAMBDA, TRIAL_ARM, fixed_dims_removed, nulled_dims, sample_trials

# arms: a run's last stage with extra overrides, ``+<arm>`` after its lambda (``vem_lam0.1+nodistill/seed0``)
ARMS = {"nodistill": "the method's own distillation terms switched off (its distill_keys set to 0)",
        "frozen": "VEM's energy network frozen at its initialisation (addon.vem.train_energy: false)",
        "t<k>": "the add-on's tuning trial k (tuning.space; vem.tuning), e.g. +t3"}
ARMS_RE = r"(\+(nodistill|frozen|" + TRIAL_ARM.pattern + r"))*"
ADDON_RE = r"[a-z][a-z0-9_]*"     # an add-on id (built-in or a user's, vem.mi.registry)
VARIANT = r"shared(/seed\d+)?|" + ADDON_RE + r"_lam[0-9.]+" + ARMS_RE + r"/seed\d+"
TABLE_KINDS = {1: "paired", 2: "unpaired", 3: "unconditional"}
# shared inputs that are weight files of the paper scale (vem.data.paper_datasets.WEIGHTS) and absent at mini
SHARED_WEIGHTS = {"lpips": "lpips_vgg", "face_parser": "bisenet_face"}


def lam_str(x) -> str:
    """A lambda in a run name: positional, shortest round-trip digits (0.1, 10, 0.00005)."""
    import numpy as np

    return np.format_float_positional(float(x), trim="-")


def parse_variant(variant: str) -> tuple[str, str | None, str | None, int | None, str]:
    """``shared`` / ``shared/seed3`` / ``vem_lam0.1+nodistill/seed3`` -> (scope, addon, lambda string, seed,
    arms string such as ``+nodistill``, "" for none)."""
    if variant == "shared":
        return "task", None, None, None, ""
    m = re.fullmatch(r"shared/seed(\d+)", variant)
    if m:
        return "seed", None, None, int(m.group(1)), ""
    m = re.fullmatch(r"(" + ADDON_RE + r")_lam([0-9.]+)(" + ARMS_RE + r")/seed(\d+)", variant)
    if not m:
        raise ValueError(f"not a run variant: {variant!r}")
    return "run", m.group(1), m.group(2), int(m.groups()[-1]), m.group(3)


def arm_list(arms: str) -> list[str]:
    return [a for a in arms.split("+") if a]


_MISSING = object()


# The config sections each kind of job reads; a job is given (and Snakemake tracks) only their overrides.
# A method's jobs read its own section too, and its run-scoped ones the add-ons' (``addon``).
JOB_SECTIONS = {
    "evalnet": ("evalnets",),                          # train_classifier_net, train_segmenter
    "evaluate": ("eval", "data", "teachers"),          # real_stats, evaluate_teacher, evaluate_run (the Original's
                                                       # architecture for the latency ratio)
    "teacher": ("teachers", "eval", "data"),           # train_teacher (its val curve)
    "method": ("teachers", "eval", "data", "evalnets"),
}


class Plan:
    def __init__(self, config: dict):
        self.config = config
        self.tasks = list(config["tasks"])
        scales = {get_task(t).scale for t in self.tasks}
        if len(scales) > 1:
            raise ConfigError(f"tasks mix scales {sorted(scales)}; mini and paper numbers never share a run")
        self.scale = scales.pop()
        # add-ons: ids, or module:Class paths of user add-ons (imported, checked, registered under their id)
        self.addon_paths = {}
        for section in (config, *(config.get(k) or {} for k in ("dose_response", "control", "tuning"))):
            if "addons" in section:
                given = section["addons"]
                section["addons"] = [canonical(a) for a in given]
                self.addon_paths.update((i, a) for i, a in zip(section["addons"], given) if i != a)
        config["methods"] = self._canonical_methods(config["methods"])   # before overrides set their keys
        self.overrides = numbers_meant(config.get("overrides") or {})   # "2e-4" (YAML 1.1) is 0.0002
        self.cfg = {t: resolve(t, self.overrides) for t in self.tasks}
        self.methods = self._methods(config["methods"])
        self.mcfg = {(t, m): resolve(t, self.overrides, m) for m in self.methods for t in self.method_tasks(m)}
        if 5 in config["tables"] and config["sweep_task"] not in self.tasks:
            raise ConfigError(f"sweep_task {config['sweep_task']!r} is not among tasks {self.tasks}")
        dr = config.get("dose_response") or {}
        for t in dr.get("tasks", []):
            if t not in self.tasks:
                raise ConfigError(f"dose_response.tasks: {t!r} is not among tasks {self.tasks}")
        for m in dr.get("methods") or []:
            if m not in self.methods:
                raise ConfigError(f"dose_response.methods: {m!r} is not among the configured methods "
                                  f"{list(self.methods)}")
            self._check_combines("dose_response.methods", m)
        self._check_control()
        self._check_tuning()

    @staticmethod
    def _check_combines(key: str, method: str) -> None:
        """A study of the add-ons (dose-response, tuning) names only methods combined with them."""
        if not get_method(method).combines_addons:
            raise ConfigError(f"{key}: {method!r} is not combined with the add-ons (it runs alone)")

    def _canonical_methods(self, methods):
        """The config's methods with every ``module:Class`` path registered and replaced by its id."""
        from .methods.registry import canonical as canonical_method

        self.method_paths = {}
        if isinstance(methods, list):
            methods = {m: "all" for m in methods}
        out = {}
        for m, tasks in methods.items():
            mid = canonical_method(m)
            if mid != m:
                self.method_paths[mid] = m
            out[mid] = tasks
        return out

    def _methods(self, methods) -> dict[str, list[str]]:
        """``methods``: a list (each method on every configured task of a kind it runs on) or a mapping
        ``{method: [tasks] | all}``."""
        known = method_ids()
        out = {}
        for m, tasks in methods.items():
            if m not in known:
                raise ConfigError(f"unknown method {m!r}; registered: {', '.join(known) or 'none'}")
            kinds, method = method_kinds(m, self.scale), get_method(m)
            if tasks == "all":
                out[m] = [t for t in self.tasks
                          if get_task(t).kind in kinds and method.compresses(self.original_arch(t))]
                continue
            for t in tasks:
                if t not in self.tasks:
                    raise ConfigError(f"methods.{m}: task {t!r} is not among tasks {self.tasks}")
                if get_task(t).kind not in kinds:
                    raise ConfigError(f"methods.{m}: {m} does not run on {get_task(t).kind} tasks such as {t}")
                if not method.compresses(self.original_arch(t)):
                    raise ConfigError(f"methods.{m}: {m} compresses {'/'.join(method.originals)}; the Original of "
                                      f"{t} is {self.original_arch(t)}")
            out[m] = list(tasks)
        return out

    def plugin_env(self) -> dict[str, str]:
        """The environment every job needs to know the config's module:Class add-ons and methods."""
        from .methods.registry import ENV as METHODS_ENV
        from .mi.registry import ENV as ADDONS_ENV

        env = {ADDONS_ENV: self.addon_paths, METHODS_ENV: self.method_paths}
        return {k: ",".join(sorted(set(v.values()))) for k, v in env.items() if v}

    # ---- configuration -------------------------------------------------------------------------------
    def original_arch(self, task: str) -> str | None:
        """The backbone of a task's Original generator (its teacher section's ``arch``)."""
        return self.cfg[task]["teachers"]["original"].get("arch")

    def method_tasks(self, method: str) -> list[str]:
        return self.methods[method]

    def method_addons(self, method: str, among=None) -> list[str]:
        """The configured add-ons a method runs with (``among`` restricts them): all of them, or only 'none'
        for a method that is not combined with the add-ons (``Method.combines_addons``: Slimming)."""
        addons = [a for a in self.config["addons"] if among is None or a in among]
        return addons if get_method(method).combines_addons else [a for a in addons if a == "none"]

    def stages(self, task: str, method: str):
        if (task, method) not in self.mcfg:
            raise ValueError(f"method {method} does not run on {task} in this configuration "
                             f"(it runs on: {', '.join(self.methods.get(method, [])) or 'nothing'})")
        return get_method(method).checked_stages(self.mcfg[(task, method)])

    def default_lambda(self, task: str) -> float:
        return self.cfg[task]["addon"]["lambda_mi"]

    def selection(self, method: str) -> str:
        """The checkpoint selection of a method's runs: ``checkpoint_selection``, except "final" for a method
        whose student is no training trajectory (GAN-Compression's searched sub-network; its protocol)."""
        chosen = self.config.get("checkpoint_selection", "final")
        return chosen if get_method(method).keeps_snapshots else "final"

    def overrides_json(self, job: str) -> str:
        """The overrides a job of kind ``job`` (a key of ``JOB_SECTIONS``) is given: those of the config sections
        it reads. A job's ``params`` are these, so Snakemake reruns it only when one of them changes (all of
        them would rerun the evaluation networks and the teachers for ``omgd.iters``)."""
        return self._json(self.overrides, JOB_SECTIONS[job])

    # ---- files --------------------------------------------------------------------------------------
    def data_file(self, task: str) -> str:
        """Prepared task data: the npz of a mini task, the image index of a paper task."""
        return f"resources/data/{task}.{'json' if get_task(task).scale == 'paper' else 'npz'}"

    def evalnet(self, task: str) -> str:
        """The network that scores a task (mini: trained in the DAG; paper: weights from their rule)."""
        from .data.paper_datasets import FID_WEIGHTS, weights_file

        backend = get_task(task).backend
        if backend == "fid_inception":
            return weights_file(FID_WEIGHTS[self.cfg[task]["eval"]["fid_mode"]])
        return {"miou_drn": weights_file("drn_d_105_cityscapes"), "miou_segmenter": "results/evalnets/segmenter.pt",
                "fd_fmnist": "results/evalnets/feature.pt"}[backend]

    def perceptual(self, task: str) -> str:
        from .data.paper_datasets import weights_file

        return weights_file("vgg16") if self.scale == "paper" else "results/evalnets/perceptual.pt"

    def teacher_path(self, task: str, role: str = "original") -> str:
        """A trained teacher, or a released one imported by the import_teacher rule (teachers.<role>.source)."""
        source = self.cfg[task]["teachers"][role].get("source", "train")
        if source == "train":
            return f"results/teachers/{task}/{role}/generator.pt"
        return f"resources/teachers/{source}/generator.pt"

    def needs_real_stats(self, task: str) -> bool:
        return get_task(task).backend in ("fd_fmnist", "fid_inception")

    def variant(self, scope: str, seed: int | None = None, addon: str | None = None, lam=None, arms: str = "") -> str:
        if scope == "task":
            return "shared"
        if scope == "seed":
            return f"shared/seed{seed}"
        return f"{addon}_lam{'0' if addon == 'none' else lam_str(lam)}{arms}/seed{seed}"

    def run_dir(self, task, method, addon, lam, seed, arms: str = "") -> str:
        return f"results/runs/{task}/{method}/{self.variant('run', seed, addon, lam, arms)}"

    def arm_overrides(self, method: str, arms: str, addon: str | None = None) -> dict:
        """The overrides a run's arms add to the configured ones."""
        out: dict = {}
        for arm in arm_list(arms):
            if trial := TRIAL_ARM.fullmatch(arm):
                out.update(self.trial_values(addon, int(trial.group(1))))
            elif arm == "nodistill":
                keys = get_method(method).distill_keys
                if not keys:
                    raise ConfigError(f"method {method} declares no distill_keys: it has no 'nodistill' arm")
                out.update({f"{method}.{k}": 0.0 for k in keys})
            elif arm == "frozen":
                out["addon.vem.train_energy"] = False
            else:
                raise ConfigError(f"unknown arm {arm!r}; choose from {sorted(ARMS)}")
        return out

    def run_overrides_json(self, method: str, arms: str = "", addon: str | None = None) -> str:
        """A run-scoped method job's: the method's own section, the add-ons' and the shared ones, with the arms'."""
        return self._json({**self.overrides, **self.arm_overrides(method, arms, addon)},
                          (method, "addon", *JOB_SECTIONS["method"]))

    @staticmethod
    def _json(overrides: dict, sections) -> str:
        return json.dumps({k: v for k, v in overrides.items() if str(k).split(".")[0] in sections}, sort_keys=True)

    def stage_file(self, task: str, method: str, stage, variant: str) -> str:
        final = stage == self.stages(task, method)[-1]
        return f"results/runs/{task}/{method}/{variant}/{'student' if final else stage.name}.pt"

    def stage_inputs(self, task: str, method: str, stage_name: str, variant: str) -> dict[str, str]:
        """The files a stage job reads: data, the evaluation network, and what it ``needs``."""
        stages = {s.name: s for s in self.stages(task, method)}
        if stage_name not in stages:
            raise ValueError(f"method {method} has no stage {stage_name!r} on {task}; it has {sorted(stages)}")
        stage = stages[stage_name]
        scope, addon, lam, seed, arms = parse_variant(variant)
        if scope != stage.scope:
            raise ValueError(f"stage {stage_name} of {method} has scope {stage.scope}, not {scope} ({variant})")
        seed = self.config["teacher_seed"] if seed is None else seed
        out = {"data": self.data_file(task), "evalnet": self.evalnet(task)}
        for need in stage.needs:
            if need == "original":
                out[need] = self.teacher_path(task)
            elif need in SHARED_WEIGHTS:           # paper scale only (the mini scale has no such file)
                if self.scale == "paper":
                    from .data.paper_datasets import weights_file

                    out[need] = weights_file(SHARED_WEIGHTS[need])
            elif need == "perceptual":
                out[need] = self.perceptual(task)
            else:
                dep = stages[need]
                out[need] = self.stage_file(task, method, dep, self.variant(dep.scope, seed, addon, lam, arms))
        return out

    def stage_args(self, task: str, method: str, stage_name: str, variant: str) -> str:
        """The stage command's arguments: stage, seed, inputs, and for a run-scoped stage the run's add-on
        and lambda_MI."""
        scope, addon, lam, seed, _ = parse_variant(variant)
        seed = self.config["teacher_seed"] if seed is None else seed
        needs = {k: v for k, v in self.stage_inputs(task, method, stage_name, variant).items()
                 if k not in ("data", "evalnet")}
        run = [] if scope != "run" else [f"--addon {addon}"] + ([] if addon == "none" else [f"--lambda-mi {lam}"])
        return " ".join([f"--stage {stage_name} --seed {seed}", *run, *(f"--input {k}={v}" for k, v in needs.items())])

    def variant_overrides_json(self, method: str, variant: str) -> str:
        """The overrides of a stage job: the configured ones, plus a run's arms for a run-scoped stage."""
        scope, addon, _, _, arms = parse_variant(variant)
        if scope == "run":
            return self.run_overrides_json(method, arms, addon)
        return self._json(self.overrides, (method, *JOB_SECTIONS["method"]))   # no add-on before the run's stages

    # ---- tables --------------------------------------------------------------------------------------
    def table_tasks(self, n: int) -> list[str]:
        if n == 5:
            return [self.config["sweep_task"]]
        return [t for t in self.tasks if n == 4 or get_task(t).kind == TABLE_KINDS[n]]

    def original_metrics(self, task: str) -> str:
        return f"results/teachers/{task}/original/metrics.json"

    def table_metrics(self, n: int) -> list[str]:
        """Every metrics.json a table needs (its rows x seeds)."""
        out = []
        for task in self.table_tasks(n):
            if n in (1, 2, 3):
                out.append(self.original_metrics(task))
            for method, tasks in self.methods.items():
                if task not in tasks:
                    continue
                for addon in self.method_addons(method, ("none", "vem") if n in (3, 5) else None):
                    lams = [self.default_lambda(task)]
                    if n == 5 and addon == "vem":
                        lams = self.config["lambda_mi_sweep"] or lams
                    for lam in lams:
                        for seed in self.config["seeds"]:
                            out.append(os.path.join(self.run_dir(task, method, addon, lam, seed), "metrics.json"))
        return out

    def latency_metrics(self) -> list[str]:
        """The metrics files of every table's rows and every task's Original (``results/latency.csv``)."""
        out = [self.original_metrics(t) for t in self.tasks]
        for n in self.config["tables"]:
            out += self.table_metrics(n)
        return list(dict.fromkeys(out))

    def table_curves(self, n: int) -> list[str]:
        """Learning curves of the trained runs (an imported teacher has none)."""
        out = []
        for m in self.table_metrics(n):
            task = m.split("/")[2]
            if m == self.original_metrics(task) and self.teacher_path(task).startswith("resources/"):
                continue
            out.append(m.replace("metrics.json", "curve.csv"))
        return out

    def table_quality(self, n: int) -> list[str]:
        if self.scale == "paper":
            return []
        out = ["results/evalnets/feature.json"]
        if any(get_task(t).backend == "miou_segmenter" for t in self.table_tasks(n)):
            out.append("results/evalnets/segmenter.json")
        return out

    def dose_response_metrics(self) -> list[str]:
        """Every metrics.json of the dose-response: per task, each method there alone and with every add-on
        at every lambda (dose_response: tasks, lambdas, addons, seeds; methods, default every configured one)."""
        dr = self.config["dose_response"]
        methods = dr.get("methods") or [m for m in self.methods if get_method(m).combines_addons]
        out = []
        for task in dr["tasks"]:
            for method, tasks in self.methods.items():
                if method not in methods or task not in tasks:
                    continue
                cells = [("none", 0)] + [(a, lam) for a in dr["addons"] for lam in dr["lambdas"]]
                out += [os.path.join(self.run_dir(task, method, a, lam, seed), "metrics.json")
                        for a, lam in cells for seed in dr["seeds"]]
        return out

    # ---- positive control ------------------------------------------------------------------------------
    def _check_control(self) -> None:
        """The control's tasks and methods exist here, and every arm's configuration resolves and passes its
        checks (a job would reject it otherwise)."""
        c = self.config.get("control") or {}
        for t in c.get("tasks", []):
            if t not in self.tasks:
                raise ConfigError(f"control.tasks: {t!r} is not among tasks {self.tasks}")
        for m in c.get("methods", []):
            if m not in self.methods:
                raise ConfigError(f"control.methods: {m!r} is not among the configured methods {list(self.methods)}")
        for t in c.get("tasks", []):             # a control task without a control method would yield nothing
            if not any(t in self.methods[m] for m in c.get("methods", [])):
                raise ConfigError(f"control.tasks: none of control.methods {c.get('methods', [])} runs on {t!r}")
        for task, method, addon, arms in self._control_cells():
            resolve(task, {**self.overrides, **self.arm_overrides(method, arms, addon)}, method)

    def _control_cells(self) -> list[tuple[str, str, str, str]]:
        """(task, method, add-on, arms) of the control: the method in full, no distillation, each add-on as
        the only teacher signal, and VEM so with its energy net frozen."""
        c = self.config.get("control") or {}
        out = []
        for task in c.get("tasks", []):
            for method in c.get("methods", []):
                if task not in self.methods.get(method, []):
                    continue
                cells = [("none", ""), ("none", "+nodistill")] + [(a, "+nodistill") for a in c["addons"]]
                if "vem" in c["addons"]:
                    cells.append(("vem", "+nodistill+frozen"))
                out += [(task, method, a, arms) for a, arms in cells]
        return out

    def control_metrics(self) -> list[str]:
        seeds = (self.config.get("control") or {}).get("seeds", [])
        return [os.path.join(self.run_dir(t, m, a, self.default_lambda(t), s, arms), "metrics.json")
                for t, m, a, arms in self._control_cells() for s in seeds]

    # ---- add-on tuning (vem.tuning) -------------------------------------------------------------------
    def _check_tuning(self) -> None:
        """Draw every add-on's trials; the tuning tasks, methods and add-ons exist here, one tuning task per
        task kind, and every trial's configuration resolves and passes its checks on every task it may reach
        (the tuning task and, once chosen, every task of that kind)."""
        c = self.tuning = fixed_dims_removed(self.config.get("tuning") or {})
        nulled = nulled_dims(self.config.get("tuning") or {})
        self.trials: dict[str, list[dict]] = {}
        self.tuned_addons: list[str] = []
        if not c.get("tasks"):
            return
        kinds: dict[str, str] = {}
        for t in c["tasks"]:
            if t not in self.tasks:
                raise ConfigError(f"tuning.tasks: {t!r} is not among tasks {self.tasks}")
            k = get_task(t).kind
            if k in kinds:
                raise ConfigError(f"tuning.tasks: {kinds[k]} and {t} are both {k}; one tuning task per task kind "
                                  "(its choice applies to every task of the kind)")
            kinds[k] = t
        for m in c["methods"]:
            if m not in self.methods:
                raise ConfigError(f"tuning.methods: {m!r} is not among the configured methods {list(self.methods)}")
            self._check_combines("tuning.methods", m)
            if not any(t in self.methods[m] for t in c["tasks"]):    # else it would be left out silently
                raise ConfigError(f"tuning.methods: {m!r} runs on none of tuning.tasks {c['tasks']}")
        # the add-ons tuned: those of tuning.addons that the run has (a run restricted to fewer add-ons tunes fewer)
        self.tuned_addons = [a for a in c["addons"] if a in self.config["addons"]]
        for a in self.tuned_addons:
            if a not in (c.get("space") or {}):
                raise ConfigError(f"tuning.addons: {a!r} has no search space (tuning.space.{a})")
            if not c["space"][a] and nulled.get(a):
                raise ConfigError(f"tuning.space.{a}: every dimension is null; leave {a} out of tuning.addons "
                                  "instead")
            try:
                self.trials[a] = sample_trials(a, c["space"][a], c["trials"], c.get("sampler_seed", 0))
            except ValueError as e:
                raise ConfigError(str(e)) from None
        # the config keys left out of a space (lambda_mi is the run's, no config key) must be ones (not typos)
        left_out = {a: [k for k in nulled.get(a, []) if k != LAMBDA] for a in self.tuned_addons}
        for m in c["methods"]:
            for task in self.methods[m]:
                if get_task(task).kind not in kinds:
                    continue
                base = resolve(task, self.overrides, m) if any(left_out.values()) else {}
                for a in self.tuned_addons:
                    for key in left_out[a]:
                        node = base
                        for part in key.split("."):
                            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
                        if node is _MISSING:
                            raise ConfigError(f"tuning.space.{a}.{key}: null leaves a dimension out, but {task} "
                                              f"({m}) has no config key {key!r}")
                    # every drawn trial, and each dimension at its bounds / every choice (what the space admits)
                    probes = [(f"trial {k} {self.trials[a][k]}", self.trial_values(a, k))
                              for k in range(1, c["trials"])]
                    for key, dist in c["space"][a].items():
                        if key == LAMBDA:
                            continue
                        (_, arg), = dist.items()
                        probes += [(f"tuning.space.{a}.{key} = {v!r}", {key: v}) for v in arg]
                    for what, values in probes:
                        try:
                            resolve(task, {**self.overrides, **values}, m)
                        except ConfigError as e:
                            raise ConfigError(f"tuning: {what} on {task} ({m}): {e}") from None

    def trial_values(self, addon: str | None, k: int) -> dict:
        """The config overrides of an add-on's tuning trial k (its lambda_mi is in the run's name instead)."""
        if addon not in self.trials:
            raise ConfigError(f"arm +t{k}: add-on {addon!r} is not tuned here (tuning.addons: "
                              f"{list(self.trials)})")
        if not 0 <= k < len(self.trials[addon]):
            raise ConfigError(f"arm +t{k}: {addon} has trials 0..{len(self.trials[addon]) - 1} (tuning.trials)")
        return {key: v for key, v in self.trials[addon][k].items() if key != LAMBDA}

    def trial_lambda(self, task: str, addon: str, k: int) -> float:
        return float(self.trials[addon][k].get(LAMBDA, self.default_lambda(task)))

    def trial_run_dir(self, task: str, method: str, addon: str, k: int, seed: int) -> str:
        """Trial 0 is the configured run itself (no arm)."""
        return self.run_dir(task, method, addon, self.trial_lambda(task, addon, k), seed, f"+t{k}" if k else "")

    def tuning_methods(self) -> list[str]:
        """The methods tuned: those of tuning.methods on a tuning task, if the run has an add-on to tune."""
        c = self.tuning
        # _check_tuning refused a tuned method that runs on no tuning task
        return list(c["methods"]) if c.get("tasks") and self.tuned_addons else []

    def tuning_spec(self, method: str) -> dict:
        """What ``python -m vem tune`` scores: every trial run of the method (its curve on the val split)."""
        c = self.tuning
        trials = []
        for task in c["tasks"]:
            if task not in self.methods.get(method, []):
                continue
            for a in self.tuned_addons:
                for k in range(c["trials"]):
                    for seed in c["seeds"]:
                        trials.append({
                            "task": task, "kind": get_task(task).kind, "addon": a, "trial": k, "seed": seed,
                            "lambda_mi": self.trial_lambda(task, a, k), "values": self.trial_values(a, k),
                            "curve": os.path.join(self.trial_run_dir(task, method, a, k, seed), "curve.csv"),
                            "scale": get_task(task).scale, "metric": f"{get_task(task).backend} on val",
                            "higher_is_better": get_task(task).higher_is_better})
        if not trials:
            raise ValueError(f"method {method} runs on none of tuning.tasks {c.get('tasks')}")
        return {"method": method, "trials": trials}

    def tuning_curves(self, method: str) -> list[str]:
        return [t["curve"] for t in self.tuning_spec(method)["trials"]]

    def tuned_metrics(self, method: str, choice: dict, n: int = 4) -> list[str]:
        """The runs of table n with the add-ons' chosen trials (``results/tuning/<method>.json`` "choice"), on
        every task of a tuned kind, over the evaluation seeds; a chosen trial 0 is the default run itself."""
        out = []
        for task in self.table_tasks(n):
            if task not in self.methods.get(method, []):
                continue
            for a, ch in choice.get(get_task(task).kind, {}).items():
                if a in self.config["addons"] and ch["trial"]:
                    out += [os.path.join(self.trial_run_dir(task, method, a, ch["trial"], s), "metrics.json")
                            for s in self.config["seeds"]]
        return out

    # ---- figures -------------------------------------------------------------------------------------
    def _default_runs(self, task: str, addons) -> list[tuple[str, str, list[str]]]:
        """(method, add-on, run dirs over the seeds) at the default lambda, for the given add-ons."""
        out = []
        for method, tasks in self.methods.items():
            if task not in tasks:
                continue
            for addon in self.method_addons(method, addons):
                dirs = [self.run_dir(task, method, addon, self.default_lambda(task), s) for s in self.config["seeds"]]
                out.append((method, addon, dirs))
        return out

    def figures(self) -> list[str]:
        """The figures `rule all` renders (PNG; a PDF twin beside each)."""
        out = [f"results/figures/{f}.png" for f in ("figure2", "figure3") if self._figure_tasks(f)]
        out += [f"results/figures/curves_{t}.png" for t in self.tasks]
        if "vem" in self.config["addons"]:
            out.append("results/figures/vem_diagnostics.png")
        if len(self.config["addons"]) > 1:
            out.append("results/figures/addon_effects.png")
        return out

    def _figure_tasks(self, name: str) -> list[str]:
        """Figure 2 shows the image-to-image tasks, Figure 3 the unconditional ones."""
        uncond = name == "figure3"
        return [t for t in self.tasks if (get_task(t).kind == "unconditional") == uncond]

    def figure_spec(self, name: str) -> dict:
        """What a figure draws (``python -m vem figure --spec``): paths and labels."""
        if name in ("figure2", "figure3"):
            panels = []
            for task in self._figure_tasks(name):
                cols = [["Original", f"results/teachers/{task}/original/images.zip"]]
                cols += [[label(m, a), os.path.join(dirs[0], "images.zip")]
                         for m, a, dirs in self._default_runs(task, ("none", "vem"))]
                panels.append({"task": task, "data": self.data_file(task), "columns": cols})
            return {"panels": panels, "n": 4, "overrides": self.overrides}
        if name.startswith("curves_"):
            task = name.removeprefix("curves_")
            cells = [{"method": label(m, "none"), "label": label(m, a), "curves": [f"{d}/curve.csv" for d in dirs]}
                     for m, a, dirs in self._default_runs(task, self.config["addons"])]
            metric = {"fd": "Frechet distance (lower is better)", "miou": "mIoU (higher is better)"}
            return {"task": task, "metric": metric[get_task(task).metric], "cells": cells}
        if name == "vem_diagnostics":
            rows = [{"label": f"{task} {label(m, a)}", "curves": [f"{d}/curve.csv" for d in dirs]}
                    for task in self.tasks for m, a, dirs in self._default_runs(task, ("vem",))]
            return {"rows": rows}
        if name == "addon_effects":
            return {"table": "results/table4.csv"}
        raise ValueError(f"unknown figure {name!r}")

    def figure_inputs(self, name: str) -> list[str]:
        spec = self.figure_spec(name)
        if name in ("figure2", "figure3"):
            return [p["data"] for p in spec["panels"]] + [z for p in spec["panels"] for _, z in p["columns"]]
        if name.startswith("curves_"):
            return [c for cell in spec["cells"] for c in cell["curves"]]
        if name == "vem_diagnostics":
            return [c for r in spec["rows"] for c in r["curves"]]
        return [spec["table"]]

"""Fair add-on tuning on the held-out val split (torch-free): the trials, their scores, the choice.

Every add-on gets the same budget: ``trials`` configurations per (method, task kind), trial 0 being the
configured (paper-default) values and trials 1.. drawn at random from the add-on's search space with a
fixed sampler seed. Each trial trains the student on a tuning task of that kind and is scored by the last
val point of its learning curve (the val split is held out of the training images; the test split is
never read). The best trial per (method, kind, add-on) is chosen (ties: the lower trial, so the defaults
win a tie); the tables then show that add-on's rows with the chosen values beside its default rows.

A search space maps dotted run-config keys (``addon.vem.lr``; ``lambda_mi`` for the add-on's weight) to
one of ``{log: [lo, hi]}`` (log-uniform), ``{uniform: [lo, hi]}``, ``{int: [lo, hi]}`` (inclusive) or
``{choice: [v, ...]}``. Drawn floats keep 3 significant digits (readable run names and configs).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from pathlib import Path

import numpy as np

from .utils import atomic_write_text

LAMBDA = "lambda_mi"
TRIAL_ARM = re.compile(r"t(\d+)")   # a run's arm "+t<k>": the add-on's tuning trial k
DISTRIBUTIONS = ("log", "uniform", "int", "choice")


def _round(x: float) -> float:
    return float(f"{x:.3g}")


def check_space(addon: str, space: dict) -> None:
    """Every dimension has one known distribution with valid bounds; a clear error names the bad one."""
    if not isinstance(space, dict) or not space:
        raise ValueError(f"tuning.space.{addon}: expects a mapping of config keys to distributions, got {space!r}")
    for key, dist in space.items():
        where = f"tuning.space.{addon}.{key}"
        if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
            raise ValueError(f"{where}: expects one of {{{', '.join(d + ': ...' for d in DISTRIBUTIONS)}}}, "
                             f"got {dist!r}")
        kind, arg = next(iter(dist.items()))
        parts = key.split(".")
        if key == f"addon.{LAMBDA}":
            raise ValueError(f"{where}: the run's {LAMBDA} overrides addon.{LAMBDA}; tune {LAMBDA!r} instead")
        if parts[0] == "addon" and len(parts) > 2 and parts[1] != addon:
            raise ValueError(f"{where}: an option of add-on {parts[1]!r}, which the {addon} trials do not run")
        if kind == "choice":
            if not isinstance(arg, list) or not arg:
                raise ValueError(f"{where}: choice expects a non-empty list, got {arg!r}")
            if key == LAMBDA and not all(isinstance(v, (int, float)) and v > 0 for v in arg):
                raise ValueError(f"{where}: lambda_mi must stay > 0, got {arg!r}")
            continue
        if (not isinstance(arg, list) or len(arg) != 2 or not all(isinstance(v, (int, float)) for v in arg)
                or not arg[0] <= arg[1]):
            raise ValueError(f"{where}: {kind} expects [low, high] with low <= high, got {arg!r}")
        if kind == "log" and arg[0] <= 0:
            raise ValueError(f"{where}: log expects positive bounds, got {arg!r}")
        if kind == "int" and not all(float(v).is_integer() for v in arg):
            raise ValueError(f"{where}: int expects integer bounds, got {arg!r}")
        if key == LAMBDA and arg[0] <= 0:
            raise ValueError(f"{where}: lambda_mi must stay > 0, got {arg!r}")


def fixed_dims_removed(tuning: dict) -> dict:
    """The tuning section with every space dimension set to null left out: config files merge key by key, so a
    config of one's own fixes a default dimension at its configured value by setting it to null."""
    if not tuning.get("space"):
        return tuning
    return {**tuning, "space": {a: {k: v for k, v in (dims or {}).items() if v is not None}
                                for a, dims in tuning["space"].items()}}


def nulled_dims(tuning: dict) -> dict[str, list[str]]:
    """Per add-on, the space's dimensions set to null (those ``fixed_dims_removed`` leaves out)."""
    return {a: [k for k, v in (dims or {}).items() if v is None] for a, dims in (tuning.get("space") or {}).items()}


def sample_trials(addon: str, space: dict, n: int, seed: int) -> list[dict]:
    """``n`` trials of an add-on: ``[{}, {key: value, ...}, ...]``; trial 0 = the configured values.
    The same (addon, space, n, seed) always gives the same trials; each add-on has a stream of its own."""
    check_space(addon, space)
    rng = np.random.default_rng([seed, zlib.crc32(addon.encode())])
    trials: list[dict] = [{}]
    for _ in range(n - 1):
        t = {}
        for key in sorted(space):
            kind, arg = next(iter(space[key].items()))
            if kind == "log":
                t[key] = _round(math.exp(rng.uniform(math.log(arg[0]), math.log(arg[1]))))
            elif kind == "uniform":
                t[key] = _round(rng.uniform(arg[0], arg[1]))
            elif kind == "int":
                t[key] = int(rng.integers(int(arg[0]), int(arg[1]) + 1))
            else:
                t[key] = arg[int(rng.integers(len(arg)))]
        trials.append(t)
    return trials


def val_score(curve_csv) -> float:
    """A trial's score: the last finite val point of its learning curve (NaN if there is none)."""
    import pandas as pd

    df = pd.read_csv(curve_csv)
    if "val" not in df:
        raise ValueError(f"{curve_csv}: a learning curve needs a 'val' column, has {list(df.columns)}")
    v = df["val"].to_numpy(float)
    v = v[np.isfinite(v)]
    return float(v[-1]) if len(v) else float("nan")


def choose(scores: dict[int, float], higher_is_better: bool) -> int:
    """The best trial (mean score over its seeds); a non-finite score never wins; ties -> the lower trial."""
    finite = {k: s for k, s in scores.items() if np.isfinite(s)}
    if not finite:
        return min(scores)
    sign = -1.0 if higher_is_better else 1.0
    return min(finite, key=lambda k: (sign * finite[k], k))


def render_tuning(spec: dict, out) -> list[str]:
    """``results/tuning/<method>.csv`` (every trial run: its values and val score), ``.json`` (the choice per
    task kind and add-on) and ``.md``. ``spec``: {"method", "trials": [{task, kind, addon, trial, seed,
    lambda_mi, values, curve, higher_is_better}, ...]}."""
    import pandas as pd

    rows = []
    for t in spec["trials"]:
        rows.append({"scale": t.get("scale", ""), "metric": t.get("metric", ""),
                     "method": spec["method"], "kind": t["kind"], "task": t["task"], "addon": t["addon"],
                     "trial": t["trial"], "seed": t["seed"], "lambda_mi": t["lambda_mi"],
                     "values": json.dumps(t["values"], sort_keys=True), "val": val_score(t["curve"]),
                     "higher_is_better": t["higher_is_better"], "curve": t["curve"]})
    df = pd.DataFrame(rows)
    if df.empty:
        raise ValueError(f"tuning {spec['method']}: no trials")
    choice: dict = {}
    chosen = set()
    for (kind, addon), g in df.groupby(["kind", "addon"], sort=True):
        mean = g.groupby("trial")["val"].mean()
        k = choose(mean.to_dict(), bool(g["higher_is_better"].iloc[0]))
        first = g[g["trial"] == k].iloc[0]
        choice.setdefault(kind, {})[addon] = {
            "trial": int(k), "lambda_mi": float(first["lambda_mi"]), "values": json.loads(first["values"]),
            "val": float(mean[k]), "val_default": float(mean.get(0, math.nan)), "tasks": sorted(set(g["task"])),
            "trials": int(g["trial"].nunique())}
        chosen.add((kind, addon, k))
    df["chosen"] = [(r.kind, r.addon, r.trial) in chosen for r in df.itertuples()]
    out = Path(out)
    atomic_write_text(out, df.to_csv(index=False))
    atomic_write_text(out.with_suffix(".json"),
                      json.dumps({"method": spec["method"], "score": "last val point of the learning curve "
                                  "(val split, held out of training; test never read)", "choice": choice,
                                  "scale": sorted(set(df["scale"])), "metric": sorted(set(df["metric"]))},
                                 indent=1, sort_keys=True) + "\n")
    lines = [f"# Add-on tuning for {spec['method']} (val split)", "",
             "Every add-on had the same budget: the trials below per task kind (trial 0 = the configured, "
             "paper-default values; the others drawn from the add-on's search space). Score: the last val point "
             "of each trial's learning curve (held-out part of the training images; the test split is never "
             "read). Chosen: the best mean over the tuning seeds, ties to the lower trial. The tables show the "
             "chosen values' rows (`tuned`) beside the default rows.", ""]
    for kind, per in choice.items():
        for addon, c in per.items():
            lines.append(f"- {kind} / {addon}: trial {c['trial']} (lambda_mi {c['lambda_mi']:g}, "
                         f"{json.dumps(c['values'], sort_keys=True) if c['values'] else 'the defaults'}), "
                         f"val {c['val']:.6g} vs default {c['val_default']:.6g}, {c['trials']} trials")
    lines += ["", df.drop(columns=["higher_is_better", "curve", "method"]).to_markdown(index=False, floatfmt=".6g"),
              ""]
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines))
    return [str(out), str(out.with_suffix(".json")), str(out.with_suffix(".md"))]

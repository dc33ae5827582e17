"""Run configuration: preset YAML + the method's own YAML -> per-task resolved dict -> overrides -> checks.

``resolve(task, overrides, method)`` returns the shared sections of the task's preset
(``vem/configs/<scale>.yaml``: the Original teacher, the add-ons, the evaluation networks, data and
evaluation settings) and, with ``method``, that method's section ``cfg[<method>]`` from its own config
file (``baselines/<method>/config.yaml``; ``mini``/``paper`` sections, per-kind values, per-task deltas).
Overrides are dotted keys (``omgd.iters: 200``) applied on top; an unknown key or a value of another type
is an error naming the key. Every method override is checked against its own method's file even when
another method is resolved, so a typo never waits for the job that would use it. The resolved
configuration is then checked against JSON Schemas (ranges, allowed values: ``vem.schema``, the add-ons'
``vem.mi.options``, the method's ``schema``) and the method's cross-key rules - the same code in the
workflow (while it builds the DAG) and in every job. ``n_blocks: 0`` in an add-on section means "automatic".
Torch-free.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import yaml

from .data.tasks import TASKS, get_task
from .mi.options import config_schema as addon_schema
from .mi.options import energy_depth
from .schema import POSITIVE, TEACHER, ConfigError, check, check_teacher, choice, integer, section

CONFIG_DIR = Path(__file__).parent / "configs"
__all__ = ["CONFIG_DIR", "ConfigError", "addon_kwargs", "method_kinds", "resolve", "unflatten"]

EVALNET = section({"iters": integer(1), "batch": integer(1), "lr": POSITIVE, "width": integer(1)})
SHARED_SCHEMA = section({
    "teachers": {"type": "object", "required": ["original"], "properties": {"original": TEACHER},
                 "additionalProperties": TEACHER},
    "addon": addon_schema(),
    "evalnets": {"type": "object", "additionalProperties": EVALNET},
    "data": section({"load_size": integer(1), "crop_size": integer(1), "flip": {"type": "boolean"}}),
    # a Fréchet distance needs >= 2 images; eager latency is always timed (the model every export is checked against)
    "eval": section({"fid_mode": choice("legacy_pytorch", "clean"), "batch": integer(1), "val_images": integer(2),
                     "test_images": integer(2, nullable=True),
                     "latency": section({"backends": {"type": "array", "minItems": 1, "uniqueItems": True,
                                                      "contains": {"const": "eager"},
                                                      "items": choice("eager", "torchscript", "onnx")},
                                         "runs": integer(1), "warmup": integer(0), "threads": integer(1)})}),
}, required=False)


@functools.lru_cache(maxsize=4)
def _preset(scale: str) -> dict:
    path = CONFIG_DIR / f"{scale}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset scale {scale!r} (no {path.name})")
    return yaml.safe_load(path.read_text())


@functools.lru_cache(maxsize=32)
def _method_file(mid: str) -> dict:
    from .methods import get_method

    path = Path(get_method(mid).config_file)
    if not path.is_file():
        raise ConfigError(f"method {mid}: config file {path} does not exist")
    return yaml.safe_load(path.read_text()) or {}


def method_kinds(mid: str, scale: str) -> tuple[str, ...]:
    """The task kinds a method runs on at a scale (the kinds its config file has values for)."""
    return tuple((_method_file(mid).get(scale) or {}).get("kinds", {}))


def _method_section(mid: str, task: str, scale: str) -> dict | None:
    """The method's section for ``task`` (kind values + task delta), None if it does not run on that kind."""
    spec = get_task(task)
    sec = _method_file(mid).get(scale) or {}
    kinds = sec.get("kinds", {})
    if spec.kind not in kinds:
        return None
    return _merge(kinds[spec.kind], (sec.get("tasks") or {}).get(task) or {}, f"{mid}.")


REPLACE = "replace"   # a delta mapping with ``replace: true`` stands instead of the section (another recipe)


def _merge(base: dict, delta: dict, where: str = "") -> dict:
    """``base`` updated key by key from ``delta`` (mappings recursively; a key unknown to ``base`` is an
    error), except a delta mapping holding ``replace: true``: it replaces the whole section (e.g. a task
    whose Original is another architecture, with its own recipe keys; the schema checks the result)."""
    out = copy.deepcopy(base)
    for k, v in delta.items():
        key = f"{where}{k}"
        if k not in out:
            raise ConfigError(f"unknown config key {key!r}")
        if isinstance(out[k], dict):
            if not isinstance(v, dict):
                raise ConfigError(f"config key {key!r} must be a mapping, got {v!r}")
            if REPLACE in v:
                if v[REPLACE] is not True:
                    raise ConfigError(f"config key {key}.{REPLACE} must be true (or absent), got {v[REPLACE]!r}")
                out[k] = copy.deepcopy({kk: vv for kk, vv in v.items() if kk != REPLACE})
                continue
            out[k] = _merge(out[k], v, key + ".")
        else:
            out[k] = _coerce(key, out[k], v)
    return out


def _coerce(key: str, old, new):
    if new is None:
        return None   # null: allowed where the schema says a key is nullable (checked after the merge)
    if isinstance(old, bool) or isinstance(new, bool):
        if not isinstance(new, bool) or not isinstance(old, bool):
            raise ConfigError(f"config key {key!r} must be {type(old).__name__}, got {new!r}")
        return new
    if isinstance(old, float) and isinstance(new, int):
        new = float(new)  # an int for a float key is fine, but still range-checked below
    if old is not None and isinstance(old, (int, float, str, list)) and not isinstance(new, type(old)):
        raise ConfigError(f"config key {key!r} must be {type(old).__name__}, got {new!r}")
    if isinstance(new, (int, float)) and not isinstance(new, bool) and not new >= 0:  # NaN fails too
        raise ConfigError(f"config key {key!r} must be >= 0, got {new!r}")
    return new


def number_meant(val):
    """A string that reads as a number taken as that number: YAML 1.1 (PyYAML, Snakemake's ``--config``) reads
    "1e38" or "2e-4" as strings, where a number was meant. Other values pass through."""
    if isinstance(val, str):
        try:
            return float(val)
        except ValueError:
            pass
    return val


def override_value(text: str):
    """A ``--set KEY=VALUE`` value: read as YAML (numbers, booleans, null, lists), see ``number_meant``."""
    return number_meant(yaml.safe_load(text))


def unflatten(overrides: dict) -> dict:
    """{"omgd.iters": 5} -> {"omgd": {"iters": 5}}; nested mappings pass through; a value as ``number_meant``."""
    out: dict = {}
    for k, v in (overrides or {}).items():
        parts = str(k).split(".")
        d = out
        for p in parts[:-1]:
            if not isinstance(d.setdefault(p, {}), dict):
                raise ConfigError(f"override {k!r} conflicts with a non-mapping value given for {p!r}")
            d = d[p]
        _deep_update(d, parts[-1], numbers_meant(v))
    return out


def numbers_meant(v):
    """``number_meant`` of every value of a (nested) mapping or list."""
    if isinstance(v, dict):
        return {k: numbers_meant(x) for k, x in v.items()}
    if isinstance(v, list):
        return [numbers_meant(x) for x in v]
    return number_meant(v)


def _deep_update(d: dict, key: str, v) -> None:
    """d[key] = v, merging mappings recursively (dotted and nested forms of one section combine) and
    copying them (the caller's overrides are never modified)."""
    if isinstance(v, dict) and isinstance(d.get(key), dict):
        for kk, vv in v.items():
            _deep_update(d[key], kk, vv)
    else:
        d[key] = copy.deepcopy(v)


def _shared(task: str, scale: str) -> dict:
    spec = get_task(task)
    preset = _preset(scale)
    cfg = copy.deepcopy(preset["kinds"][spec.kind])
    for sec in ("evalnets", "data", "eval"):
        if sec in preset:
            cfg[sec] = copy.deepcopy(preset[sec])
    return _merge(cfg, preset["tasks"].get(task, {}))


def _split(delta: dict, section: dict) -> tuple[dict, dict]:
    """(the part of ``delta`` whose keys ``section`` has, the rest)."""
    mine, rest = {}, {}
    for k, v in delta.items():
        if k in section and isinstance(section[k], dict) and isinstance(v, dict) and REPLACE not in v:
            m, r = _split(v, section[k])
            if m:
                mine[k] = m
            if r:
                rest[k] = r
        elif k in section:
            mine[k] = v
        else:
            rest[k] = v
    return mine, rest


def _known_here(ov: dict, task: str, scale: str) -> tuple[dict, dict]:
    """(the task's shared configuration, the part of the overrides it has). Keys that only another task's
    recipe has (``teachers.original.channel_max``: a StyleGAN2 Original's) apply to those tasks only; a key
    that no task of the scale has is an error."""
    base = _shared(task, scale)
    mine, rest = _split(ov, base)
    for other in TASKS:
        if not rest:
            break
        if other != task and get_task(other).scale == scale:
            rest = _split(rest, _shared(other, scale))[1]
    if rest:
        path, d, sec = [], rest, base           # name the first level this task does not have (as _merge does)
        while True:
            k, v = next(iter(d.items()))
            path.append(k)
            if not (isinstance(sec, dict) and k in sec and isinstance(v, dict) and v):
                break
            d, sec = v, sec[k]
        raise ConfigError(f"unknown config key {'.'.join(path)!r}")
    return base, mine


def _check_method_override(mid: str, delta, task: str, scale: str) -> dict | None:
    """The method's section for ``task`` with the override applied (None where the method does not run on the
    task's kind). Keys of another kind's section (``omgd.teacher.iters`` for a paired task) apply to the tasks
    of that kind only, but every key must exist in some kind (the first unknown key is the error)."""
    if not isinstance(delta, dict):
        raise ConfigError(f"config key {mid!r} must be a mapping, got {delta!r}")
    kinds = (_method_file(mid).get(scale) or {}).get("kinds", {})
    if not kinds:
        raise ConfigError(f"method {mid} has no configuration at the {scale} scale")
    sec = _method_section(mid, task, scale)
    mine, rest = _split(delta, sec) if sec is not None else ({}, delta)
    if rest:
        errors = []
        for values in kinds.values():
            try:
                _merge(values, _split(rest, values)[0], f"{mid}.")
            except ConfigError as e:
                errors.append(e)
        leftover = rest
        for values in kinds.values():
            leftover = _split(leftover, values)[1]
        if errors or leftover:
            raise errors[0] if errors else ConfigError(f"unknown config key {_first_key(leftover, mid)!r}")
    return None if sec is None else _merge(sec, mine, f"{mid}.")


def _first_key(delta: dict, prefix: str) -> str:
    k, v = next(iter(delta.items()))
    return _first_key(v, f"{prefix}.{k}") if isinstance(v, dict) and v else f"{prefix}.{k}"


def resolve(task: str, overrides: dict | None = None, method: str | None = None, scale: str | None = None) -> dict:
    """The full configuration of ``task`` (and of ``method`` on it), with ``overrides`` (dotted or nested)."""
    from .methods import get_method, method_ids

    spec = get_task(task)
    scale = scale or spec.scale
    ov = unflatten(overrides or {})
    ids = set(method_ids())
    method_ov = {k: ov.pop(k) for k in list(ov) if k in ids}
    user = _user_addon_options(ov)
    cfg = _merge(*_known_here(ov, task, scale))
    sections = {mid: _check_method_override(mid, d, task, scale) for mid, d in method_ov.items()}
    cfg.update(task=task, scale=scale, kind=spec.kind)
    _check_shared(cfg)
    cfg["addon"].update(user)
    if method is not None:
        m = get_method(method)
        sec = sections.get(method) or _method_section(method, task, scale)
        if sec is None:
            raise ConfigError(f"method {method} does not run on {spec.kind} tasks such as {task} "
                              f"(it has {scale} values for: {', '.join(method_kinds(method, scale)) or 'none'})")
        cfg[method] = sec
        check(sec, m.schema, method)
        m.check(cfg)
        m.checked_stages(cfg)
    return cfg


def _user_addon_options(ov: dict) -> dict:
    """Pops the overrides of user add-ons (``addon.<id>.<key>``, vem.mi.registry) and checks them against
    their classes; the built-ins' options stay in the configuration files."""
    from .mi.registry import ADDON_IDS, check_user_options, user_addons

    sec = ov.get("addon")
    if not isinstance(sec, dict):
        return {}
    users = user_addons()
    out = {}
    for name in [k for k in sec if k not in ADDON_IDS and k in users]:
        options = sec.pop(name)
        if not isinstance(options, dict):
            raise ConfigError(f"config key 'addon.{name}' must be a mapping, got {options!r}")
        check_user_options(name, options, f"addon.{name}")
        out[name] = options
    if not sec:
        ov.pop("addon")
    return out


def image_size(cfg: dict) -> int:
    """The side of the images a resolved configuration trains on: ``data.crop_size`` (paper tasks) or the task's."""
    return cfg["data"]["crop_size"] if "data" in cfg else get_task(cfg["task"]).size


def _check_shared(cfg: dict) -> None:
    check({k: v for k, v in cfg.items() if k not in ("task", "scale", "kind")}, SHARED_SCHEMA)
    if cfg["addon"]["positive"] == "gt" and cfg["kind"] != "paired":   # unpaired, unconditional: no target image
        raise ConfigError(f"addon.positive 'gt' is impossible for the {cfg['kind']} task {cfg['task']} (no "
                          "ground-truth image per input); use 'teacher'")
    orig = cfg["teachers"]["original"]
    for role, t in cfg["teachers"].items():
        check_teacher(t, f"teachers.{role}", cfg["kind"])
        source = t.get("source", "train")
        if source != "train":
            from .pretrained import TEACHERS

            if source not in TEACHERS:
                raise ConfigError(f"teachers.{role}.source {source!r} is no released teacher; choose 'train' or "
                                  f"one of {sorted(TEACHERS)}")
            if TEACHERS[source]["task"] != cfg["task"]:
                raise ConfigError(f"teachers.{role}.source {source!r} is the Original of "
                                  f"{TEACHERS[source]['task']}, not of {cfg['task']}")
    if orig.get("arch") == "stylegan2":     # what train_stylegan2 would reject, rejected before any job runs
        if orig.get("init", "default") != "default":
            raise ConfigError(f"teachers.original.init must be 'default' for a StyleGAN2 (its own N(0, 1) weights "
                              f"with equalised learning rate), got {orig['init']!r}")
        if "batch" in orig and orig["batch"] % min(orig["batch"], 4):
            raise ConfigError(f"teachers.original.batch must be divisible by 4 (StyleGAN2's minibatch-stddev "
                              f"group), got {orig['batch']}")
    size = image_size(cfg)
    for role, t in cfg["teachers"].items():      # a U-Net halves its input num_downs times, down to 1 x 1
        if str(t.get("arch", "")).startswith("unet") and t.get("num_downs") and 2 ** t["num_downs"] > size:
            raise ConfigError(f"teachers.{role}.num_downs {t['num_downs']} is too deep for {size} px inputs "
                              f"(a U-Net halves them num_downs times: at most {size.bit_length() - 1})")
    vem = cfg["addon"].get("vem")
    if vem and vem["n_blocks"] and vem["n_blocks"] > (most := energy_depth(size)):   # the energy net would fail
        raise ConfigError(f"addon.vem.n_blocks {vem['n_blocks']} is too deep for {size} px inputs (the energy "
                          f"network halves its {-(-size // 2)} px pooled input per block: at most {most})")
    crd, n_train = cfg["addon"].get("crd"), get_task(cfg["task"]).train_inputs
    if crd and n_train and not crd["nce_k"] < n_train:    # what CRD's memory bank (vem.mi.crd) would reject
        raise ConfigError(f"addon.crd.nce_k {crd['nce_k']} must be smaller than the {n_train} training inputs of "
                          f"{cfg['task']} (CRD draws that many negatives from its memory bank)")
    if "data" in cfg and cfg["data"]["crop_size"] > cfg["data"]["load_size"]:
        raise ConfigError(f"data.crop_size {cfg['data']['crop_size']} exceeds data.load_size "
                          f"{cfg['data']['load_size']}")


def addon_kwargs(cfg: dict, addon: str, lambda_mi: float | None = None) -> dict:
    if addon == "none":
        return {}
    kw = dict(cfg["addon"].get(addon, {}))     # a user add-on without overrides: its own defaults
    kw["lambda_mi"] = cfg["addon"]["lambda_mi"] if lambda_mi is None else float(lambda_mi)
    if addon == "vem" and not kw.get("n_blocks"):
        kw["n_blocks"] = None
    return kw

"""Run configuration: preset YAML (``vem/configs/<scale>.yaml``) -> per-task resolved dict -> overrides.

Overrides are dotted keys (``omgd.iters: 200``) applied on top; an unknown key or a value of another
type is an error naming the key. ``n_blocks: 0`` in an add-on section means "automatic".
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import yaml

from .data.tasks import get_task

CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    pass


@functools.lru_cache(maxsize=4)
def _preset(scale: str) -> dict:
    path = CONFIG_DIR / f"{scale}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset scale {scale!r} (no {path.name})")
    return yaml.safe_load(path.read_text())


def _merge(base: dict, delta: dict, where: str = "") -> dict:
    out = copy.deepcopy(base)
    for k, v in delta.items():
        key = f"{where}{k}"
        if k not in out:
            raise ConfigError(f"unknown config key {key!r}")
        if isinstance(out[k], dict):
            if not isinstance(v, dict):
                raise ConfigError(f"config key {key!r} must be a mapping, got {v!r}")
            out[k] = _merge(out[k], v, key + ".")
        else:
            out[k] = _coerce(key, out[k], v)
    return out


def _coerce(key: str, old, new):
    if isinstance(old, bool) or isinstance(new, bool):
        if not isinstance(new, bool) or not isinstance(old, bool):
            raise ConfigError(f"config key {key!r} must be {type(old).__name__}, got {new!r}")
        return new
    if isinstance(old, float) and isinstance(new, int):
        new = float(new)  # an int for a float key is fine, but still range-checked below
    if isinstance(old, (int, float, str, list)) and not isinstance(new, type(old)):
        raise ConfigError(f"config key {key!r} must be {type(old).__name__}, got {new!r}")
    if isinstance(new, (int, float)) and not isinstance(new, bool) and not new >= 0:  # NaN fails too
        raise ConfigError(f"config key {key!r} must be >= 0, got {new!r}")
    return new


def unflatten(overrides: dict) -> dict:
    """{"omgd.iters": 5} -> {"omgd": {"iters": 5}}; nested mappings pass through."""
    out: dict = {}
    for k, v in (overrides or {}).items():
        parts = str(k).split(".")
        d = out
        for p in parts[:-1]:
            if not isinstance(d.setdefault(p, {}), dict):
                raise ConfigError(f"override {k!r} conflicts with a non-mapping value given for {p!r}")
            d = d[p]
        _deep_update(d, parts[-1], v)
    return out


def _deep_update(d: dict, key: str, v) -> None:
    """d[key] = v, merging mappings recursively (dotted and nested forms of one section combine) and
    copying them (the caller's overrides are never modified)."""
    if isinstance(v, dict) and isinstance(d.get(key), dict):
        for kk, vv in v.items():
            _deep_update(d[key], kk, vv)
    else:
        d[key] = copy.deepcopy(v)


def resolve(task: str, overrides: dict | None = None, scale: str | None = None) -> dict:
    """The full configuration of ``task``, with ``overrides`` (dotted or nested) applied."""
    spec = get_task(task)
    preset = _preset(scale or spec.scale)
    cfg = copy.deepcopy(preset["kinds"][spec.kind])
    cfg["evalnets"] = copy.deepcopy(preset.get("evalnets", {}))
    for section in ("data", "eval"):   # paper preset: augmentation and evaluation settings
        if section in preset:
            cfg[section] = copy.deepcopy(preset[section])
    cfg = _merge(cfg, preset["tasks"].get(task, {}))
    ov = unflatten(overrides or {})
    # overrides addressed to another kind's teachers are ignored here, but must exist somewhere
    cfg = _merge(cfg, _filter_foreign(ov, cfg, preset))
    cfg["task"] = task
    cfg["scale"] = spec.scale
    _check(cfg)
    return cfg


def _filter_foreign(ov: dict, cfg: dict, preset: dict) -> dict:
    """Drop keys valid for another task kind (e.g. teachers.omgd for paired tasks); others stay and fail."""
    teachers = ov.get("teachers")
    if not isinstance(teachers, dict):
        return ov
    known = {r for k in preset["kinds"].values() for r in k.get("teachers", {})}
    out = copy.deepcopy(ov)
    for role in list(teachers):
        if role not in cfg["teachers"] and role in known:
            del out["teachers"][role]
    return out


def _check(cfg: dict) -> None:
    for role, t in cfg["teachers"].items():
        for k in ("ngf", "batch", "snapshot_every"):
            if t[k] < 1:
                raise ConfigError(f"teachers.{role}.{k} must be >= 1, got {t[k]}")
    for k in ("student_ngf", "wide_ngf", "deep_ngf", "batch", "n_dis", "eval_every"):
        if cfg["omgd"][k] < 1:
            raise ConfigError(f"omgd.{k} must be >= 1, got {cfg['omgd'][k]}")
    if cfg["addon"]["positive"] not in ("gt", "teacher"):
        raise ConfigError(f"addon.positive must be 'gt' or 'teacher', got {cfg['addon']['positive']!r}")
    if cfg["addon"]["positive"] == "gt" and get_task(cfg["task"]).kind == "unpaired":
        raise ConfigError(f"addon.positive 'gt' is impossible for the unpaired task {cfg['task']}; use 'teacher'")
    if cfg["addon"]["vem"]["steps"] < 1:
        raise ConfigError(f"addon.vem.steps must be >= 1, got {cfg['addon']['vem']['steps']}")
    if not cfg["addon"]["vem"]["step_size"] > 0:
        raise ConfigError(f"addon.vem.step_size must be > 0, got {cfg['addon']['vem']['step_size']}")


def addon_kwargs(cfg: dict, addon: str, lambda_mi: float | None = None) -> dict:
    if addon == "none":
        return {}
    kw = dict(cfg["addon"][addon])
    kw["lambda_mi"] = cfg["addon"]["lambda_mi"] if lambda_mi is None else float(lambda_mi)
    if addon == "vem" and not kw.get("n_blocks"):
        kw["n_blocks"] = None
    return kw

"""Validation of resolved configurations with JSON Schema, reduced to one line naming the key and the value.

Torch-free on purpose: the workflow validates every run's configuration with these schemas while it
builds the DAG, and the jobs run the same checks when they resolve their configuration. Reusable
fragments for the sections several methods share (a GAN teacher recipe, the architecture keys) live here.
"""

from __future__ import annotations

import math


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range (one line naming the key)."""


# ---- fragments ---------------------------------------------------------------------------------------
def integer(minimum: int | None = None, nullable: bool = False) -> dict:
    s: dict = {"type": ["integer", "null"] if nullable else "integer"}
    if minimum is not None:
        s["minimum"] = minimum
    return s


def number(minimum: float | None = None, exclusive_minimum: float | None = None, maximum: float | None = None,
           exclusive_maximum: float | None = None) -> dict:
    s: dict = {"type": "number"}
    for k, v in (("minimum", minimum), ("exclusiveMinimum", exclusive_minimum), ("maximum", maximum),
                 ("exclusiveMaximum", exclusive_maximum)):
        if v is not None:
            s[k] = v
    return s


def choice(*values) -> dict:
    return {"enum": list(values)}


def section(properties: dict, required: bool = True) -> dict:
    """An object with exactly these keys (all required by default)."""
    return {"type": "object", "additionalProperties": False, "properties": properties,
            **({"required": sorted(properties)} if required else {})}


BOOL = {"type": "boolean"}
POSITIVE = number(exclusive_minimum=0)
NONNEG = number(minimum=0)
FRACTION = number(minimum=0, maximum=1)
NORMS = ("batch", "instance", "instance_affine", "none")
# the generator backbones' ids (vem.models.backbones.BACKBONES, which imports torch; the same set, tested)
BACKBONE_IDS = ("unet", "unet_deepest", "resnet", "mobile_resnet", "mobile_deepest_resnet", "inception",
                "slimmable_mobile_resnet", "sagan", "stylegan2")

# a GAN teacher trained from scratch by vem.train.gan (pix2pix on paired tasks, CycleGAN on unpaired ones)
TEACHER = section({
    "source": {"type": "string", "pattern": r"^(train|[a-z_]+/[a-z0-9_]+/[a-z0-9_-]+)$"},
    "arch": choice(*BACKBONE_IDS), "ngf": integer(1), "num_downs": integer(5), "n_blocks": integer(1),
    "norm": choice(*NORMS), "init": choice("default", "normal", "gcc"),
    "iters": integer(1), "batch": integer(1), "lr": POSITIVE, "decay_from": FRACTION,
    "gan_mode": choice("lsgan", "hinge", "vanilla"), "lambda_rec": NONNEG, "lambda_idt": NONNEG,
    "ndf": integer(1), "n_layers_d": integer(1), "norm_d": choice(*NORMS), "pool_size": integer(0),
    "snapshot_every": integer(1),
    # gradient accumulation over chunks of the batch (CycleGAN teachers: one GPU instead of CAT's eight)
    "micro_batch": integer(1, nullable=True),
    # SAGAN (unconditional tasks): D learning rate (TTUR), Adam betas, GCC's BN-scale L1 (sparsity pre-training)
    "lr_d": POSITIVE, "beta1": number(minimum=0, exclusive_maximum=1), "beta2": number(minimum=0, exclusive_maximum=1),
    "bn_l1": NONNEG,
    # StyleGAN2 (arch stylegan2): generator/discriminator widths, rosinality's regularisers, mixing, EMA
    "n_mlp": integer(1), "channel_multiplier": integer(1), "channel_max": integer(1), "lr_mlp": POSITIVE,
    "r1": NONNEG, "d_reg_every": integer(0), "g_reg_every": integer(0), "path_regularize": NONNEG,
    "path_batch_shrink": integer(1), "path_decay": number(exclusive_minimum=0, maximum=1),
    "mixing": FRACTION, "ema_decay": number(minimum=0, maximum=1),
}, required=False)


def check_teacher(t: dict, where: str, kind: str) -> None:
    """Rules across a teacher recipe's keys (``where`` names its section, ``kind`` is the task's)."""
    m = t.get("micro_batch")
    if m is None:
        return
    if type(m) is not int or m < 1:
        raise ConfigError(f"{where}.micro_batch must be a whole number of images >= 1 (or null), got {m!r}")
    if kind != "unpaired":
        raise ConfigError(f"{where}.micro_batch is implemented for CycleGAN teachers (unpaired tasks) only, not for "
                          f"this {kind} task's recipe; remove it (got {m})")
    if "batch" in t and t["batch"] % m:
        raise ConfigError(f"{where}.micro_batch {m} must divide {where}.batch {t['batch']}")
    for key in ("norm", "norm_d"):
        if t.get(key) == "batch":      # statistics over each chunk instead of the batch: another model
            raise ConfigError(f"{where}.micro_batch {m} needs per-image norms: {where}.{key} 'batch' normalises "
                              f"over the batch, which its chunks would change")


# ---- checking ------------------------------------------------------------------------------------------
def _rule(err) -> str:
    v, s = err.validator, err.validator_value
    return {"minimum": f"be >= {s}", "exclusiveMinimum": f"be > {s}", "maximum": f"be <= {s}",
            "exclusiveMaximum": f"be < {s}", "enum": f"be one of {s}", "type": f"be of type {s}",
            "pattern": f"match {s}", "required": "be given", "additionalProperties": "be a known key",
            "minItems": f"have >= {s} items", "maxItems": f"have <= {s} items", "uniqueItems": "have no repeated item",
            "contains": f"contain {s.get('const')!r}" if isinstance(s, dict) else ""}.get(v) or err.message


def check(instance: dict, schema: dict, where: str = "") -> None:
    """Raise :class:`ConfigError` for the first violation, e.g. ``omgd.n_dis must be >= 1, got 0``."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        _check_finite(instance, where)
        return
    err = errors[0]
    path = [str(p) for p in err.absolute_path]
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        raise ConfigError(f"unknown config key {'.'.join([where] * bool(where) + path + extra[:1])!r}")
    if err.validator == "required":
        raise ConfigError(f"config section {'.'.join([where] * bool(where) + path) or 'root'!r}: {err.message}")
    key = ".".join([where] * bool(where) + path)
    raise ConfigError(f"{key} must {_rule(err)}, got {err.instance!r}")


def _check_finite(value, where: str) -> None:
    """NaN and infinities pass JSON Schema's range keywords; no configuration value may be one."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")


def import_class_path(path: str, what: str):
    """The object a ``module:Class`` string names; ConfigError naming ``what`` if it is no such path or does
    not import (a user's add-on or method given in the configuration)."""
    import importlib
    import re

    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", path):
        raise ConfigError(f"{what} {path!r} is neither a registered {what} id nor a module:Class path")
    module, attr = path.split(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"{what} {path!r} does not import: {type(e).__name__}: {e}") from None

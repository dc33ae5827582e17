"""The add-ons' hyper-parameters: names, types, ranges and allowed values (torch-free).

One schema per add-on. :func:`vem.mi.build_addon` checks its keyword arguments against it, and the
workflow checks every run's ``addon.<name>`` section against the same schema while it builds the DAG, so
a value a job would reject is rejected by ``snakemake -n`` already.
"""

from __future__ import annotations

from ..schema import BOOL, NONNEG, POSITIVE, ConfigError, check, choice, integer, number

ADDON_IDS = ("none", "vid", "crd", "vem")

SCHEMAS: dict[str, dict] = {
    "vem": {
        "width": integer(1), "n_blocks": integer(0, nullable=True), "steps": integer(1), "step_size": POSITIVE,
        "step_ref_size": integer(1, nullable=True), "noise_std": NONNEG, "alpha": NONNEG, "lr": POSITIVE,
        "on_nonfinite": choice("raise", "skip"), "lambda_mi": NONNEG, "saturation": POSITIVE, "train_energy": BOOL,
        "betas": {"type": "array", "minItems": 2, "maxItems": 2, "items": number(0, exclusive_maximum=1)},
    },
    "vid": {"init_var": POSITIVE, "eps": POSITIVE, "mode": choice("output", "feature"),
            "mid_channels": integer(1, nullable=True), "lambda_mi": NONNEG},
    "crd": {"nce_k": integer(1), "nce_t": POSITIVE, "nce_m": number(0, exclusive_maximum=1), "feat_dim": integer(1),
            "pool": integer(1), "lambda_mi": NONNEG},
    "none": {},
}
# what the workflow's configuration holds for every add-on (the rest keep the classes' defaults)
CONFIG_KEYS = {"vem": ("width", "n_blocks", "steps", "step_size", "step_ref_size", "noise_std", "alpha", "lr",
                       "on_nonfinite", "train_energy"),
               "vid": ("init_var",), "crd": ("nce_k", "nce_t", "nce_m", "feat_dim", "pool")}
__all__ = ["ADDON_IDS", "SCHEMAS", "check_options", "config_schema", "energy_depth"]


def energy_depth(image_size: int) -> int:
    """The most residual blocks VEM's energy network can have for ``image_size`` px images: it pools them to
    ceil(size / 2) px, then each block halves that (rounding down) - to no less than 1 px."""
    return (-(-image_size // 2)).bit_length() - 1


def check_options(name: str, options: dict, where: str | None = None) -> None:
    """Raise ConfigError naming the first option of add-on ``name`` that is out of its range or set."""
    if name not in SCHEMAS:
        raise ConfigError(f"unknown add-on {name!r}; choose one of {sorted(SCHEMAS)}")
    known = {k: v for k, v in options.items() if k in SCHEMAS[name]}  # the rest: checked by the signature
    check(known, {"type": "object", "properties": SCHEMAS[name]}, where or f"addon.{name}")


def config_schema() -> dict:
    """The schema of a resolved configuration's ``addon`` section."""
    props = {name: {"type": "object", "additionalProperties": False, "required": list(keys),
                    "properties": {k: SCHEMAS[name][k] for k in keys}} for name, keys in CONFIG_KEYS.items()}
    props.update(positive=choice("gt", "teacher"), lambda_mi=NONNEG, probe_every=integer(0))
    return {"type": "object", "additionalProperties": False, "required": sorted(props), "properties": props}

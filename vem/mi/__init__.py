"""Mutual-information add-ons for any teacher -> student training loop.

>>> from vem.mi import build_addon
>>> addon = build_addon("vem", channels=1, image_size=32, width=8)   # or "vid", "crd", "none"

A user's add-on (an entry point of the ``vem.addons`` group, or "module:Class") is built the same way;
``vem.mi.registry`` says what its class must provide.

See ``vem.mi.base`` for the protocol (fit_step / loss / student_parameters / state_dict) and
``vem.mi.options`` for every add-on's hyper-parameters. The classes are imported on first use, so
``vem.mi.options`` (what the workflow checks while it builds the DAG) costs no torch import.
"""

from __future__ import annotations

import importlib
import inspect

from .options import ADDON_IDS, check_options

_WHERE = {"MIAddon": "base", "NoAddon": "base", "NonFiniteError": "base", "CRD": "crd", "VID": "vid",
          "EnergyMI": "energy", "ResnetEBM": "energy", "SNConv2d": "energy", "SNLinear": "energy",
          "langevin": "energy", "gradient_probe": "probe"}
_CLASS_OF = {"none": "NoAddon", "vid": "VID", "crd": "CRD", "vem": "EnergyMI"}
# what each add-on is told about the tensors it will see (student channels, resolution, training-set size)
_CONTEXT = {"none": {}, "vem": {"channels": "channels", "image_size": "image_size"},
            "vid": {"s_channels": "channels", "t_channels": "t_channels"},
            "crd": {"s_channels": "channels", "t_channels": "t_channels", "n_data": "n_data"}}

__all__ = ["ADDONS", "ADDON_IDS", "build_addon", "check_options", *_WHERE]


def __getattr__(name: str):
    if name == "ADDONS":
        return {k: __getattr__(v) for k, v in _CLASS_OF.items()}
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_addon(name: str, *, channels: int | None = None, image_size: int | None = None,
                n_data: int | None = None, t_channels: int | None = None, **kwargs):
    """Build an add-on by name. ``channels``/``image_size``/``n_data`` describe the tensors it will see
    (student channels, training resolution, training-set size) and are passed to the add-ons that need
    them; ``kwargs`` are the add-on's own hyper-parameters (unknown ones raise, values are range-checked)."""
    if name not in _CLASS_OF:
        from .registry import build_user, canonical

        name = canonical(name)                  # a user add-on (entry point or module:Class)
        return build_user(name, {"channels": channels, "s_channels": channels, "t_channels": t_channels or channels,
                                 "image_size": image_size, "n_data": n_data}, kwargs)
    cls = __getattr__(_CLASS_OF[name])
    if name == "none":
        if kwargs:
            raise TypeError(f"add-on 'none' takes no hyper-parameters, got {sorted(kwargs)}")
        return cls()
    unknown = sorted(set(kwargs) - set(inspect.signature(cls.__init__).parameters))
    if unknown:
        raise TypeError(f"unknown hyper-parameter(s) {unknown} for add-on {name!r}")
    given = {"channels": channels, "image_size": image_size, "n_data": n_data, "t_channels": t_channels}
    context = {arg: given[src] for arg, src in _CONTEXT[name].items() if given[src] is not None}
    return cls(**context, **kwargs)

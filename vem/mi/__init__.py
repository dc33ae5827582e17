"""Mutual-information add-ons for any teacher -> student training loop.

>>> from vem.mi import build_addon
>>> addon = build_addon("vem", channels=1, image_size=32, width=8)   # or "vid", "crd", "none"

See ``vem.mi.base`` for the protocol (fit_step / loss / student_parameters / state_dict).
"""

from __future__ import annotations

import inspect

from .base import MIAddon, NoAddon, NonFiniteError
from .crd import CRD
from .energy import EnergyMI, ResnetEBM, SNConv2d, SNLinear, langevin
from .vid import VID

ADDONS = {"none": NoAddon, "vid": VID, "crd": CRD, "vem": EnergyMI}

__all__ = ["ADDONS", "CRD", "EnergyMI", "MIAddon", "NoAddon", "NonFiniteError", "ResnetEBM", "SNConv2d",
           "SNLinear", "VID", "build_addon", "langevin"]


def build_addon(name: str, *, channels: int | None = None, image_size: int | None = None,
                n_data: int | None = None, t_channels: int | None = None, **kwargs) -> MIAddon:
    """Build an add-on by name. ``channels``/``image_size``/``n_data`` describe the tensors it will see
    (student channels, training resolution, training-set size) and are passed to the add-ons that need
    them; ``kwargs`` are the add-on's own hyper-parameters (unknown ones raise)."""
    if name not in ADDONS:
        raise ValueError(f"unknown add-on {name!r}; choose one of {sorted(ADDONS)}")
    cls = ADDONS[name]
    if name == "none":
        if kwargs:
            raise TypeError(f"add-on 'none' takes no hyper-parameters, got {sorted(kwargs)}")
        return cls()
    context = {"vem": {"channels": channels, "image_size": image_size},
               "vid": {"s_channels": channels, "t_channels": t_channels},
               "crd": {"s_channels": channels, "t_channels": t_channels, "n_data": n_data}}[name]
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise TypeError(f"unknown hyper-parameter(s) {unknown} for add-on {name!r}")
    context = {k: v for k, v in context.items() if v is not None}
    return cls(**context, **kwargs)

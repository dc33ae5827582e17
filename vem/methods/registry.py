"""Where methods come from: the ``vem.methods`` entry-point group (torch-free).

An entry point may name one :class:`~vem.methods.base.Method` subclass or a ``{id: class}`` mapping; the
project's own methods are registered as the mapping ``baselines:METHODS`` in ``pyproject.toml``. ``vem``
never imports ``baselines``: it only follows the entry points, as it would for a user's package.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from .base import Method

GROUP = "vem.methods"


@functools.cache
def _registry() -> dict[str, type[Method]]:
    out: dict[str, type[Method]] = {}
    for ep in entry_points(group=GROUP):
        obj = ep.load()
        items = obj.items() if isinstance(obj, dict) else [(getattr(obj, "id", ep.name), obj)]
        for mid, cls in items:
            if not (isinstance(cls, type) and issubclass(cls, Method)) or cls.id != mid:
                raise TypeError(f"entry point {ep.value!r} ({GROUP}) registers {cls!r} as {mid!r}: not a "
                                "vem.methods.Method subclass with that id")
            if mid in out and out[mid] is not cls:
                raise ValueError(f"method id {mid!r} is registered twice ({out[mid].__module__}, {cls.__module__})")
            out[mid] = cls
    return out


def method_ids() -> list[str]:
    return sorted(_registry())


def get_method(mid: str) -> Method:
    reg = _registry()
    if mid not in reg:
        if not reg:
            raise ValueError(f"unknown method {mid!r}: no methods are registered in the {GROUP!r} entry-point group "
                             "(install the project: pip install -e .)")
        raise ValueError(f"unknown method {mid!r}; choose one of {sorted(reg)}")
    return reg[mid]()


ADDON_NAMES = {"vid": "VID", "crd": "CRD", "vem": "VEM"}


def method_title(method: str) -> str:
    """The name tables and figures print for a measured method: the registered method's title."""
    if method == "original":
        return "Original"
    return get_method(method).title if method in method_ids() else method


def label(method: str, addon, title: str | None = None) -> str:
    """``OMGD``, ``OMGD + VEM``, ... (no add-on: the method's name alone)."""
    import math

    name = title or method_title(method)
    none = addon in ("none", "", None) or (isinstance(addon, float) and math.isnan(addon))
    return name if none else f"{name} + {ADDON_NAMES.get(addon, addon)}"

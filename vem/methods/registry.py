"""Where methods come from: the ``vem.methods`` entry-point group (torch-free).

An entry point may name one :class:`~vem.methods.base.Method` subclass or a ``{id: class}`` mapping; the
project's own methods are registered as the mapping ``baselines:METHODS`` in ``pyproject.toml``. ``vem``
never imports ``baselines``: it only follows the entry points, as it would for a user's package.

A ``module:Class`` string in the workflow's ``methods`` registers that class without installing anything
(:func:`register`); the workflow hands those paths to its jobs in ``VEM_METHODS`` (comma-separated).
"""

from __future__ import annotations

import functools
import os
from importlib.metadata import entry_points

from .base import Method

GROUP = "vem.methods"
ENV = "VEM_METHODS"


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
    for path in filter(None, os.environ.get(ENV, "").split(",")):
        _add(out, path)
    return out


def _add(reg: dict, path: str) -> str:
    from ..schema import ConfigError, import_class_path

    cls = import_class_path(path, "method")
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigError(f"method {path!r} is not a vem.methods.Method subclass")
    missing = [a for a in ("id", "title", "config_file", "schema") if not hasattr(cls, a)]
    if missing:
        raise ConfigError(f"method {path!r} lacks the class attribute(s) {missing}")
    if cls.id in reg and reg[cls.id] is not cls:
        raise ConfigError(f"method {path!r} has the id {cls.id!r} of another method ({reg[cls.id].__module__})")
    reg[cls.id] = cls
    return cls.id


def register(path: str) -> str:
    """Import a ``module:Class`` method, check it, register it; returns its id."""
    return _add(_registry(), path)


def canonical(name: str) -> str:
    """The method id of a config entry (an id, or a module:Class path, registered on the way)."""
    return register(name) if ":" in name else name


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
    if none:
        return name
    from ..mi.registry import title as addon_title

    return f"{name} + {addon_title(addon)}"

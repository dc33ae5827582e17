"""Where add-ons come from (torch-free until a user's class is imported).

* the built-ins ``none``, ``vid``, ``crd``, ``vem`` (``vem.mi.options`` holds their hyper-parameters);
* a user's package: an entry point in the ``vem.addons`` group naming an add-on class
  (``[project.entry-points."vem.addons"] hint = "my_pkg:HintAddon"``);
* a ``module:Class`` string in the workflow's ``addons`` list (or ``--addon`` of ``python -m vem stage``):
  the class is imported and registered under its ``name``; the workflow hands those paths to its jobs in
  the environment variable ``VEM_ADDONS`` (comma-separated), so every job knows the id.

A user add-on class follows the protocol of :class:`vem.mi.base.MIAddon` (subclassing it is the easy way):
``fit_step(t, s, idx)``, ``loss(t, s, idx)``, ``student_parameters()``, ``state_dict()`` and
``load_state_dict(sd)``. Its class attributes: ``name`` (the id in run folders and tables: a lower-case
identifier), optionally ``title`` (what tables print) and ``options`` (JSON-Schema properties of its
hyper-parameters, checked at ``snakemake -n`` when ``addon.<name>.<key>`` overrides set them). Its
constructor takes ``lambda_mi`` and any of ``channels``, ``s_channels``, ``t_channels``, ``image_size``,
``n_data`` (the tensors it will see; passed by name), plus its own hyper-parameters with defaults.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from importlib.metadata import entry_points

from ..schema import ConfigError, import_class_path
from .options import ADDON_IDS

GROUP = "vem.addons"
PROTOCOL = {"fit_step": ("t", "s", "idx"), "loss": ("t", "s", "idx"), "student_parameters": (),
            "state_dict": (), "load_state_dict": ("state_dict",)}
CONTEXT = ("channels", "s_channels", "t_channels", "image_size", "n_data")
TITLES = {"vid": "VID", "crd": "CRD", "vem": "VEM"}
ENV = "VEM_ADDONS"

_by_path: dict[str, type] = {}      # module:Class strings registered in this process


def check_class(cls, where: str) -> str:
    """The add-on id of ``cls``; ConfigError naming what is missing if it does not follow the protocol."""
    if not isinstance(cls, type):
        raise ConfigError(f"{where}: {cls!r} is not a class")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"{where}: {cls.__name__}.name must be a lower-case identifier (the add-on id), got {name!r}")
    if name in ADDON_IDS:
        raise ConfigError(f"{where}: {cls.__name__}.name {name!r} is a built-in add-on's id")
    missing = [m for m in PROTOCOL if not callable(getattr(cls, m, None))]
    if missing:
        raise ConfigError(f"{where}: {cls.__name__} lacks the add-on protocol method(s) {missing}")
    owner = next(k for k in cls.__mro__ if "loss" in vars(k))
    if owner.__module__ == "vem.mi.base":     # MIAddon's loss is zero: the runs would be the method alone
        raise ConfigError(f"{where}: {cls.__name__} defines no loss of its own (MIAddon's is zero: its runs would "
                          "be the method alone)")
    for meth, args in PROTOCOL.items():
        sig = inspect.signature(getattr(cls, meth)).parameters.values()
        params = [p for p in sig if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]     # after self
        var = any(p.kind == p.VAR_POSITIONAL for p in sig)
        if not var and len(params) < len(args):
            raise ConfigError(f"{where}: {cls.__name__}.{meth} must take ({', '.join(args)}), it takes "
                              f"({', '.join(p.name for p in params)})")
    init = inspect.signature(cls.__init__).parameters
    if "lambda_mi" not in init and not any(p.kind == p.VAR_KEYWORD for p in init.values()):
        raise ConfigError(f"{where}: {cls.__name__}.__init__ must accept lambda_mi")
    return name


@functools.cache
def _entry_points() -> dict[str, type]:
    out: dict[str, type] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken plug-in is named, not a traceback
            raise ConfigError(f"entry point {ep.name} = {ep.value!r} ({GROUP}) does not load: "
                              f"{type(e).__name__}: {e}") from None
        name = check_class(cls, f"entry point {ep.name} = {ep.value!r}")
        if name != ep.name:
            raise ConfigError(f"entry point {ep.name!r} ({GROUP}) registers {cls.__name__} whose name is {name!r}")
        out[name] = cls
    return out


def register(path: str) -> str:
    """Import a ``module:Class`` add-on, check it, register it; returns its id."""
    cls = import_class_path(path, "add-on")
    name = check_class(cls, f"add-on {path!r}")
    other = _entry_points().get(name) or _by_path.get(name)
    if other is not None and other is not cls:
        raise ConfigError(f"add-on {path!r} has the id {name!r} of another add-on ({other.__module__})")
    _by_path[name] = cls
    return name


def user_addons() -> dict[str, type]:
    """The user add-ons known to this process: entry points, the module:Class paths of ``$VEM_ADDONS`` and
    those registered here."""
    for path in filter(None, os.environ.get(ENV, "").split(",")):
        if path not in _env_done:
            _env_done.add(path)
            register(path)
    return {**_entry_points(), **_by_path}


_env_done: set[str] = set()


def addon_ids() -> list[str]:
    return [*ADDON_IDS, *sorted(set(user_addons()) - set(ADDON_IDS))]


def canonical(name: str) -> str:
    """The add-on id of a config entry (an id, or a module:Class path, registered on the way)."""
    if name in ADDON_IDS or name in user_addons():
        return name
    if ":" in name:
        return register(name)
    raise ConfigError(f"unknown add-on {name!r}; choose one of {addon_ids()} or give a module:Class path")


def title(name: str) -> str:
    cls = user_addons().get(name)
    return TITLES.get(name) or (getattr(cls, "title", None) if cls else None) or name


def check_user_options(name: str, options: dict, where: str) -> None:
    """A user add-on's hyper-parameters: known to its constructor, valid against its ``options`` schema."""
    from ..schema import check

    cls = user_addons()[name]
    init = inspect.signature(cls.__init__).parameters
    own = [k for k in init if k not in ("self", "lambda_mi", *CONTEXT)]
    unknown = sorted(set(options) - set(own))
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in init.values()):
        raise ConfigError(f"unknown config key '{where}.{unknown[0]}': {cls.__name__} takes {own}")
    check(options, {"type": "object", "properties": getattr(cls, "options", {}) or {}}, where)


def build_user(name: str, given: dict, kwargs: dict):
    cls = user_addons()[name]
    init = inspect.signature(cls.__init__).parameters
    context = {k: v for k, v in given.items() if v is not None and k in init}
    return cls(**context, **kwargs)

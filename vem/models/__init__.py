"""Generators (by backbone id: ``vem.models.backbones``), discriminators and the evaluation networks.

The names below are imported from their modules on first use, so the torch-free parts of the package
(``vem.models.geometry``) cost no torch import.
"""

from __future__ import annotations

import importlib

_WHERE = {"BACKBONES": "backbones", "PAPER_MODELS": "backbones", "build": "backbones", "from_config": "backbones",
          "init_weights": "backbones", "load_generator": "backbones", "record": "backbones",
          "MultiNLayerDiscriminator": "discriminators", "NLayerDiscriminator": "discriminators",
          "FeatureNet": "evalnets", "PerceptualNet": "evalnets", "Segmenter": "evalnets"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

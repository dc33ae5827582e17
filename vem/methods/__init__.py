"""The method contract (``Stage``, ``Method``) and the registry of compression methods (torch-free;
``vem.methods.context`` holds what a running stage is given)."""

from .base import SCOPES, SHARED_INPUTS, Method, Stage
from .registry import ADDON_NAMES, get_method, label, method_ids, method_title

__all__ = ["ADDON_NAMES", "SCOPES", "SHARED_INPUTS", "Method", "Stage", "get_method", "label", "method_ids",
           "method_title"]

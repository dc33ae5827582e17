"""The method contract (``Stage``, ``Method``) and the registry of compression methods (torch-free;
``vem.methods.context`` holds what a running stage is given)."""

from .base import SCOPES, SHARED_INPUTS, Method, Stage
from .registry import get_method, label, method_ids, method_title

__all__ = ["SCOPES", "SHARED_INPUTS", "Method", "Stage", "get_method", "label", "method_ids",
           "method_title"]

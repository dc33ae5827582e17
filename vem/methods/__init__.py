"""The method contract (``Stage``, ``Method``) and the registry of compression methods (torch-free;
``vem.methods.context`` holds what a running stage is given)."""

from .base import SCOPES, SHARED_INPUTS, Method, Stage
from .registry import get_method, method_ids

__all__ = ["SCOPES", "SHARED_INPUTS", "Method", "Stage", "get_method", "method_ids"]

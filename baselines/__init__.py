"""Compression methods VEM is combined with: one module per method, registered here by id.

Each method builds its student and its algorithm-specific losses and takes the MI add-on through the
``vem.mi`` protocol (nothing add-on-specific lives here).
"""

from .omgd import OMGD

METHODS = {"omgd": OMGD}

__all__ = ["METHODS", "OMGD"]

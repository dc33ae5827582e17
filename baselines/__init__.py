"""The compression methods VEM is combined with, one folder each, registered here by id.

This mapping is the ``vem.methods`` entry point of the project (``pyproject.toml``): adding a method is
its folder (declaration in ``__init__.py``, training code, ``config.yaml``) and one line below.
"""

from .cagc import CAGC
from .cat import CAT
from .gan_compression import GANCompression
from .gcc import GCC
from .omgd import OMGD
from .slimming import Slimming

METHODS = {"omgd": OMGD, "cat": CAT, "gan_compression": GANCompression, "gcc": GCC, "slimming": Slimming,
           "cagc": CAGC}

__all__ = ["METHODS"]

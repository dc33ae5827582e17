"""vem: GAN compression with mutual-information distillation (VEM, VID, CRD) - library and benchmark.

Subpackages: ``vem.mi`` (the add-ons), ``vem.models``, ``vem.data``, ``vem.metrics``; the command line
is ``python -m vem --help``.
"""

__version__ = "0.1.0"

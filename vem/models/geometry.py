"""Shape arithmetic of the backbones without torch: what the workflow's checks need while Snakemake builds
the DAG (importing torch costs ~1.6 s per Snakemake start: every dry run, every SLURM job step)."""

from __future__ import annotations

import math


def sagan_levels(image_size: int) -> int:
    """The number of up-sampling levels ``l1 .. ln`` of a SAGAN generator (and discriminator) at ``image_size``:
    4 px -> ``image_size`` in factors of 2."""
    n = int(round(math.log2(image_size))) - 2
    if image_size < 16 or 2 ** (n + 2) != image_size:
        raise ValueError(f"SAGAN image_size must be a power of 2 >= 16, got {image_size}")
    return n

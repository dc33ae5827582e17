"""GCC's MAC count of a SAGAN generator from its widths alone, without torch (``vem.metrics.cost``'s
``count_macs_thop_legacy`` counts a built model): what ``GCC.check`` needs while Snakemake builds the DAG, to
refuse a ``target_macs`` that no pruned width set can come within ``tolerance`` of, before pre-training.

The same rules (thop <= 0.0.31): a convolution counts its output elements x (C_in / groups x k^2 + 1 for a
bias), a spectrally normalised one (every ``l<i>`` transposed conv) nothing, a BatchNorm 2 per output element.
"""

from __future__ import annotations

from vem.models.geometry import sagan_levels


def sagan_macs(widths: list[int], out_nc: int, image_size: int) -> int:
    """GCC's count for ``vem.models.sagan.SAGANGenerator(widths=...)``: layer i's map is 2^(i+1) px."""
    n = sagan_levels(image_size)
    if len(widths) != n:
        raise ValueError(f"SAGAN at {image_size} px has {n} BN'd layers, got widths {widths}")

    def attention(c: int, h: int) -> int:    # query and key 1x1 convs C -> max(1, C // 8), value C -> C, biased
        return 2 * max(1, c // 8) * h * h * (c + 1) + c * h * h * (c + 1)

    total = sum(2 * c * (2 ** (i + 1)) ** 2 for i, c in enumerate(widths, 1))       # the BNs
    total += attention(widths[-2], 2 ** n) + attention(widths[-1], 2 ** (n + 1))
    return total + out_nc * image_size * image_size * (widths[-1] * 16 + 1)        # the last transposed conv

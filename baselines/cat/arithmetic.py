"""CAT's MAC count of an inception generator from its widths alone, without torch (``macs.cat_macs`` counts a
built model): what ``CAT.check`` needs while Snakemake builds the DAG, to refuse a ``target_macs`` below the
smallest network the |gamma| threshold can reach before the teacher trains.

The same convention as ``macs.py``: a convolution counts C_in x C_out x k^2 x H_out x W_out / groups (a
transposed one by its output size), an instance norm the elements it outputs, a norm with running statistics
(BatchNorm) nothing.
"""

from __future__ import annotations


def _down(h: int) -> int:            # a 3x3 stride-2 convolution with padding 1
    return (h - 1) // 2 + 1


def inception_macs(widths: dict, in_nc: int, out_nc: int, size: int, norm: str, kernel_sizes=(1, 3, 5)) -> int:
    """CAT's count for ``vem.models.inception.InceptionGenerator(widths=...)`` at a ``size`` x ``size`` input."""
    counted = norm in ("instance", "instance_affine")       # no running statistics: counted

    def nrm(c: int, h: int) -> int:
        return c * h * h if counted else 0

    (c0, c1, c2), (u0, u1) = widths["down"], widths["up"]
    h0, h1 = size, _down(size)
    h2 = _down(h1)
    total = in_nc * c0 * 49 * h0 * h0 + nrm(c0, h0)
    total += c0 * c1 * 9 * h1 * h1 + nrm(c1, h1) + c1 * c2 * 9 * h2 * h2 + nrm(c2, h2)
    hw = h2 * h2
    for b in widths["blocks"]:
        for k, m in zip(kernel_sizes, b["res"]):
            if m:                    # k x k C -> m, norm, k x k m -> C
                total += c2 * m * k * k * hw + nrm(m, h2) + m * c2 * k * k * hw
        for k, m in zip(kernel_sizes, b["dw"]):
            if m:                    # 1x1 C -> m, norm, k x k depthwise, norm, 1x1 m -> C
                total += c2 * m * hw + nrm(m, h2) + m * k * k * hw + nrm(m, h2) + m * c2 * hw
        if any(b["res"]) or any(b["dw"]):
            total += nrm(c2, h2)     # the block's norm after the sum of its branches
    h3 = 2 * h2
    h4 = 2 * h3
    total += c2 * u0 * 9 * h3 * h3 + nrm(u0, h3) + u0 * u1 * 9 * h4 * h4 + nrm(u1, h4)
    return total + u1 * out_nc * 49 * h4 * h4


def smallest_widths(n_blocks: int, lower_bound: int, kernel_sizes=(1, 3, 5)) -> dict:
    """The widths at the largest threshold (``train.widths_at``): no branch left, the sampling layers at
    their lower bound."""
    zero = [0] * len(kernel_sizes)
    return {"down": [lower_bound] * 3, "blocks": [{"res": list(zero), "dw": list(zero)} for _ in range(n_blocks)],
            "up": [lower_bound] * 2}

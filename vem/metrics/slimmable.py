"""Configurations of GAN-Compression's slimmable mobile ResNet (``vem.models.slimmable``) and their MACs in
closed form. Torch-free: the workflow checks MAC budgets with it while it builds the DAG, and the
evolutionary search counts every candidate with it (tested equal to the traced counters)."""

from __future__ import annotations

N_GENES = 8


def layer_widths(config) -> dict:
    """The output width of every sliceable layer for a configuration of 8 integers."""
    c = [int(v) for v in config]
    if len(c) != N_GENES or min(c) < 1:
        raise ValueError(f"a configuration is {N_GENES} positive integers c0..c7, got {config!r}")
    return {"stem": c[0], "down": [2 * c[1], 4 * c[2]], "inner": [4 * c[3], 4 * c[4], 4 * c[5]],
            "up": [2 * c[6], c[7]]}


def config_str(config) -> str:
    return "_".join(str(int(v)) for v in config)


def parse_config(text: str) -> list[int]:
    try:
        config = [int(v) for v in str(text).split("_")]
    except ValueError:
        raise ValueError(f"a configuration string is {N_GENES} integers joined by '_', got {text!r}") from None
    layer_widths(config)
    return config


def block_groups(n_blocks: int) -> list[int]:
    """The group (0, 1, 2: genes c3, c4, c5) of every residual block."""
    k = n_blocks // 3
    sizes = [k, k, n_blocks - 2 * k]
    return [g for g, n in enumerate(sizes) for _ in range(n)]


def macs(config, n_blocks: int, in_nc: int, out_nc: int, size: int, norms: bool = False) -> int:
    """The MACs of the sub-network at ``config`` in closed form (torch-free): torchprofile's convention
    (a convolution: output elements x C_in / groups x k^2, a transposed one by its output size; norms
    without affine parameters, activations, padding and the residual additions 0); ``norms=True`` adds
    the output elements of every (non-affine) instance norm, as GAN-Compression's torchprofile 0.0.1 did."""
    w = layer_widths(config)
    s1, s2, s4 = size * size, ((size + 1) // 2) ** 2, ((size + 3) // 4) ** 2
    d = w["down"][1]
    total = s1 * w["stem"] * in_nc * 49 + s2 * w["down"][0] * w["stem"] * 9 + s4 * d * w["down"][0] * 9
    total += s2 * w["up"][0] * d * 9 + s1 * w["up"][1] * w["up"][0] * 9 + s1 * out_nc * w["up"][1] * 49
    elems = s1 * w["stem"] + s2 * w["down"][0] + s4 * d + s2 * w["up"][0] + s1 * w["up"][1]
    for g in block_groups(n_blocks):
        e = w["inner"][g]
        total += s4 * (d * 9 + e * d + e * 9 + d * e)
        elems += s4 * 2 * (d + e)
    return int(total + (elems if norms else 0))

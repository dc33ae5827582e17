"""MACs as CAT's profiler counts them (snap-research/CAT ``utils/model_profiling.py``), batch 1.

Per leaf module: a convolution or transposed convolution counts C_in x C_out x k^2 x H_out x W_out / groups
(the transposed one by its *output* size, integer division by groups as CAT does); a linear layer
C_in x C_out; a batch or instance norm that keeps no running statistics counts the number of its output
elements (one with running statistics counts 0); activations, padding, dropout and tanh count 0. The
compression target of CAT's scripts (2.6e9 for horse2zebra) is in this convention, at the training crop.
"""

from __future__ import annotations

from torch import nn

from vem.metrics.cost import count_leaf_hooks


def _cat_count(m: nn.Module, inputs, output) -> int:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        c_in, (c_out, h, w) = inputs[0].shape[1], output.shape[1:]
        return c_in * c_out * m.kernel_size[0] * m.kernel_size[1] * h * w // m.groups
    if isinstance(m, nn.Linear):
        return m.in_features * m.out_features
    if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and not m.track_running_stats:
        return output[0].numel()
    return 0


def cat_macs(model: nn.Module, in_channels: int, size: int) -> int:
    return count_leaf_hooks(model, in_channels, size, _cat_count)

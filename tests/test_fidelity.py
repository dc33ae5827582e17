"""OMGD and the paper protocol against independently written references of the original code
(tests/omgd_reference.py), given the same weights and inputs: outputs, taps and gradients must be equal."""

from __future__ import annotations

import pytest
import torch

from vem.models import build, record

from .omgd_reference import RefUnet, copy_by_order, perturb

torch.set_default_dtype(torch.float32)


def _x(n, c, size, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, c, size, size, generator=g, dtype=torch.float64) * 2 - 1)


def _pair(arch, num_downs, ngf, in_nc=3, out_nc=3, seed=0):
    ours = build(record(arch, in_nc=in_nc, out_nc=out_nc, ngf=ngf, num_downs=num_downs)).double()
    ref = RefUnet(in_nc, out_nc, ngf, num_downs, deep=arch == "unet_deepest").double()
    perturb(ours, seed)
    copy_by_order(ours, ref)
    return ours, ref


@pytest.mark.parametrize("arch,num_downs,size,ngf", [("unet", 5, 32, 4), ("unet_deepest", 5, 32, 4),
                                                      ("unet", 8, 256, 2), ("unet_deepest", 8, 256, 2)])
def test_unet_outputs_equal_omgd_layout(arch, num_downs, size, ngf):
    """unet_256 / unet_deepest_256 (and the 32 px analogues): in OMGD's deepest U-Net the outermost level
    runs its two up-path blocks *before* ReLU -> up-conv -> tanh."""
    ours, ref = _pair(arch, num_downs, ngf)
    x = _x(2, 3, size)
    for train in (True, False):
        ours.train(train)
        ref.train(train)
        with torch.no_grad():
            torch.testing.assert_close(ours(x.clone()), ref(x.clone()), rtol=1e-12, atol=1e-12)

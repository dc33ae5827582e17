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


@pytest.mark.parametrize("num_downs,size,ngf", [(5, 32, 4), (8, 256, 2)])
def test_unet_distillation_taps_are_omgds_hooks(num_downs, size, ngf):
    """OMGD hooks unet_256 at the LeakyReLU'd encoder inputs of levels 3 and 5 and the ReLU'd,
    skip-concatenated up-conv inputs of levels 4 and 2; forward_features returns those tensors (the
    32 px U-Net: the same levels)."""
    from .omgd_reference import UNET_CD_LAYERS, hooked_features

    ours, ref = _pair("unet", num_downs, ngf)
    x = _x(2, 3, size)
    ours.train()
    ref.train()
    with torch.no_grad():
        y, feats = ours.forward_features(x.clone())
        y_ref, feats_ref = hooked_features(ref, UNET_CD_LAYERS, x.clone())
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    assert [f.shape[1] for f in feats] == [2 * ngf, 8 * ngf, 16 * ngf, 4 * ngf]
    assert [f.shape[2] for f in feats] == [size // 4, size // 16, size // 16, size // 4]
    for f, r in zip(feats, feats_ref):
        torch.testing.assert_close(f, r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_share", [0, 2, 4, 5])
def test_two_teacher_discriminator_shares_as_omgd(n_share):
    """OMGD's multi_n_layers with n_share stages of 5 shared; at 5 (both paper U-Net scripts) the output conv
    is shared too, so both teachers are judged by one discriminator."""
    from vem.models import MultiNLayerDiscriminator, NLayerDiscriminator

    from .omgd_reference import RefMultiD

    ours = perturb(MultiNLayerDiscriminator(6, 4, 3, "batch", n_share, n_heads=2).double(), 3)
    ref = RefMultiD(6, 4, n_share).double()
    for j in range(5):
        for t in (0, 1):
            src = ours.shared[j] if j < n_share else ours.heads[t][j - n_share]
            copy_by_order(src, ref.stages[j][1 if j < n_share else t])
    x = _x(3, 6, 64)
    ours.train()
    ref.train()
    outs = [ours(x, t) for t in (0, 1)]
    for t in (0, 1):
        torch.testing.assert_close(outs[t], ref(x, t), rtol=1e-12, atol=1e-12)
    single = sum(p.numel() for p in NLayerDiscriminator(6, 4, 3).parameters())
    n = sum(p.numel() for p in ours.parameters())
    if n_share == 5:
        torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
        assert n == single
    else:
        assert not torch.allclose(outs[0], outs[1]) and n > single
    with pytest.raises(ValueError, match="n_share must be in"):
        MultiNLayerDiscriminator(6, 4, 3, "batch", 6)

"""OMGD and the paper protocol against independently written references of the original code
(tests/omgd_reference.py), given the same weights and inputs: outputs, taps and gradients must be equal."""

from __future__ import annotations

import pytest
import torch

from vem.models import build, init_weights, record

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


def _hinge(pred, real=None):
    """OMGD's hinge GAN loss: D: mean(relu(1 - D(real))), mean(relu(1 + D(fake))); G: -mean(D(fake))."""
    if real is None:
        return -pred.mean()
    return torch.relu(1 - pred).mean() if real else torch.relu(1 + pred).mean()


@pytest.mark.parametrize("n_dis", [1, 3])
def test_online_teachers_follow_omgds_update_order(n_dis):
    """OMGD's optimize_parameters: forward both teachers; at steps n_dis, 2 n_dis, ... (from 1) D's hinge
    loss and gradients, then the teachers' loss through the same, not yet stepped D (D frozen), then the D
    and teacher steps. Parameters and outputs after 3 iterations equal a reference loop written that way."""
    from types import SimpleNamespace

    from baselines.omgd.train import OnlineTeachers

    from .omgd_reference import RefMultiD

    o = {"wide_ngf": 4, "deep_ngf": 2, "ndf": 4, "n_layers_d": 3, "n_share": 2,
         "lr": 1e-3, "iters": 3, "decay_from": 1.0, "n_dis": n_dis, "init": "normal"}
    base = {"arch": "unet", "num_downs": 5, "ngf": 4, "norm": "batch", "dropout": False, "lambda_rec": 100.0}
    onl = OnlineTeachers({"omgd": o, "teachers": {"original": base}}, SimpleNamespace(in_channels=1, out_channels=1),
                         seed=0)
    for net in (onl.wide, onl.deep, onl.D):
        perturb(net.double(), 5)
    ref_w, ref_d = RefUnet(1, 1, 4, 5).double(), RefUnet(1, 1, 2, 5, deep=True).double()
    ref_D = RefMultiD(2, 4, 2).double()
    copy_by_order(onl.wide, ref_w)
    copy_by_order(onl.deep, ref_d)
    for j in range(5):
        for t in (0, 1):
            copy_by_order(onl.D.shared[j] if j < 2 else onl.D.heads[t][j - 2], ref_D.stages[j][1 if j < 2 else t])
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.5, 0.999)) for m in (ref_D, ref_w, ref_d)]
    for it in (1, 2, 3):
        a, b = _x(2, 1, 32, seed=10 + it), _x(2, 1, 32, seed=20 + it)
        t_w, t_d, _ = onl.step(it, a, b)
        for op in opts:
            op.zero_grad()
        r_w, r_d = ref_w(a), ref_d(a)
        if it % n_dis == 0:
            real = torch.cat([a, b], 1)
            loss_d = sum(0.5 * (_hinge(ref_D(torch.cat([a, f.detach()], 1), t), False) + _hinge(ref_D(real, t), True))
                         for t, f in enumerate((r_w, r_d)))
            loss_d.backward()
            ref_D.requires_grad_(False)
            for t, f in ((1, r_d), (0, r_w)):
                (_hinge(ref_D(torch.cat([a, f], 1), t)) + 100.0 * (f - b).abs().mean()).backward()
            ref_D.requires_grad_(True)
            for op in opts:
                op.step()
        torch.testing.assert_close(t_w, r_w.detach(), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(t_d, r_d.detach(), rtol=1e-10, atol=1e-10)
    for ours, ref in ((onl.wide, ref_w), (onl.deep, ref_d)):
        for p, q in zip(ours.state_dict().values(), ref.state_dict().values()):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(onl.D.shared[0][0].weight, ref_D.stages[0][1][0].weight, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(onl.D.heads[1][-1].weight, ref_D.stages[4][1][0].weight, rtol=1e-9, atol=1e-10)


def _init_stats(net):
    """(pooled conv/linear weights, biases, BatchNorm weights, BatchNorm biases) of a network."""
    from torch import nn

    w, b, g, beta = [], [], [], []
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            w.append(m.weight.detach().flatten())
            if m.bias is not None:
                b.append(m.bias.detach().flatten())
        elif isinstance(m, nn.BatchNorm2d):
            g.append(m.weight.detach().flatten())
            beta.append(m.bias.detach().flatten())
    cat = (lambda xs: torch.cat(xs) if xs else torch.zeros(0))
    return cat(w), cat(b), cat(g), cat(beta)


def test_omgd_initialises_as_init_net():
    """OMGD's init_net: conv / transposed-conv weights N(0, 0.02), biases 0, BatchNorm weights N(1, 0.02),
    biases 0 - for the online teachers, their discriminator, the student and the CD adapters (was PyTorch's
    default: Kaiming-uniform convs, BatchNorm weights 1)."""
    from types import SimpleNamespace

    from baselines.omgd.train import OnlineTeachers, adapters

    o = {"wide_ngf": 16, "deep_ngf": 8, "ndf": 16, "n_layers_d": 3, "n_share": 2,
         "lr": 1e-3, "iters": 3, "decay_from": 1.0, "n_dis": 1, "init": "normal"}
    base = {"arch": "unet", "num_downs": 5, "ngf": 16, "norm": "batch", "dropout": False, "lambda_rec": 100.0}
    onl = OnlineTeachers({"omgd": o, "teachers": {"original": base}}, SimpleNamespace(in_channels=1, out_channels=1),
                         seed=0)
    student = init_weights(build(record("unet", in_nc=1, out_nc=1, ngf=8, num_downs=5)), "normal")
    nets = {"wide": onl.wide, "deep": onl.deep, "D": onl.D, "student": student,
            "adapters": adapters([16, 64, 128, 32], [32, 128, 256, 64], "normal")}
    for name, net in nets.items():
        w, b, g, beta = _init_stats(net)
        n = w.numel()
        # the sample std of n normal draws is within 5 standard errors (0.02 / sqrt(2n)) of 0.02
        assert abs(w.std().item() - 0.02) < 5 * 0.02 / (2 * n) ** 0.5, name
        assert abs(w.mean().item()) < 5 * 0.02 / n ** 0.5, name
        assert torch.all(b == 0) and torch.all(beta == 0), name
        if g.numel():
            assert abs(g.mean().item() - 1) < 5 * 0.02 / g.numel() ** 0.5 and abs(g.std().item() - 0.02) < 0.006, name
    # PyTorch's default for comparison (what the test tells apart): other conv statistics, BatchNorm weights 1
    w, _, g, _ = _init_stats(build(record("unet", in_nc=1, out_nc=1, ngf=8, num_downs=5)))
    assert abs(w.std().item() - 0.02) > 0.002 and torch.all(g == 1)


def test_generated_images_quantised_as_tensor2im():
    """Generated [-1, 1] images become uint8 as pix2pix/OMGD's tensor2im does: (x + 1) / 2 * 255 clipped,
    then truncated (rounding moved about half of the pixel values one level up)."""
    import numpy as np

    from vem.data import to_uint8

    from .omgd_reference import tensor2im

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g) * 2.2 - 1.1            # beyond [-1, 1] too
    x[0, 0, 0, :6] = torch.tensor([-1.0, 1.0, 0.0, 1 / 255, -1 + 2 / 255, 0.999])
    for batch in (x, x[:, :1]):                                        # RGB and one channel
        ours, ref = to_uint8(batch), tensor2im(batch)
        assert ours.dtype == np.uint8 and ours.shape == ref.shape
        np.testing.assert_array_equal(ours, ref)
    rounded = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert 0.3 < (rounded != to_uint8(x)).mean() < 0.7

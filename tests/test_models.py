"""Generators and discriminators: shapes, the feature taps used for distillation, one paper-scale
training step on CPU, and argument validation."""

from __future__ import annotations

import os
import sys

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from vem.models import (  # noqa: E402
    BACKBONES,
    PAPER_MODELS,
    MultiNLayerDiscriminator,
    NLayerDiscriminator,
    build,
    load_generator,
    record,
)

NGF = 8
MINI_ARCHS = {
    "unet": dict(arch="unet", num_downs=5),
    "unet_deepest": dict(arch="unet_deepest", num_downs=5),
    "resnet": dict(arch="resnet", n_blocks=3),
    "mobile_resnet": dict(arch="mobile_resnet", n_blocks=3),
    "mobile_deepest_resnet": dict(arch="mobile_deepest_resnet", n_blocks=3),
}


def build_generator(arch, **kw):
    return build(record(arch, **kw))


def paper_model(model, ngf):
    name, kw = PAPER_MODELS[model]
    return build(record(name, ngf=ngf, **kw))
# the four distillation maps (channels, side) at 32 px: U-Net (OMGD's hooks) the LeakyReLU'd inputs of levels 3
# and 5, the ReLU'd up-conv inputs of levels 4 and 2; ResNet: the stem output, then the residual trunk after
# blocks 1, 2, 3 (all at 1/4 resolution, 4 x ngf)
EXPECTED_FEATS = {
    "unet": [(2 * NGF, 8), (8 * NGF, 2), (16 * NGF, 2), (4 * NGF, 8)],
    "resnet": [(4 * NGF, 8)] * 4,
}


def _x(n=2, c=1, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g) * 2 - 1


@pytest.mark.parametrize("name", list(MINI_ARCHS))
def test_mini_generators(name):
    torch.manual_seed(0)
    G = build_generator(in_nc=1, out_nc=1, ngf=NGF, **MINI_ARCHS[name])
    x = _x()
    G.train()
    y = G(x)
    assert y.shape == (2, 1, 32, 32)
    assert torch.isfinite(y).all() and y.abs().max() <= 1.0  # tanh head
    G.eval()
    with torch.no_grad():
        y_eval = G(x)
        y_f, feats = G.forward_features(x)
    torch.testing.assert_close(y_f, y_eval, rtol=0, atol=0)
    assert len(feats) == 4
    shapes = [(f.shape[1], f.shape[2]) for f in feats]
    assert shapes == EXPECTED_FEATS["unet" if name.startswith("unet") else "resnet"]
    assert all(f.shape[0] == 2 and f.shape[2] == f.shape[3] for f in feats)
    if not name.startswith("unet"):
        # the last tap is exactly what the head decodes
        with torch.no_grad():
            torch.testing.assert_close(G.head(feats[-1]), y_eval, rtol=0, atol=0)
    # features carry gradient to the parameters (distillation trains through them)
    G.train()
    _, feats = G.forward_features(x)
    sum(f.mean() for f in feats).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())


def test_deepest_variants_are_deeper():
    def n_params(**kw):
        return sum(p.numel() for p in build_generator(in_nc=1, out_nc=1, ngf=NGF, **kw).parameters())

    assert n_params(**MINI_ARCHS["unet_deepest"]) > n_params(**MINI_ARCHS["unet"])
    assert n_params(**MINI_ARCHS["mobile_deepest_resnet"]) > n_params(**MINI_ARCHS["mobile_resnet"])
    # separable residual blocks are much lighter than full 3x3 ones
    assert n_params(**MINI_ARCHS["mobile_resnet"]) < n_params(**MINI_ARCHS["resnet"]) / 3


def test_generator_input_channels_and_sizes():
    # 6-channel label maps in, 1-channel image out (fmnist_scenes), and a 64 px input
    G = build_generator("unet", in_nc=6, out_nc=1, ngf=4, num_downs=5)
    assert G(_x(c=6)).shape == (2, 1, 32, 32)
    G = build_generator("unet", in_nc=1, out_nc=1, ngf=4, num_downs=6)
    assert G(_x(size=64)).shape == (2, 1, 64, 64)
    R = build_generator("resnet", in_nc=1, out_nc=3, ngf=4, n_blocks=3)
    assert R(_x(size=24)).shape == (2, 3, 24, 24)


@pytest.mark.parametrize("model,ngf", [("unet_256", 64), ("resnet_9blocks", 64), ("unet_deepest_256", 16),
                                       ("mobile_resnet_9blocks", 16), ("mobile_deepest_resnet", 16)])
def test_paper_scale_training_step(model, ngf):
    torch.manual_seed(0)
    G = paper_model(model, ngf)
    G.train()
    opt = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    before = [p.detach().clone() for p in G.parameters()]
    x, target = _x(1, 3, 256, seed=1), _x(1, 3, 256, seed=2)
    y = G(x)
    assert y.shape == (1, 3, 256, 256)
    loss = F.l1_loss(y, target)
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = list(G.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    changed = sum(not torch.equal(a, b) for a, b in zip(after, before))
    # Adam moves every parameter that got a non-zero gradient; nearly all of them do
    assert changed >= 0.9 * len(before)
    assert loss.item() > 0


def test_paper_scale_discriminator_and_drn_steps():
    """OMGD's two-headed PatchGAN (ndf 128, pix2pix pair input) and DRN-D-105 at 256 px: one training step each."""
    from vem.models.drn import DRNSeg

    torch.manual_seed(0)
    D = MultiNLayerDiscriminator(6, 128, 3, "batch", n_share=5, n_heads=2)
    opt = torch.optim.Adam(D.parameters(), lr=2e-4)
    pair = _x(1, 6, 256, seed=3)
    loss = sum(F.relu(1 - D(pair, h)).mean() for h in (0, 1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert D(pair, 0).shape == (1, 1, 30, 30) and all(torch.isfinite(p).all() for p in D.parameters())
    net = DRNSeg()
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    scores = net(_x(1, 3, 256, seed=4))
    assert scores.shape == (1, 19, 256, 256)
    loss = F.cross_entropy(scores, torch.randint(0, 19, (1, 256, 256)))
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and all(torch.isfinite(p).all() for p in net.parameters())


# --------------------------------------------------------------------------------------------------
# discriminators


def test_nlayer_patchgan_shapes():
    # pix2pix's 70x70 PatchGAN (n_layers 3) on a 256 px pair: a 30x30 map of logits
    D = NLayerDiscriminator(in_nc=6, ndf=8, n_layers=3)
    assert D(torch.zeros(1, 6, 256, 256)).shape == (1, 1, 30, 30)
    # the mini setting: n_layers 2 at 32 px -> 32/2/2 = 8, then two stride-1 k4 convs -> 7 -> 6
    D = NLayerDiscriminator(in_nc=2, ndf=8, n_layers=2, norm="instance")
    assert D(_x(3, 2)).shape == (3, 1, 6, 6)
    with pytest.raises(ValueError, match="n_layers"):
        NLayerDiscriminator(n_layers=0)


def test_multi_nlayer_shares_first_blocks():
    torch.manual_seed(0)
    D = MultiNLayerDiscriminator(in_nc=2, ndf=8, n_layers=2, n_share=2, n_heads=2)
    x = _x(3, 2)
    o0, o1 = D(x, 0), D(x, 1)
    assert o0.shape == o1.shape == (3, 1, 6, 6)
    assert not torch.allclose(o0, o1)  # two heads, two sets of weights
    # parameters: shared blocks once + two unshared tails = 2 x PatchGAN - shared part
    single = sum(p.numel() for p in NLayerDiscriminator(in_nc=2, ndf=8, n_layers=2).parameters())
    shared = sum(p.numel() for p in D.shared.parameters())
    assert shared > 0
    assert sum(p.numel() for p in D.parameters()) == 2 * single - shared
    # a loss on head 1 alone trains the shared trunk and head 1, not head 0
    D.zero_grad()
    D(x, 1).mean().backward()
    assert all(p.grad is not None for p in D.shared.parameters())
    assert all(p.grad is None for p in D.heads[0].parameters())


# --------------------------------------------------------------------------------------------------
# validation


def test_the_config_schema_knows_every_backbone():
    from vem.schema import BACKBONE_IDS

    assert sorted(BACKBONE_IDS) == sorted(BACKBONES)


def test_records_rebuild_the_same_generator_from_the_checkpoint_alone(tmp_path):
    """Every backbone: the record lists every constructor argument (defaults written out), survives a
    weights-only checkpoint and rebuilds a generator with identical outputs."""
    from vem.utils import atomic_save_torch, load_checkpoint

    for name in BACKBONES:
        kw = {"in_nc": 1, "out_nc": 1, "ngf": 4, **({"num_downs": 5} if name.startswith("unet") else {"n_blocks": 3})}
        if name == "slimmable_mobile_resnet":    # widths by GAN-Compression's 8-integer configuration
            kw = {"in_nc": 1, "out_nc": 1, "channels": [4, 3, 2, 4, 3, 2, 4, 3], "n_blocks": 3}
        if name == "sagan":                      # input: a latent z (z_dim x 1 x 1)
            kw = {"in_nc": 1, "out_nc": 1, "ngf": 4, "image_size": 32}
        if name == "stylegan2":                  # a latent z too; widths per channel group (net_shape)
            kw = {"in_nc": 1, "out_nc": 1, "image_size": 16, "n_mlp": 1, "net_shape": [4, 3, 2, 4, 3, 2]}
        rec = record(name, **kw)
        assert rec["backbone"] == name and set(kw) <= set(rec["kwargs"])
        import inspect

        assert set(rec["kwargs"]) == set(inspect.signature(BACKBONES[name]).parameters)
        torch.manual_seed(0)
        G = build(rec).eval()
        atomic_save_torch(tmp_path / f"{name}.pt", {"generator": rec, "state_dict": G.state_dict()})
        H = load_generator(load_checkpoint(tmp_path / f"{name}.pt")).eval()
        with torch.no_grad():
            x = torch.randn(2, 1, 1, 1) if name in ("sagan", "stylegan2") else _x()
            torch.testing.assert_close(H(x), G(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="no generator record"):
        load_generator({"state_dict": {}})


def test_build_generator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="'transformer'"):
        build_generator("transformer")
    with pytest.raises(ValueError, match=r"'unet' takes no argument\(s\) \['n_blocks'\]"):
        record("unet", n_blocks=9)
    with pytest.raises(ValueError, match="ngf must be >= 1, got 0"):
        build_generator("unet", ngf=0)
    with pytest.raises(ValueError, match="-3"):
        build_generator("resnet", ngf=-3)
    with pytest.raises(ValueError, match="num_downs must be >= 5, got 4"):
        build_generator("unet", num_downs=4)
    with pytest.raises(ValueError, match="n_blocks must be >= 1, got 0"):
        build_generator("resnet", n_blocks=0)
    with pytest.raises(ValueError, match="'groupnorm'"):
        build_generator("resnet", norm="groupnorm")

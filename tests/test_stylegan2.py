"""StyleGAN2 (CAGC's backbone): the same weights as an independently written reference give the same outputs,
a released-format (rosinality) state dict converts and loads, CAGC's MAC calculator gives its published
numbers."""

import pytest
import torch

from tests import stylegan2_reference as ref
from vem.metrics.cost import count_macs_cagc
from vem.models import build, record
from vem.models.stylegan2 import (
    StyleGAN2Discriminator,
    StyleGAN2Generator,
    blur_kernel,
    default_net_shape,
    from_rosinality,
    generator_kwargs,
    upfirdn2d,
)


def _generator_from(sd):
    G = build(record("stylegan2", **generator_kwargs(sd))).double()
    G.load_state_dict(from_rosinality(sd), strict=True)
    return G.eval()


@pytest.mark.parametrize("chain", [[16, 16, 12, 12, 8, 8, 8, 8],          # 32 px, rosinality-like table
                                   [5, 7, 3, 6, 4, 2, 9, 3]])             # a pruned, uneven net_shape
def test_generator_equals_reference_with_the_same_weights(chain):
    torch.manual_seed(0)
    sd = ref.make_generator_state(32, 24, 3, chain, seed=1)
    G = _generator_from(sd)
    assert G.net_shape == chain and G.size == 32 and G.n_latent == 8
    z = torch.randn(3, 24, dtype=torch.float64)
    noises = [torch.randn(3, 1, 2 ** ((i + 5) // 2), 2 ** ((i + 5) // 2), dtype=torch.float64) for i in range(7)]
    want = ref.generate(sd, z, noises, n_mlp=3)
    got = G(z.view(3, 24, 1, 1), noise=noises)
    assert got.shape == (3, 3, 32, 32)
    assert torch.allclose(got, want, rtol=0, atol=1e-10), (got - want).abs().max()
    # eval mode uses the stored noise buffers (= the checkpoint's noises.noise_<i>)
    fixed = [sd[f"noises.noise_{i}"] for i in range(7)]
    assert torch.allclose(G(z), ref.generate(sd, z, fixed, n_mlp=3), rtol=0, atol=1e-10)
    assert torch.equal(G(z), G(z))


def test_style_mixing_equals_reference():
    sd = ref.make_generator_state(16, 8, 2, [6, 5, 4, 4, 3, 3], seed=2)
    G = _generator_from(sd)
    z1, z2 = torch.randn(2, 2, 8, dtype=torch.float64)
    w1, w2 = ref.mapping(sd, z1, 2), ref.mapping(sd, z2, 2)
    assert torch.allclose(G.mapping(z1), w1, rtol=0, atol=1e-12)
    latent = torch.cat([w1.unsqueeze(1).repeat(1, 2, 1), w2.unsqueeze(1).repeat(1, 4, 1)], 1)
    noises = [torch.zeros(2, 1, 2 ** ((i + 5) // 2), 2 ** ((i + 5) // 2), dtype=torch.float64) for i in range(5)]
    want = ref.synthesis(sd, latent, noises)
    got = G.synthesis(G.latents(G.mapping(z1), G.mapping(z2), inject_index=2), noise="zero")
    assert torch.allclose(got, want, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="inject_index"):
        G.latents(w1, w2, inject_index=6)


def test_training_mode_draws_fresh_noise():
    G = build(record("stylegan2", in_nc=16, image_size=16, n_mlp=2, channel_max=8))
    with torch.no_grad():
        for c in G.styled_convs():
            c.noise_strength.fill_(1.0)
    z = torch.randn(2, 16)
    G.train()
    assert not torch.equal(G(z), G(z))
    G.eval()
    assert torch.equal(G(z), G(z))


def test_discriminator_equals_reference_with_the_same_weights():
    channels = ref.rosinality_channels(32, 2, 8)
    sd = ref.make_discriminator_state(32, channels, seed=3)
    D = StyleGAN2Discriminator(size=32, channel_max=8).double()
    D.load_state_dict(from_rosinality(sd, "discriminator"), strict=True)
    x = torch.randn(8, 3, 32, 32, dtype=torch.float64)
    assert torch.allclose(D(x), ref.discriminate(sd, x), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="divisible by 4"):
        D(x[:6])


def test_converter_rejects_what_it_cannot_build():
    sd = ref.make_generator_state(16, 8, 2, [4] * 6, seed=4)
    sd["convs.0.conv.blur.kernel"] = torch.ones(4, 4, dtype=torch.float64) / 16
    with pytest.raises(ValueError, match="convs.0.conv.blur.kernel: blur kernel differs"):
        from_rosinality(sd)
    with pytest.raises(ValueError, match="not a rosinality StyleGAN2 generator"):
        generator_kwargs({"conv1.conv.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="unexpected key 'extra'"):
        from_rosinality({"extra": torch.zeros(1)}, "discriminator")


def test_upfirdn2d_matches_a_hand_computed_case():
    # a single impulse, upsampled x 2 with the [1, 3, 3, 1] filter (gain 4): the filter itself, centred
    x = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    x[0, 0, 1, 1] = 1.0
    y = upfirdn2d(x, blur_kernel().double() * 4, up=2, pad=(2, 1))
    assert y.shape == (1, 1, 6, 6)
    k1 = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64) / 8 * 2
    want = torch.zeros(6, 6, dtype=torch.float64)
    want[1:5, 1:5] = torch.outer(k1, k1)
    assert torch.allclose(y[0, 0], want)
    assert y.sum().item() == pytest.approx(4.0)       # up x 2 keeps the mean: one input pixel -> 4 outputs


def test_cagc_calculator_reproduces_the_published_counts():
    full = build(record("stylegan2"))                  # 256 px, style 512, 8 MLP layers, multiplier 2
    assert full.net_shape == [512] * 10 + [256, 256, 128, 128]
    assert count_macs_cagc(full) == 45_124_673_536
    pruned_shape = [n - int(0.7 * n) for n in full.net_shape]
    assert pruned_shape == [154] * 10 + [77, 77, 39, 39]
    pruned = build(record("stylegan2", net_shape=pruned_shape))
    assert count_macs_cagc(pruned) == 4_123_578_080     # 4.1 B: the paper's 45.1 B -> 4.1 B
    assert sum(p.numel() for p in full.parameters()) == 30_034_338   # rosinality's 256 px g_ema


def test_net_shape_is_checked_and_recorded():
    with pytest.raises(ValueError, match="has 8 channel groups; net_shape must be 8 integers"):
        StyleGAN2Generator(16, size=32, net_shape=[4] * 7)
    with pytest.raises(ValueError, match="power of 2"):
        StyleGAN2Generator(16, size=48)
    assert default_net_shape(32, 2, 16) == [16] * 8
    rec = record("stylegan2", in_nc=16, image_size=32, n_mlp=2, net_shape=[4, 5, 6, 7, 8, 9, 10, 11])
    G = build(rec)
    assert [c.conv.weight.shape[:2] for c in G.styled_convs()] == [
        (5, 4), (6, 5), (7, 6), (8, 7), (9, 8), (10, 9), (11, 10)]
    assert G(torch.randn(2, 16, 1, 1)).shape == (2, 3, 32, 32)


# ---- the StyleGAN2 recipe (the Original of fmnist_uncond_sg2) --------------------------------------------
SG2_TASK = "fmnist_uncond_sg2"
SG2_OV = {"teachers.original.iters": 4, "teachers.original.snapshot_every": 2, "teachers.original.batch": 8,
          "teachers.original.channel_max": 8, "teachers.original.d_reg_every": 2,
          "teachers.original.g_reg_every": 2, "eval.val_images": 50}


@pytest.fixture(scope="module")
def sg2_assets(edges_assets, tmp_path_factory):
    from tests.conftest import save_task_data

    d = tmp_path_factory.mktemp("sg2")
    save_task_data(SG2_TASK, d)
    return d, edges_assets


def test_stylegan2_regularisers_against_closed_forms():
    from vem.train import stylegan as sg

    # R1 of D(x) = sum(a * x): ||grad||^2 = ||a||^2 for every sample
    a = torch.randn(1, 1, 4, 4)
    r1 = sg.r1_penalty(lambda x: (x * a).flatten(1).sum(1), torch.randn(3, 1, 4, 4))
    assert r1.item() == pytest.approx(a.pow(2).sum().item(), rel=1e-6)

    # path length of a linear synthesis img = latent.sum(1) @ M: J^T y = M y per latent row, |.| known
    class Lin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = torch.randn(5, 16)

        def synthesis(self, latent):
            return (latent.sum(1) @ self.m).view(-1, 1, 4, 4)

    torch.manual_seed(0)
    G, pl = Lin(), sg.PathLength(decay=1.0)     # decay 1: the mean is this batch's
    latent = torch.randn(6, 3, 5, requires_grad=True)
    torch.manual_seed(1)
    penalty, lengths = pl(G, latent)
    torch.manual_seed(1)
    y = torch.randn(6, 1, 4, 4) / 4.0
    jy = y.view(6, 16) @ G.m.t()                # d(img . y)/d latent[:, k] = M y for every k
    want = jy.pow(2).sum(1).sqrt()              # sqrt(mean_k |M y|^2) = |M y|
    assert torch.allclose(lengths, want, atol=1e-6)
    assert penalty.item() == pytest.approx((want - want.mean()).pow(2).mean().item(), rel=1e-5, abs=1e-9)
    # the lazy-regularisation Adam and the EMA
    opt = sg.lazy_adam([torch.nn.Parameter(torch.zeros(1))], 0.002, 16)
    assert opt.defaults["lr"] == pytest.approx(0.002 * 16 / 17) and opt.defaults["betas"][1] == pytest.approx(
        0.99 ** (16 / 17))
    g, e = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = e.weight.detach().clone()
    sg.ema_update(e, g, 0.9)
    assert torch.allclose(e.weight, 0.9 * before + 0.1 * g.weight)


def test_style_mixing_draws_from_the_run_generator():
    from vem.train import stylegan as sg

    G = build(record("stylegan2", in_nc=8, image_size=16, n_mlp=1, channel_max=4))
    z = torch.randn(4, 8)
    a, ia = sg.mixed_latents(G, z, 1.0, torch.Generator().manual_seed(3))
    b, ib = sg.mixed_latents(G, z, 1.0, torch.Generator().manual_seed(3))
    assert ia == ib and 1 <= ia < G.n_latent and torch.equal(a, b)
    assert torch.equal(a[:, 0], a[:, ia - 1]) and not torch.equal(a[:, 0], a[:, ia])
    c, ic = sg.mixed_latents(G, z, 0.0, torch.Generator().manual_seed(3))
    assert ic is None and torch.equal(c, G.latents(G.mapping(z)))


def test_stylegan2_teacher_trains_keeps_the_ema_and_evaluates_with_both_mac_counts(sg2_assets, tmp_path):
    import numpy as np

    from vem.config import resolve
    from vem.data.taskdata import open_task_data
    from vem.eval import ValScorer, evaluate, real_stats
    from vem.models import load_generator
    from vem.train import train_teacher

    d, assets = sg2_assets
    cfg = resolve(SG2_TASK, SG2_OV)
    assert "ngf" not in cfg["teachers"]["original"]          # replaced, not merged over SAGAN's section
    data = open_task_data(d / "d.npz", SG2_TASK, cfg)
    ck, curve = train_teacher(cfg["teachers"]["original"], data, 0,
                              lambda: ValScorer(data, assets / "feature.pt", cfg))
    assert [r["iter"] for r in curve] == [2, 4] and ck["generator"]["backbone"] == "stylegan2"
    assert {"r1", "path_penalty", "path_length", "d_loss", "g_loss"} <= set(curve[1])
    G = load_generator(ck)
    assert G.net_shape == [8] * 8 and G(torch.randn(2, 128, 1, 1)).shape == (2, 1, 32, 32)
    stats = real_stats(data, assets / "feature.pt", cfg, tmp_path / "real.zip")
    np.savez(tmp_path / "stats.npz", **{k: np.asarray(v) for k, v in stats.items()})
    m = evaluate(ck, data, assets / "feature.pt", cfg, tmp_path / "images.zip", tmp_path / "stats.npz")
    assert m["cost"]["input"] == [1, 128, 1, 1] and m["cost"]["macs_cagc"] == count_macs_cagc(G)
    # evaluation is deterministic (eval-mode noise = the stored buffers)
    m2 = evaluate(ck, data, assets / "feature.pt", cfg, tmp_path / "images2.zip", tmp_path / "stats.npz")
    assert m2["metric"]["value"] == m["metric"]["value"]
    with pytest.raises(ValueError, match="init must be 'default'"):
        train_teacher({**cfg["teachers"]["original"], "init": "normal"}, data, 0, None)


def test_interrupted_stylegan2_teacher_resumes_exactly(sg2_assets, tmp_path):
    import json
    import sys

    from tests.conftest import assert_resumes_exactly

    d, assets = sg2_assets

    def cmd(out, every):
        c = [sys.executable, "-m", "vem", "train-teacher", "--task", SG2_TASK, "--role", "original", "--data",
             str(d / "d.npz"), "--evalnet", str(assets / "feature.pt"), "--seed", "2", "--threads", "1",
             "--checkpoint-every", str(every), "--out", str(out / "generator.pt"), "--curve", str(out / "curve.csv")]
        ov = {**SG2_OV, "teachers.original.iters": 30, "teachers.original.snapshot_every": 10,
              "teachers.original.d_reg_every": 4, "teachers.original.g_reg_every": 3}
        return c + ["--overrides", json.dumps(ov)]

    assert_resumes_exactly(cmd, tmp_path, "generator.pt", every=5, min_iter=13)

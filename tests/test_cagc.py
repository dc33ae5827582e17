"""CAGC on StyleGAN2: the content-aware score on a constructed case, the pruned generator against the masked
full one, LPIPS against its closed form, the stages end to end and exact resume of the distill stage."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import assert_resumes_exactly, fmnist_available, save_task_data, stage_context

TASK = "fmnist_uncond_sg2"
C = {"content": "ink", "ink": 40, "noise_prob": 0.5, "score_batch": 3}


class _Toy(nn.Module):
    """image = ToRGB(conv1(x)) of a fixed two-channel map x: channel 0 lights the left half, where the image is
    dark (background), channel 1 the right half, where it is bright (the content of interest)."""

    def __init__(self):
        from vem.models.stylegan2 import ModulatedConv, ToRGB

        super().__init__()
        self.conv1 = nn.Module()
        self.conv1.conv = ModulatedConv(2, 2, 1, 4)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList([ToRGB(2, 4, 1, upsample=False)])
        x = torch.zeros(1, 2, 8, 8)
        x[:, 0, :, :4] = 1.0
        x[:, 1, :, 4:] = 1.0
        self.register_buffer("x", x)
        with torch.no_grad():
            self.conv1.conv.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
            for m in (self.conv1.conv, self.to_rgbs[0].conv):
                m.affine.weight.zero_()                     # style 1 for every channel
            self.to_rgbs[0].conv.weight.copy_(torch.tensor([-5.0, 5.0]).view(1, 2, 1, 1))

    def forward(self, z, noise=None):
        h = self.conv1.conv(self.x.expand(len(z), -1, -1, -1), z)
        return self.to_rgbs[0](h, z)


def test_content_aware_score_ranks_a_background_channel_below_a_content_channel():
    from baselines.cagc.train import channel_scores, ink_mask, kept_channels

    toy = _Toy()
    img = toy(torch.zeros(2, 4))
    mask = ink_mask(img, C["ink"])
    assert mask[..., :4].sum() == 0 and mask[..., 4:].all()            # the right half is the content
    scores = channel_scores(toy, torch.randn(6, 4), lambda im: ink_mask(im, C["ink"]), C,
                            torch.Generator().manual_seed(0))
    for s in scores:                # group 0 (read by conv1) and group 1 (read by the ToRGB)
        assert s[0] == 0 < s[1]     # the background channel gets no gradient from the salt-and-pepper loss
    assert kept_channels(scores, 0.5) == [[1], [1]]
    assert kept_channels([torch.tensor([3.0, 1.0, 2.0, 0.5, 4.0])], 0.7) == [[0, 4]]   # int(3.5) = 3 removed


def test_salt_and_pepper_loss_noises_only_inside_the_mask():
    from baselines.cagc.train import salt_and_pepper_loss

    img = torch.zeros(1, 3, 4, 4, requires_grad=True)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2] = 1
    loss = salt_and_pepper_loss(img, mask, 1.0, torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(8 * 3)          # every masked pixel set to +-1 on 3 channels: |+-1 - 0|
    loss.backward()
    assert (img.grad[..., 2:] == 0).all() and (img.grad[..., :2].abs() == 1).all()


def test_pruned_generator_equals_the_masked_full_generator(monkeypatch):
    from baselines.cagc.train import pruned_generator
    from vem.models import build, record

    torch.manual_seed(0)
    kwargs = record("stylegan2", in_nc=16, image_size=16, n_mlp=2, net_shape=[6, 5, 6, 4, 5, 3])["kwargs"]
    G = build(record("stylegan2", **kwargs)).double().eval()
    with torch.no_grad():                      # non-zero biases and noise so that nothing hides behind a zero
        for name, p in G.named_parameters():
            if name.endswith((".bias", "noise_strength")) and "affine" not in name and "mapping" not in name:
                p.normal_(0, 0.3)
    keep = [[0, 2, 5], [1, 4], [0, 1, 3, 5], [2], [0, 4], [1, 2]]
    P, rec = pruned_generator(G, kwargs, keep)
    assert rec["kwargs"]["net_shape"] == [3, 2, 4, 1, 2, 2] and P.net_shape == [3, 2, 4, 1, 2, 2]
    # the masked full generator: every layer's weights reading a removed channel zeroed (the styled convs,
    # and every ToRGB: to_rgb1 reads group 1, to_rgbs[j] group 3 + 2j). The demodulated convs are invariant
    # to the equalised-lr scale 1 / sqrt(fan_in); a ToRGB is not: as in CAGC, the pruned one's scale comes
    # from its own fan-in, so the masked one is given the factor sqrt(n_full / n_kept)
    M = build(record("stylegan2", **kwargs)).double().eval()
    M.load_state_dict(G.state_dict())
    readers = [(M.conv1.conv, 0), *[(c.conv, 1 + i) for i, c in enumerate(M.convs)], (M.to_rgb1.conv, 1),
               *[(r.conv, 3 + 2 * j) for j, r in enumerate(M.to_rgbs)]]
    with torch.no_grad():
        for conv, g in readers:
            drop = [i for i in range(conv.weight.shape[1]) if i not in keep[g]]
            conv.weight[:, drop] = 0
            if not conv.demodulate:
                conv.weight *= (conv.weight.shape[1] / len(keep[g])) ** 0.5
    P = P.double().eval()
    z = torch.randn(4, 16, dtype=torch.float64)
    assert torch.allclose(P(z), M(z), rtol=0, atol=1e-4)   # demodulation's epsilon sees the fan-in
    from vem.models.stylegan2 import ModulatedConv

    monkeypatch.setattr(ModulatedConv, "eps", 0.0)
    assert torch.allclose(P(z), M(z), rtol=0, atol=1e-10)  # without it: equal
    assert not torch.allclose(P(z), G(z), atol=1e-3)             # pruning does change the output
    for name in ("mapping.layers.0.weight", "noise_0"):            # the mapping and noise are copied
        assert torch.equal(P.state_dict()[name], G.state_dict()[name])


def test_lpips_against_its_closed_form():
    from vem.losses import lpips

    g = torch.Generator().manual_seed(0)
    fx = [torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 5, 2, 2, generator=g)]
    fy = [torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 5, 2, 2, generator=g)]
    lin = [torch.rand(3, generator=g), torch.rand(5, generator=g)]

    def manual(weights):
        out = np.zeros(2)
        for i in range(2):
            x, y = fx[i].numpy(), fy[i].numpy()
            for b in range(2):
                for h in range(x.shape[2]):
                    for w in range(x.shape[3]):
                        u, v = x[b, :, h, w], y[b, :, h, w]
                        d = (u / (np.linalg.norm(u) + 1e-10) - v / (np.linalg.norm(v) + 1e-10)) ** 2
                        wt = np.ones_like(d) if weights is None else weights[i].numpy()
                        out[b] += (wt * d).sum() / (x.shape[2] * x.shape[3])
        return out

    assert np.allclose(lpips(fx, fy).numpy(), manual(None), atol=1e-5)
    assert np.allclose(lpips(fx, fy, lin).numpy(), manual(lin), atol=1e-5)
    assert torch.allclose(lpips(fx, fx), torch.zeros(2), atol=1e-6)


# ---- the stages ----------------------------------------------------------------------------------------
OV = {"teachers.original.iters": 4, "teachers.original.snapshot_every": 2, "teachers.original.batch": 8,
      "teachers.original.channel_max": 8, "cagc.n_sample": 8, "cagc.score_batch": 4, "cagc.iters": 8,
      "cagc.batch": 8, "cagc.eval_every": 4, "cagc.d_reg_every": 4, "cagc.g_reg_every": 2, "eval.val_images": 50}


@pytest.fixture(scope="module")
def sg2_original(edges_assets, tmp_path_factory):
    from vem.config import resolve
    from vem.data.taskdata import open_task_data
    from vem.eval import ValScorer
    from vem.train import train_teacher
    from vem.utils import atomic_save_torch

    d = tmp_path_factory.mktemp("cagc")
    save_task_data(TASK, d)
    cfg = resolve(TASK, OV)
    data = open_task_data(d / "d.npz", TASK, cfg)
    ck, _ = train_teacher(cfg["teachers"]["original"], data, 0,
                          lambda: ValScorer(data, edges_assets / "feature.pt", cfg))
    atomic_save_torch(d / "original.pt", ck)
    return d, edges_assets


@pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST is not installed (make setup)")
def test_cagc_stages_run_prune_inherits_and_distill_trains_the_ema(sg2_original, tmp_path):
    from baselines.cagc import train
    from vem.metrics.cost import count_macs_cagc
    from vem.models import load_generator
    from vem.utils import atomic_save_torch

    d, assets = sg2_original
    inputs = {"original": d / "original.pt", "perceptual": assets / "perceptual.pt"}

    def ctx(stage, ins, addon="none"):
        return stage_context("cagc", stage, TASK, d / "d.npz", OV, 0, ins, assets / "feature.pt", addon=addon,
                             lambda_mi=0.1 if addon != "none" else None)

    pruned, rows = train.prune(ctx("prune", inputs))
    assert pruned["generator"]["kwargs"]["net_shape"] == [8 - int(0.7 * 8)] * 8 == [3] * 8
    assert [r["kept"] for r in rows] == [3] * 8 and all(r["score_kept_mean"] >= r["score_dropped_mean"] for r in rows)
    assert pruned["macs_cagc"] < pruned["original_macs_cagc"]
    atomic_save_torch(tmp_path / "prune.pt", pruned)
    ck, curve = train.distill(ctx("distill", {**inputs, "prune": tmp_path / "prune.pt"}, addon="vem"))
    assert [r["iter"] for r in curve] == [4, 8]
    assert {"val", "kd_l1", "kd_lpips", "content_fraction", "r1", "path_penalty", "energy_gap"} <= set(curve[1])
    G = load_generator(ck)
    assert G.net_shape == [3] * 8 and ck["macs_cagc"] == count_macs_cagc(G)
    assert G(torch.randn(2, 128, 1, 1)).shape == (2, 1, 32, 32)
    # the prune stage is deterministic for a seed
    again, _ = train.prune(ctx("prune", inputs))
    assert again["keep"] == pruned["keep"]


def _cmd(d, assets, out, prune, every):
    cmd = [sys.executable, "-m", "vem", "stage", "--task", TASK, "--method", "cagc", "--stage", "distill",
           "--seed", "1", "--addon", "vid", "--lambda-mi", "0.1", "--threads", "1", "--data", str(d / "d.npz"),
           "--evalnet", str(assets / "feature.pt"), "--checkpoint-every", str(every), "--out",
           str(out / "student.pt"), "--table", str(out / "curve.csv"), "--input", f"prune={prune}",
           "--input", f"original={d / 'original.pt'}", "--input", f"perceptual={assets / 'perceptual.pt'}"]
    return cmd + ["--overrides", json.dumps({**OV, "cagc.iters": 30, "cagc.eval_every": 10,
                                             "cagc.d_reg_every": 4, "cagc.g_reg_every": 3})]


@pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST is not installed (make setup)")
def test_interrupted_cagc_distill_resumes_to_the_same_student(sg2_original, tmp_path):
    from baselines.cagc import train
    from vem.utils import atomic_save_torch

    d, assets = sg2_original
    ctx = stage_context("cagc", "prune", TASK, d / "d.npz", OV, 0, {"original": d / "original.pt"},
                        assets / "feature.pt")
    atomic_save_torch(tmp_path / "prune.pt", train.prune(ctx)[0])
    assert_resumes_exactly(lambda out, every: _cmd(d, assets, out, tmp_path / "prune.pt", every), tmp_path,
                           "student.pt", every=4, min_iter=13, curve="curve.csv")


def test_cagc_configuration_checks():
    from vem.config import ConfigError, resolve

    with pytest.raises(ConfigError, match="cagc.batch must be divisible by 4"):
        resolve(TASK, {"cagc.batch": 6}, "cagc")
    with pytest.raises(ConfigError, match="cagc.score_batch .20. exceeds n_sample .10."):
        resolve(TASK, {"cagc.score_batch": 20, "cagc.n_sample": 10}, "cagc")
    with pytest.raises(ConfigError, match="the Original of fmnist_uncond is sagan"):
        resolve("fmnist_uncond", None, "cagc")
    with pytest.raises(ConfigError, match="cagc.prune_ratio must be < 1"):
        resolve(TASK, {"cagc.prune_ratio": 1.0}, "cagc")

"""SAGAN, GCC and Slimming: the architecture against an independent reference with the same weights, GCC's
MAC convention (23.45 M), the straight-through gate, the architecture step, the pruning bisection, the
unconditional task kind and exact resume of the distill stage (with its concurrently trained teacher)."""

from __future__ import annotations

import sys
import zipfile

import numpy as np
import pytest
import torch

from tests import sagan_reference as ref
from tests.conftest import assert_resumes_exactly, fmnist_available, save_task_data, stage_context

TASK = "fmnist_uncond"


def _perturb(net, seed=0):
    """Random weights everywhere (attention gammas too, so attention matters), BN statistics included."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_((1.0 if name.endswith("1.weight") and p.dim() == 1 else 0.0)
                    + 0.3 * torch.randn(p.shape, generator=g))
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return net


@pytest.mark.parametrize("train", [True, False])
def test_sagan_generator_equals_gccs_layout_with_the_same_weights(train):
    from vem.models import build, record

    torch.manual_seed(0)
    ours = _perturb(build(record("sagan", in_nc=16, out_nc=3, ngf=16, image_size=64)))
    theirs = ref.Generator(z_dim=16, ngf=16)
    ours.double()
    theirs.double()      # in float64 a layout difference cannot hide in rounding
    ref.load_from(ours, theirs)
    ours.train(train)
    theirs.train(train)
    z = torch.randn(3, 16, 1, 1, dtype=torch.float64)
    if train:    # both take one power iteration from the same u, and batch statistics
        torch.testing.assert_close(ours(z), theirs(z), rtol=0, atol=1e-10)
    else:        # ours: the stored u, v; GCC's wrapper steps in eval mode too - from the u, v one step before ours
        before = {k: v.clone() for k, v in ours.state_dict().items() if k.endswith(("._u", "._v"))}
        ours.train()(z)
        ref.load_from(ours, theirs)
        with torch.no_grad():
            for k, v in before.items():
                getattr(theirs, k.split(".")[0])[0].__getattr__(
                    "weight_u" if k.endswith("_u") else "weight_v").copy_(v)
        ours.eval()
        theirs.eval()
        torch.testing.assert_close(ours(z), theirs(z), rtol=0, atol=1e-10)
        torch.testing.assert_close(ours(z), ours(z), rtol=0, atol=0)      # eval leaves the model unchanged


def test_sagan_discriminator_equals_gccs_layout_and_its_gate_is_inert_when_open():
    from vem.models.sagan import SAGANDiscriminator

    torch.manual_seed(0)
    ours = _perturb(SAGANDiscriminator(3, 8, 64)).double()
    theirs = ref.Discriminator(ndf=8).double()
    ref.load_from(ours, theirs)
    x = torch.randn(4, 3, 64, 64, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-10)
    gated = SAGANDiscriminator(3, 8, 64, gated=True).double()
    sd = {k: v for k, v in ours.state_dict().items()}
    missing = gated.load_state_dict(_gated_keys(sd, gated), strict=False)
    assert not missing.unexpected_keys
    torch.testing.assert_close(gated.eval()(x), ours.eval()(x), rtol=0, atol=1e-6)   # all gates open (alpha 1)


def _gated_keys(sd, gated):
    """Our plain D's state dict under the gated D's names (a gate shifts the LeakyReLU's index, not the conv's)."""
    names = set(gated.state_dict())
    return {k: v for k, v in sd.items() if k in names}


def test_gccs_mac_convention_reproduces_23_45_m_and_the_true_count_is_beside_it():
    from vem.metrics.cost import count_macs, count_macs_thop_legacy
    from vem.models import build, record

    g64 = build(record("sagan", in_nc=128, out_nc=3, ngf=64, image_size=64))
    assert count_macs_thop_legacy(g64, 128, 1) == 23_449_600                  # GCC's "23.45 M"
    g48 = build(record("sagan", in_nc=128, out_nc=3, ngf=48, image_size=64))
    assert count_macs_thop_legacy(g48, 128, 1) == 15_624_192                  # unpruned ngf 48 (the anchors)
    # the true work counts the spectrally normalised transposed convs GCC's counter never saw
    assert count_macs(g64, 128, 1) > 20 * 23_449_600
    # closed form of the convention: last ConvT + six 1x1 attention convs + four BNs (2 x elements)
    last = 3 * 64 * 64 * (64 * 16 + 1)
    attn = sum(n * (c // 8 * 2 + c) * (c + 1) for n, c in ((16 * 16, 128), (32 * 32, 64)))
    bn = 2 * sum(c * s * s for c, s in ((512, 4), (256, 8), (128, 16), (64, 32)))
    assert last + attn + bn == 23_449_600


def test_gate_is_a_hard_mask_with_a_straight_through_gradient():
    from vem.models.sagan import ChannelGate

    gate = ChannelGate(3, threshold=0.5)
    with torch.no_grad():
        gate.alpha.copy_(torch.tensor([0.9, 0.2, 0.5]))
    x = torch.arange(1.0, 1.0 + 2 * 3 * 2 * 2).view(2, 3, 2, 2)
    y = gate(x)
    torch.testing.assert_close(y[:, 0], x[:, 0])
    assert torch.equal(y[:, 1], torch.zeros_like(y[:, 1]))        # below the threshold: off
    torch.testing.assert_close(y[:, 2], x[:, 2] / 2)               # at it: (sign(0) + 1) / 2, GCC's Mask
    y.sum().backward()
    # d/d alpha_c of sum(x * mask_c) with d mask / d alpha = 1: the channel's sum, also for the closed gate
    torch.testing.assert_close(gate.alpha.grad, x.sum(dim=(0, 2, 3)))


def test_architecture_step_moves_only_the_gates():
    from baselines.gcc.train import _Aux, architecture_step
    from vem.models import build, record
    from vem.models.sagan import SAGANDiscriminator

    torch.manual_seed(0)
    G_s = build(record("sagan", in_nc=8, out_nc=1, ngf=4, image_size=32))
    G_t = build(record("sagan", in_nc=8, out_nc=1, ngf=8, image_size=32))
    D = SAGANDiscriminator(1, 4, 32, gated=True)
    D_t = SAGANDiscriminator(1, 8, 32)
    aux = _Aux({}, {})
    opt = torch.optim.Adam([g.alpha for g in D.gates()], lr=0.05)
    nets = {"G_s": G_s, "G_t": G_t, "D": D, "D_t": D_t}
    before = {(n, k): v.detach().clone() for n, net in nets.items() for k, v in net.named_parameters()}
    stats = architecture_step(D, D_t, G_s, G_t, torch.randn(6, 8, 1, 1), torch.rand(6, 1, 32, 32) * 2 - 1, aux,
                              opt, beta=1.0)
    # parameters only: the train-mode forwards update BN running statistics and the power iteration's u, v (as
    # GCC's regenerated images do); no weight, bias, BN scale or attention gamma moves
    moved = {key for key, v in before.items() if not torch.equal(dict(nets[key[0]].named_parameters())[key[1]], v)}
    assert moved and all(k[0] == "D" and k[1].endswith("alpha") for k in moved), sorted(moved)
    assert {"arch_loss", "gap_student", "gap_teacher", "active_channels"} <= set(stats)
    assert float(aux.d_t_ema) == pytest.approx(stats["gap_teacher"]) and bool(aux.ema_started)
    assert all(p.requires_grad for p in D.weight_parameters()) and not any(g.alpha.requires_grad for g in D.gates())


def test_pruning_bisection_hits_the_budget_within_tolerance():
    from baselines.gcc.train import bisect_widths, widths_at
    from vem.metrics.cost import count_macs_thop_legacy
    from vem.models import build, record

    torch.manual_seed(0)
    kw = dict(in_nc=128, out_nc=3, ngf=48, image_size=64)
    G = build(record("sagan", **kw))
    with torch.no_grad():
        for bn in G.bn_layers():
            bn.weight.copy_(torch.rand(bn.weight.shape))

    def macs(widths):
        return count_macs_thop_legacy(build(record("sagan", **kw, widths=widths)), 128, 1)

    full = macs(G.widths)
    for target, tol in ((12e6, 0.2e6), (9e6, 0.1e6), (full * 0.97, full * 0.01)):
        (widths, m, t), trace = bisect_widths(G, macs, target, tol, 100)
        assert abs(m - target) <= tol, (target, m, trace[-3:])
        assert widths == widths_at(G, t) and min(widths) >= 1 and m == macs(widths)
        assert trace[-1]["macs_gcc"] == m
    with pytest.raises(ValueError, match="no threshold brings the generator within"):
        bisect_widths(G, macs, 1e3, 1.0, 30)      # below the smallest reachable width set


def test_unconditional_task_data_latent_pools_and_real_statistics(tmp_path):
    from vem.data.taskdata import TaskData
    from vem.data.tasks import build_task, get_task, latents

    spec = get_task(TASK)
    assert spec.kind == "unconditional" and spec.input_size == 1
    fm = {"train_images": np.random.default_rng(0).integers(0, 255, (120, 28, 28), dtype=np.uint8),
          "train_labels": np.arange(120) % 10,
          "test_images": np.random.default_rng(1).integers(0, 255, (30, 28, 28), dtype=np.uint8),
          "test_labels": np.arange(30) % 10}
    arrays = build_task(TASK, fm)
    assert sorted(arrays) == ["test_B", "train_B", "val_B"] and len(arrays["val_B"]) == 10
    np.savez(tmp_path / "u.npz", **arrays)
    data = TaskData(tmp_path / "u.npz", TASK)
    z = data.tensor("test", "A")
    assert z.shape == (30, 128, 1, 1) and data.n("test", "A") == 30
    assert torch.equal(z, latents(128, "test", 30))                      # the same z for every model
    assert not torch.equal(data.tensor("train", "A")[:30], z)            # each split its own stream
    assert torch.equal(latents(128, "test", 10), z[:10])                 # a prefix of the pool


@pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST is not installed (make setup)")
def test_sagan_teacher_trains_and_evaluates_with_both_mac_counts(uncond_assets, tmp_path):
    from vem.config import resolve
    from vem.data.taskdata import open_task_data
    from vem.eval import ValScorer, evaluate, real_stats
    from vem.train import train_teacher

    d, assets = uncond_assets
    cfg = resolve(TASK, {"teachers.original.iters": 4, "teachers.original.snapshot_every": 2,
                         "teachers.original.batch": 8, "eval.val_images": 50})
    data = open_task_data(d / "d.npz", TASK, cfg)
    ck, curve = train_teacher(cfg["teachers"]["original"], data, 0, lambda: ValScorer(data, assets / "feature.pt",
                                                                                       cfg))
    assert [r["iter"] for r in curve] == [2, 4] and ck["generator"]["backbone"] == "sagan"
    stats = real_stats(data, assets / "feature.pt", cfg, tmp_path / "real.zip")
    assert stats["n"] == data.n("test", "B") and "real test B" in stats["description"]
    np.savez(tmp_path / "stats.npz", **{k: np.asarray(v) for k, v in stats.items()})
    m = evaluate(ck, data, assets / "feature.pt", cfg, tmp_path / "images.zip", tmp_path / "stats.npz")
    assert m["protocol"]["n_images"] == data.n("test", "A") == 10_000
    assert m["cost"]["input"] == [1, 128, 1, 1] and m["cost"]["macs_gcc"] == 449_024 < m["cost"]["macs"]
    assert "subset" not in m["protocol"]
    # eval.test_images: the first N test latents, scored as those N of the full evaluation would be, and said so
    from vem.eval.backends import make_backend

    cut = resolve(TASK, {"eval.test_images": 2000})
    q = evaluate(ck, data, assets / "feature.pt", cut, tmp_path / "first.zip", tmp_path / "stats.npz")
    assert q["protocol"]["n_images"] == 2000 and "first 2000 of 10000" in q["protocol"]["subset"]
    with zipfile.ZipFile(tmp_path / "images.zip") as full, zipfile.ZipFile(tmp_path / "first.zip") as first, \
            zipfile.ZipFile(tmp_path / "prefix.zip", "w") as prefix:
        names = sorted(full.namelist())[:2000]
        assert sorted(first.namelist()) == names and all(first.read(n) == full.read(n) for n in names)
        for n in names:
            prefix.writestr(n, full.read(n))
    backend = make_backend(data.spec, assets / "feature.pt", cfg)
    want = backend.score(tmp_path / "prefix.zip", backend.reference(data, "test", tmp_path / "stats.npz"))[0]
    assert q["metric"]["value"] == want != m["metric"]["value"]


@pytest.fixture(scope="module")
def uncond_assets(edges_assets, tmp_path_factory):
    d = tmp_path_factory.mktemp("uncond")
    save_task_data(TASK, d)
    return d, edges_assets


OV = {"gcc.pretrain.iters": 4, "gcc.pretrain.snapshot_every": 2, "gcc.pretrain.batch": 8, "gcc.iters": 8,
      "gcc.batch": 8, "gcc.eval_every": 4, "eval.val_images": 50}


@pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST is not installed (make setup)")
def test_gcc_stages_run_and_the_student_is_pruned_and_reinitialised(uncond_assets, tmp_path):
    from baselines.gcc import train
    from vem.models import load_generator
    from vem.utils import atomic_save_torch

    d, assets = uncond_assets

    def ctx(stage, inputs, addon="none", method="gcc", ov=OV):
        return stage_context(method, stage, TASK, d / "d.npz", ov, 0, inputs, assets / "feature.pt", addon=addon,
                             lambda_mi=0.1 if addon != "none" else None)

    pre, curve = train.pretrain(ctx("pretrain", {}))
    assert pre["generator"]["kwargs"]["ngf"] == 12 and [r["iter"] for r in curve] == [2, 4]
    atomic_save_torch(tmp_path / "pretrain.pt", pre)
    pruned, trace = train.prune(ctx("prune", {"pretrain": tmp_path / "pretrain.pt"}))
    c = ctx("prune", {}).section
    assert pruned["within_tolerance"] and abs(pruned["macs_gcc"] - c["target_macs"]) <= c["tolerance"]
    assert pruned["macs_gcc"] < pruned["pretrain_macs_gcc"] and len(trace) == pruned["bisection_steps"]
    atomic_save_torch(tmp_path / "prune.pt", pruned)
    student_ck, curve = train.distill(ctx("distill", {"prune": tmp_path / "prune.pt"}, addon="vem"))
    assert student_ck["generator"]["kwargs"]["widths"] == pruned["widths"]
    assert {"val", "content", "style", "arch_loss", "active_channels", "energy_gap", "teacher_g_loss"} <= set(curve[0])
    assert student_ck["macs_gcc"] == pruned["macs_gcc"]
    assert load_generator(student_ck)(torch.randn(2, 128, 1, 1)).shape == (2, 1, 32, 32)
    # Slimming: the same pipeline without teacher or gates, and no add-on
    sl = {k.replace("gcc.", "slimming."): v for k, v in OV.items()}
    ck, curve = train.distill(ctx("retrain", {"prune": tmp_path / "prune.pt"}, method="slimming", ov=sl))
    assert "arch_loss" not in curve[0] and "teacher_g_loss" not in curve[0] and "content" in curve[0]
    with pytest.raises(ValueError, match="runs without an MI add-on"):
        train.distill(ctx("retrain", {"prune": tmp_path / "prune.pt"}, method="slimming", ov=sl, addon="vid"))


def _cmd(d, assets, out, prune, every):
    cmd = [sys.executable, "-m", "vem", "stage", "--task", TASK, "--method", "gcc", "--stage", "distill", "--seed", "1",
           "--addon", "crd", "--threads", "1", "--data", str(d / "d.npz"), "--evalnet", str(assets / "feature.pt"),
           "--checkpoint-every", str(every), "--out", str(out / "student.pt"), "--table", str(out / "curve.csv"),
           "--input", f"prune={prune}"]
    for k, v in {**OV, "gcc.iters": 30, "gcc.eval_every": 10}.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd


@pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST is not installed (make setup)")
def test_interrupted_distill_resumes_to_the_same_student_and_teacher(uncond_assets, tmp_path):
    from vem.utils import atomic_save_torch

    d, assets = uncond_assets
    atomic_save_torch(tmp_path / "prune.pt", {"widths": [40, 20, 10], "macs_gcc": 0})
    assert_resumes_exactly(lambda out, every: _cmd(d, assets, out, tmp_path / "prune.pt", every), tmp_path,
                           "student.pt", every=4, min_iter=12, curve="curve.csv")


def test_torch_free_count_equals_gccs_counter_on_the_built_generator():
    """baselines.gcc.arithmetic (what the dry run checks target_macs with) = count_macs_thop_legacy of the built
    SAGAN for random widths at 32 and 64 px, and GCC's published 23,449,600 for the ngf-64 generator."""
    from baselines.gcc.arithmetic import sagan_macs
    from vem.metrics.cost import count_macs_thop_legacy
    from vem.models import build, record

    assert sagan_macs([512, 256, 128, 64], 3, 64) == 23_449_600
    rng = np.random.default_rng(0)
    for size, n in ((32, 3), (64, 4)):
        for widths in ([1] * n, *([int(v) for v in rng.integers(1, 40, n)] for _ in range(3))):
            G = build(record("sagan", in_nc=16, out_nc=2, image_size=size, widths=widths))
            assert sagan_macs(widths, 2, size) == count_macs_thop_legacy(G, 16, 1), widths


def test_gcc_configuration_checks():
    from vem.config import ConfigError, resolve

    with pytest.raises(ConfigError, match=r"gcc.target_macs 1000 \(\+ tolerance 100\) is below the smallest SAGAN"):
        resolve(TASK, {"gcc.target_macs": 1000.0, "gcc.tolerance": 100.0}, "gcc")

    with pytest.raises(ConfigError, match="online_teacher false leaves no teacher"):
        resolve(TASK, {"gcc.online_teacher": False}, "gcc")
    no_teacher = {"gcc.online_teacher": False, "gcc.gated_d": False, "gcc.lambda_content": 0.0,
                  "gcc.lambda_gram": 0.0, "gcc.lambda_l1": 0.0}
    with pytest.raises(ConfigError, match="gcc.online_teacher false leaves its add-on runs no teacher"):
        resolve(TASK, no_teacher, "gcc")              # its vid/crd/vem runs would fail after pretrain and prune
    assert not resolve(TASK, {}, "slimming")["slimming"]["online_teacher"]   # Slimming: that, without add-ons
    with pytest.raises(ConfigError, match="do not exist at 32 px"):
        resolve(TASK, {"gcc.g_taps": ["l4"]}, "gcc")
    with pytest.raises(ConfigError, match="gate_threshold"):
        resolve(TASK, {"gcc.gate_threshold": 0.0}, "gcc")
    with pytest.raises(ConfigError, match="does not run on"):
        resolve("fmnist_sneaker2boot", {}, "gcc")
    assert resolve(TASK, {"gcc.gate_threshold": 0.1}, "gcc")["gcc"]["gate_threshold"] == 0.1   # the script's value
    s = resolve(TASK, {}, "slimming")["slimming"]
    g = resolve(TASK, {}, "gcc")["gcc"]
    assert (s["target_macs"], s["pretrain"], s["iters"]) == (g["target_macs"], g["pretrain"], g["iters"])
    assert not s["online_teacher"] and not s["gated_d"] and s["lambda_content"] == s["lambda_gram"] == 0


def test_gcc_init_leaves_spectrally_normalised_convs_at_pytorchs_default():
    """GCC's init_weights skips the SN-wrapped convs (their ``weight`` deleted by the wrapper), draws the other
    conv weights N(0, 0.02) with zero biases, BN weights N(1, 0.02) and BN biases N(0, 1)."""
    from vem.models import build, init_weights, record
    from vem.models.sagan import SAGANDiscriminator

    torch.manual_seed(0)
    for net in (build(record("sagan", in_nc=128, out_nc=3, ngf=64, image_size=64)), SAGANDiscriminator(3, 64, 64)):
        before = {k: v.clone() for k, v in net.state_dict().items()}
        init_weights(net, "gcc")
        after = net.state_dict()
        sn = [k for k in after if ".parametrizations.weight.original" in k]
        assert len(sn) == 4
        for k in sn:      # the SN conv's weight and bias as PyTorch's reset_parameters left them
            conv = k.split(".parametrizations")[0]
            assert torch.equal(after[k], before[k]) and torch.equal(after[f"{conv}.bias"], before[f"{conv}.bias"])
        plain = [k[:-len(".weight")] for k, v in after.items() if k.endswith(".weight") and v.dim() == 4]
        assert plain      # the attention's 1x1 convs and the last layer
        for m in plain:
            w = after[f"{m}.weight"]
            assert abs(float(w.std()) - 0.02) < 0.004 and not torch.equal(w, before[f"{m}.weight"])
            assert not after[f"{m}.bias"].any()
        bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        if bns:
            w, b = torch.cat([m.weight.detach() for m in bns]), torch.cat([m.bias.detach() for m in bns])
            assert abs(float(w.mean()) - 1) < 0.005 and abs(float(w.std()) - 0.02) < 0.003
            assert abs(float(b.std()) - 1) < 0.1       # init.normal_(bias, 0.0): the default std 1
    with pytest.raises(ValueError, match="unknown init 'gcx'"):
        init_weights(torch.nn.Conv2d(1, 1, 1), "gcx")


def _gcc_list(net) -> list:
    """GCC's SAGANModel parameter list, written from its rule: for every module in named_modules() that is a
    Conv2d, ConvTranspose2d, BatchNorm2d, SpectralNorm or Self_Attn, its parameters() (a SpectralNorm wrapper's
    include the wrapped conv's, which the walk then visits again; so do an attention module's convs)."""
    from vem.models.sagan import ChannelGate, SelfAttention

    out = []
    for m in net.modules():
        if isinstance(m, ChannelGate):
            continue
        sn = isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and hasattr(m, "parametrizations")
        if sn:   # the wrapper (weight_bar, bias), then the wrapped conv itself (the same tensors)
            out += [m.parametrizations.weight.original, m.bias] * 2
        elif isinstance(m, SelfAttention):
            out += list(m.parameters())
        elif isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.BatchNorm2d)):
            out += list(m.parameters())
    return out


def test_duplicated_parameters_take_two_adam_updates_as_torchs_adam_on_gccs_list():
    import copy
    import warnings

    from baselines.gcc.train import _Adam, listed_twice
    from vem.models import build, record
    from vem.models.sagan import SAGANDiscriminator

    torch.manual_seed(0)
    G = build(record("sagan", in_nc=16, out_nc=1, ngf=4, image_size=32))
    D = SAGANDiscriminator(1, 4, 32, gated=True)
    for net, params in ((G, list(G.parameters())), (D, D.weight_parameters())):
        gcc = _gcc_list(net)
        assert {id(p) for p in gcc} == {id(p) for p in params}
        twice = listed_twice(net)
        counts = {}
        for p in gcc:
            counts[id(p)] = counts.get(id(p), 0) + 1
        assert {i for i, n in counts.items() if n == 2} == {id(p) for p in twice} and max(counts.values()) == 2
        ref_net = copy.deepcopy(net)
        ref_gcc = _gcc_list(ref_net)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # torch warns of the duplicates (GCC's list has them)
            ref = torch.optim.Adam(ref_gcc, lr=1e-3, betas=(0.0, 0.9), foreach=False)
        ours = _Adam(params, twice, lr=1e-3, betas=(0.0, 0.9))
        x = torch.randn(4, 16, 1, 1) if net is G else torch.randn(4, 1, 32, 32)
        for _ in range(3):
            for n_, opt in ((net, ours), (ref_net, ref)):
                opt.zero_grad(set_to_none=True)
                n_(x).square().mean().backward()
                opt.step()
        for (k, a), b in zip(net.state_dict().items(), ref_net.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-7, msg=k)
        once = _Adam(params, [], lr=1e-3, betas=(0.0, 0.9))
        assert set(once.named("opt_g")) == {"opt_g"} and set(ours.named("opt_g")) == {"opt_g", "opt_g_twice"}


def test_pruning_threshold_is_signed_as_gccs_scale_prune():
    from baselines.gcc.train import bisect_widths, widths_at
    from vem.models import build, record

    G = build(record("sagan", in_nc=8, out_nc=1, ngf=4, image_size=32))
    with torch.no_grad():
        for bn, g in zip(G.bn_layers(), ([0.5, -0.9, 0.3, -0.4, 0.2, 0.1, -0.05, 0.6, 0.7, -0.8, 0.9, 0.05, 0.4,
                                          -0.3, 0.2, 0.1], [0.3, -0.6] * 4, [-0.7, 0.8, 0.1, 0.2])):
            bn.weight.copy_(torch.tensor(g))
    # gamma > t, signed: a strongly negative scale is pruned (|gamma| would keep it)
    assert widths_at(G, 0.25) == [6, 4, 1]          # |gamma| > 0.25 would keep [10, 8, 2]
    assert widths_at(G, -0.5) == [14, 4, 3]
    (widths, _, t), trace = bisect_widths(G, lambda w: sum(w), target=11, tol=0, max_steps=60)
    assert widths == [6, 4, 1] and 0.2 <= t < 0.3
    assert trace[0]["threshold"] == pytest.approx((-0.9 + 0.3) / 2)     # between the signed bounds

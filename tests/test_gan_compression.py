"""GAN-Compression on the method contract: the slimmable mobile ResNet against an independently written
reference (same weights, same outputs), slicing (supernet at a configuration = its sliced sub-network = the
exported student), MACs in closed form against the traced counters and GAN-Compression's published counts,
the evolutionary search (budget, determinism, the first generation's weights, no test split), exact resume
of the supernet and the search after kill -9, and the configuration checks."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import fmnist_available, interrupt, run_vem, save_task_data, stage_context

TASK = "fmnist_sneaker2boot"
CHOICES = [[8, 6, 4, 3, 2]] * 8


def _net(channels, n_blocks=3, in_nc=1, out_nc=1):
    from vem.models import build, record

    return build(record("slimmable_mobile_resnet", in_nc=in_nc, out_nc=out_nc, channels=channels, n_blocks=n_blocks))


def _randomise(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return net


# --------------------------------------------------------------------------------------------------
# the architecture, against GAN-Compression's SubMobileResnetGenerator written from its description


def _reference(in_nc, out_nc, c, n_blocks):
    """GAN-Compression's sub_mobile_resnet_9blocks layout: one nn.Sequential, instance norms without affine
    parameters, every conv with a bias, separable convs (depthwise 3x3, norm, 1x1), dropout slot, clamp."""
    def sep(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cin, 3, groups=cin), nn.InstanceNorm2d(cin), nn.Conv2d(cin, cout, 1))

    class Block(nn.Module):
        def __init__(self, ic, oc):
            super().__init__()
            self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), sep(ic, oc), nn.InstanceNorm2d(oc), nn.ReLU(True),
                                            nn.Dropout(0.0), nn.ReflectionPad2d(1), sep(oc, ic), nn.InstanceNorm2d(oc))

        def forward(self, x):
            return x + self.conv_block(x)

    per = n_blocks // 3
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_nc, c[0], 7), nn.InstanceNorm2d(c[0]), nn.ReLU(True),
              nn.Conv2d(c[0], 2 * c[1], 3, 2, 1), nn.InstanceNorm2d(2 * c[1]), nn.ReLU(True),
              nn.Conv2d(2 * c[1], 4 * c[2], 3, 2, 1), nn.InstanceNorm2d(4 * c[2]), nn.ReLU(True)]
    layers += [Block(4 * c[2], 4 * c[3 + min(i // per, 2)]) for i in range(n_blocks)]
    layers += [nn.ConvTranspose2d(4 * c[2], 2 * c[6], 3, 2, 1, output_padding=1), nn.InstanceNorm2d(2 * c[6]),
               nn.ReLU(True), nn.ConvTranspose2d(2 * c[6], c[7], 3, 2, 1, output_padding=1), nn.InstanceNorm2d(c[7]),
               nn.ReLU(True), nn.ReflectionPad2d(3), nn.Conv2d(c[7], out_nc, 7), nn.Tanh()]
    model = nn.Sequential(*layers)
    return lambda x: model(x.clamp(-1, 1)), model


@pytest.mark.parametrize("n_blocks", [3, 9])
def test_sub_network_equals_gan_compressions_layout_with_the_same_weights(n_blocks):
    c = [6, 4, 3, 2, 8, 4, 3, 6]
    ours = _randomise(_net(c, n_blocks, in_nc=2, out_nc=3)).eval()
    ref, model = _reference(2, 3, c, n_blocks)
    mine, theirs = list(ours.parameters()), list(model.parameters())
    assert len(mine) == len(theirs)
    with torch.no_grad():
        for a, b in zip(mine, theirs):
            assert a.shape == b.shape
            b.copy_(a)
    x = torch.rand(2, 2, 32, 32) * 2.4 - 1.2         # beyond [-1, 1]: both clamp
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-6)


def test_supernet_at_a_configuration_equals_its_slices_and_the_exported_student():
    from vem.models import load_generator, record

    sup = _randomise(_net([8] * 8)).eval()
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    rng = random.Random(1)
    for _ in range(4):
        config = [rng.choice(ch) for ch in CHOICES]
        sub = sup.subnet(config).eval()
        torch.testing.assert_close(sup(x, config), sub(x), rtol=0, atol=1e-6)
        y, feats = sup.forward_features(x, config)
        ys, fs = sub.forward_features(x)
        torch.testing.assert_close(y, ys, rtol=0, atol=1e-6)
        assert [f.shape[1] for f in feats] == [4 * config[2]] * 4
        for a, b in zip(feats, fs):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        # the exported student rebuilds from its own record
        ck = {"generator": record("slimmable_mobile_resnet", in_nc=1, out_nc=1, channels=config, n_blocks=3),
              "state_dict": sub.state_dict()}
        torch.testing.assert_close(load_generator(ck).eval()(x), sup(x, config), rtol=0, atol=1e-6)
    # the widest configuration is the supernet itself; a wider one is refused, naming it
    torch.testing.assert_close(sup(x, [8] * 8), sup(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="9_8_8_8_8_8_8_8 is wider"):
        sup(x, [9] + [8] * 7)
    with pytest.raises(ValueError, match="8 positive integers"):
        sup(x, [8] * 7)


def test_macs_closed_form_equals_the_traced_counters_and_gan_compressions_numbers():
    from vem.metrics.cost import count_macs, count_macs_v001
    from vem.metrics.slimmable import macs, parse_config

    rng = random.Random(0)
    for n_blocks, nc, size, ch in ((9, 3, 64, [64, 48, 32, 24, 16]), (3, 1, 32, [8, 6, 4, 3, 2])):
        for _ in range(3):
            c = [rng.choice(ch) for _ in range(8)]
            G = _net(c, n_blocks, nc, nc)
            assert macs(c, n_blocks, nc, nc, size) == count_macs(G, nc, size)
            assert macs(c, n_blocks, nc, nc, size, norms=True) == count_macs_v001(G, nc, size)
    # GAN-Compression's README: Fast horse2zebra 2.64 G (issue #96: 2.641 G); the paper's Table 4 2.55 G
    assert macs(parse_config("16_16_24_16_32_64_16_24"), 9, 3, 3, 256, norms=True) == 2_640_576_512
    assert macs(parse_config("16_16_32_16_32_32_16_16"), 9, 3, 3, 256, norms=True) == 2_546_204_672
    # the widest sub-network is mobile_resnet_9blocks ngf 64 (18.314 G, OMGD's wide teacher)
    from vem.models import build, record

    mobile = build(record("mobile_resnet", ngf=64, n_blocks=9))
    assert macs([64] * 8, 9, 3, 3, 256) == count_macs(mobile, 3, 256) == 18_314_428_416


# --------------------------------------------------------------------------------------------------
# the evolutionary search on a synthetic objective


SEARCH = {"population": 12, "generations": 5, "parent_ratio": 0.25, "mutation_ratio": 0.5, "mutate_prob": 0.4,
          "weighted_sample": 2.0, "max_redraws": 1000}


def _search(seed=0, budget=700_000, evaluate=None, **kw):
    from baselines.gan_compression.train import run_search
    from vem.metrics.slimmable import macs

    gen = torch.Generator().manual_seed(seed)
    calls = []

    def ev(config):
        calls.append(list(config))
        return evaluate(config) if evaluate else -sum(config)       # wider is better

    def loop(state, step):
        for g in range(1, SEARCH["generations"] + 1):
            step(g)

    st = run_search(CHOICES, budget, {**SEARCH, **kw}, lambda c: macs(c, 3, 1, 1, 32, norms=True), ev, False, gen,
                    loop)
    return st, calls


def test_search_respects_the_budget_caches_and_is_deterministic():
    from vem.metrics.slimmable import config_str, macs

    st, calls = _search()
    assert st.log and all(r["macs"] <= 700_000 for r in st.log)
    assert all(macs(c, 3, 1, 1, 32, norms=True) <= 700_000 for c in calls)
    assert len(calls) == len({config_str(c) for c in calls}) == len(st.results)   # each config scored once
    assert sum(r["cached"] for r in st.log) == len(st.log) - len(calls)
    assert st.redraws > 0                                      # over-budget samples were drawn and redrawn
    kinds = [r["kind"] for r in st.log]
    assert kinds.count("initial") == 12 and kinds.count("mutation") == kinds.count("crossover") == 5 * 6
    again, _ = _search()
    assert again.log == st.log and again.best == st.best
    other, _ = _search(seed=1)
    assert other.log != st.log
    # the best recorded parents improve monotonically, and the search beats its first population
    vals = [b["val"] for b in st.best]
    assert vals == sorted(vals, reverse=True) and vals[-1] < min(r["val"] for r in st.log if r["kind"] == "initial")


def test_search_finds_the_optimum_of_a_separable_objective():
    target = [6, 4, 3, 2, 8, 4, 3, 6]

    def dist(c):
        return sum(abs(a - b) for a, b in zip(c, target))

    st, _ = _search(budget=1e9, evaluate=dist, generations=5, population=24)
    assert dist(st.best[-1]["config"]) <= 2


def test_first_generation_weights_favour_the_later_entries_of_each_choice_list():
    """GAN-Compression's weighted_sample 2 with arithmetic weights: positions get 4, 5, 6, 7, 8 (for five
    choices), so the *last* (narrowest) width is drawn twice as often as the first."""
    from baselines.gan_compression.train import _weighted

    gen = torch.Generator().manual_seed(0)
    draws = np.array([_weighted([[8, 6, 4, 3, 2]], gen, 2.0)[0] for _ in range(6000)])
    freq = np.array([(draws == v).mean() for v in (8, 6, 4, 3, 2)])
    np.testing.assert_allclose(freq, np.array([4, 5, 6, 7, 8]) / 30, atol=0.02)


def test_search_that_cannot_fit_the_budget_stops_with_one_line():
    with pytest.raises(RuntimeError, match="over the budget 1000"):
        _search(budget=1000, max_redraws=20)


# --------------------------------------------------------------------------------------------------
# the stages, on real data

pytestmark_fm = pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST is not installed (make setup)")
OV = {"gan_compression.iters": 8, "gan_compression.eval_every": 4, "gan_compression.batch": 4,
      "gan_compression.search.population": 4, "gan_compression.search.generations": 3}


@pytest.fixture(scope="module")
def s2b_gc(edges_assets, tmp_path_factory):
    """sneaker2boot data and a small random Original (the mini recipe's architecture)."""
    from vem.models import build, record
    from vem.utils import atomic_save_torch

    d = tmp_path_factory.mktemp("gc")
    save_task_data(TASK, d)
    rec = record("resnet", in_nc=1, out_nc=1, ngf=8, n_blocks=3, norm="instance")
    torch.manual_seed(0)
    atomic_save_torch(d / "original.pt", {"generator": rec, "state_dict": build(rec).state_dict()})
    return d, edges_assets


def _ctx(d, assets, stage, inputs, addon="none", overrides=None, lambda_mi=None):
    return stage_context("gan_compression", stage, TASK, d / "d.npz", {**OV, **(overrides or {})}, 0, inputs,
                         assets / "feature.pt", addon=addon, lambda_mi=lambda_mi)


@pytestmark_fm
def test_stages_run_and_the_search_never_reads_the_test_split(s2b_gc, tmp_path):
    from baselines.gan_compression import train
    from vem.models import load_generator
    from vem.utils import atomic_save_torch

    d, assets = s2b_gc
    ctx = _ctx(d, assets, "supernet", {"original": d / "original.pt"}, addon="vem", lambda_mi=0.1)
    sup, curve = train.supernet(ctx)
    assert [r["iter"] for r in curve] == [4, 8] and {"val_largest", "val_smallest", "energy_gap"} <= set(curve[0])
    atomic_save_torch(tmp_path / "supernet.pt", sup)

    ctx = _ctx(d, assets, "search", {"supernet": tmp_path / "supernet.pt"})
    read = set()

    class Spy(dict):
        def __getitem__(self, k):
            read.add(k)
            return super().__getitem__(k)

    ctx.data.raw = Spy({k: ctx.data.raw[k] for k in ctx.data.raw})
    ctx.data._cache.clear()
    found, log = train.search(ctx)
    assert read and not any(k.startswith("test") for k in read), sorted(read)
    budget = ctx.section["search"]["budget_macs"]
    assert all(r["macs"] <= budget for r in log) and found["macs_gan_compression"] <= budget
    assert found["val"] == min(r["val"] for r in log if r["generation"] < 3)   # the last children are not ranked
    atomic_save_torch(tmp_path / "search.pt", found)

    ctx = _ctx(d, assets, "export", {"supernet": tmp_path / "supernet.pt", "search": tmp_path / "search.pt"})
    ck, table = train.export(ctx)
    student = load_generator(ck).eval()
    G = load_generator(sup).eval()
    x = ctx.data.tensor("val", "A")[:4]
    torch.testing.assert_close(student(x), G(x, found["config"]), rtol=0, atol=1e-6)
    assert table[-1]["stage"] == "export" and table[-1]["val"] == pytest.approx(found["val"], rel=1e-6)
    assert ck["macs_gan_compression"] == found["macs_gan_compression"] > ck["macs_harness"]


@pytestmark_fm
def test_only_the_supernet_stage_builds_the_addon(s2b_gc):
    d, assets = s2b_gc
    ctx = _ctx(d, assets, "export", {}, addon="vem", lambda_mi=0.1)
    assert not ctx.trains_addon
    with pytest.raises(ValueError, match="does not train with the add-on"):
        ctx.build_addon(1, 32, 10)


def _cmd(d, assets, stage, out, inputs, every, addon="vem"):
    cmd = [sys.executable, "-m", "vem", "stage", "--task", TASK, "--method", "gan_compression", "--stage", stage,
           "--seed", "1", "--addon", addon, "--threads", "1", "--data", str(d / "d.npz"),
           "--evalnet", str(assets / "feature.pt"), "--checkpoint-every", str(every),
           "--out", str(out / f"{stage}.pt"), "--table", str(out / f"{stage}.csv")]
    for k, v in inputs.items():
        cmd += ["--input", f"{k}={v}"]
    for k, v in {**OV, "gan_compression.iters": 40, "gan_compression.eval_every": 10,
                 "gan_compression.search.generations": 12}.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd


@pytestmark_fm
@pytest.mark.parametrize("stage", ["supernet", "search"])
def test_interrupted_stage_resumes_to_the_same_result(s2b_gc, tmp_path, stage):
    import pandas as pd

    d, assets = s2b_gc
    inputs = {"original": d / "original.pt"}
    if stage == "search":   # a supernet to search in
        r = run_vem(_cmd(d, assets, "supernet", tmp_path, inputs, 0))
        assert r.returncode == 0, r.stderr[-1500:]
        inputs = {"supernet": tmp_path / "supernet.pt"}
    ref, run = tmp_path / "ref", tmp_path / "run"
    r = run_vem(_cmd(d, assets, stage, ref, inputs, 0))
    assert r.returncode == 0, r.stderr[-1500:]
    min_iter = 12 if stage == "supernet" else 3
    code, err = interrupt(_cmd(d, assets, stage, run, inputs, 3), run / f"{stage}.pt.resume", "kill", min_iter)
    assert code == -9, err[-800:]
    assert not (run / f"{stage}.pt").exists()
    r = run_vem(_cmd(d, assets, stage, run, inputs, 3))
    assert r.returncode == 0 and "resuming from" in r.stderr, r.stderr[-1500:]
    a, b = (torch.load(x / f"{stage}.pt", weights_only=True) for x in (ref, run))
    if stage == "supernet":
        assert b["resumed_from"] >= 12
        for k, v in a["state_dict"].items():
            assert torch.equal(b["state_dict"][k], v), k
        drop = ["seconds"]
    else:
        assert a["config_str"] == b["config_str"] and a["best"] == b["best"]
        drop = []
    pd.testing.assert_frame_equal(*(pd.read_csv(x / f"{stage}.csv").drop(columns=drop) for x in (ref, run)),
                                  check_exact=True)


# --------------------------------------------------------------------------------------------------
# configuration


def test_budget_below_the_smallest_sub_network_is_refused_when_the_config_resolves():
    from vem.config import ConfigError, resolve

    with pytest.raises(ConfigError, match="budget_macs 400000 is below the smallest sub-network 2_2_2_2_2_2_2_2"):
        resolve(TASK, {"gan_compression.search.budget_macs": 4e5}, method="gan_compression")
    cfg = resolve("horse2zebra", {}, method="gan_compression")
    assert cfg["gan_compression"]["search"]["budget_macs"] == 3e9
    assert cfg["gan_compression"]["choices"] == [[64, 48, 32, 24, 16]] * 8


def test_mini_budget_is_the_papers_share_of_the_widest_sub_network():
    from vem.config import resolve
    from vem.metrics.slimmable import macs

    paper = 3e9 / macs([64] * 8, 9, 3, 3, 256, norms=True)
    cfg = resolve(TASK, {}, method="gan_compression")
    c = cfg["gan_compression"]
    widest = macs([max(ch) for ch in c["choices"]], c["n_blocks"], 1, 1, 32, norms=True)
    assert c["search"]["budget_macs"] / widest == pytest.approx(paper, rel=1e-4)
    # the paper's share of the Original would fit nothing here (the anchors' suggestion; see config.yaml)
    assert 3e9 / 56.83e9 * 7_329_792 < macs([2] * 8, 3, 1, 1, 32, norms=True)


def test_best_on_test_selection_applies_to_trajectories_only():
    """A searched, exported sub-network has no training snapshots: its runs keep GAN-Compression's own protocol
    (the search selects on held-out training images, the test split scores the export once)."""
    from vem.plan import Plan

    cfg = {"tasks": [TASK], "methods": {"gan_compression": "all", "cat": "all"}, "addons": ["none"], "seeds": [0],
           "tables": [4], "teacher_seed": 0, "overrides": {}, "lambda_mi_sweep": [], "sweep_task": TASK,
           "checkpoint_selection": "best_on_test"}
    plan = Plan(cfg)
    assert plan.selection("cat") == "best_on_test" and plan.selection("gan_compression") == "final"

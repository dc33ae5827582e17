"""CAT on the method contract: its inception generator against an independently written reference (same
weights, same outputs), CAT's MAC convention on hand-counted layers, kernel alignment against closed forms,
the |gamma| bisection against a brute-force search, the distill stage's initialisation, exact resume after
kill -9 / SIGTERM, and its configuration checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from tests.conftest import ROOT, fmnist_available, interrupt, run_vem, save_task_data, stage_context

TASK = "fmnist_sneaker2boot"


def _inception(**kw):
    from vem.models import build, record

    return build(record("inception", **kw))


# --------------------------------------------------------------------------------------------------
# the inception generator, against a functional reference written from CAT's description


def _reference_forward(sd: dict, widths: dict, kernel_sizes, x: torch.Tensor) -> torch.Tensor:
    """CAT's inception_9blocks written as plain functions over a state dict (CAT's key layout)."""
    def conv(h, key, stride=1, padding=0, groups=1):
        return F.conv2d(h, sd[f"{key}.weight"], sd.get(f"{key}.bias"), stride, padding, 1, groups)

    def norm(h, key):
        return F.instance_norm(h, weight=sd[f"{key}.weight"], bias=sd[f"{key}.bias"], eps=1e-5)

    def pad(h, p):
        return F.pad(h, (p, p, p, p), mode="reflect") if p else h

    h = F.relu(norm(conv(pad(x, 3), "down_sampling.1"), "down_sampling.2"))
    h = F.relu(norm(conv(h, "down_sampling.4", 2, 1), "down_sampling.5"))
    h = F.relu(norm(conv(h, "down_sampling.7", 2, 1), "down_sampling.8"))
    for b, bw in enumerate(widths["blocks"]):
        res, dw, j = 0, 0, 0
        for k, m in zip(kernel_sizes, bw["res"]):
            if m:
                p, key = (k - 1) // 2, f"features.{b}.res_ops.{j}"
                y = F.relu(norm(conv(pad(h, p), f"{key}.1.0"), f"{key}.1.1"))
                res = res + conv(pad(y, p), f"{key}.4")
                j += 1
        j = 0
        for k, m in zip(kernel_sizes, bw["dw"]):
            if m:
                p, key = (k - 1) // 2, f"features.{b}.dw_ops.{j}"
                y = F.relu(norm(conv(h, f"{key}.0.0"), f"{key}.0.1"))
                y = F.relu(norm(conv(pad(y, p), f"{key}.2.0", groups=m), f"{key}.2.1"))
                dw = dw + conv(y, f"{key}.4")
                j += 1
        if sum(bw["res"]) + sum(bw["dw"]):
            h = h + norm(res + dw, f"features.{b}.pw_bn")
    for i in (0, 3):
        h = F.conv_transpose2d(h, sd[f"up_sampling.{i}.weight"], sd[f"up_sampling.{i}.bias"], 2, 1, 1)
        h = F.relu(norm(h, f"up_sampling.{i + 1}"))
    return torch.tanh(conv(pad(h, 3), "up_sampling.7"))


PRUNED = {"down": [3, 5, 7], "up": [6, 2],
          "blocks": [{"res": [2, 0, 1], "dw": [0, 3, 1]}, {"res": [0, 0, 0], "dw": [0, 0, 0]},
                     {"res": [0, 0, 2], "dw": [1, 0, 0]}]}


@pytest.mark.parametrize("widths", [None, PRUNED], ids=["full", "pruned"])
def test_inception_generator_equals_the_reference_with_the_same_weights(widths):
    torch.manual_seed(0)
    G = _inception(in_nc=2, out_nc=3, ngf=8, n_blocks=3, widths=widths).eval()
    with torch.no_grad():   # non-trivial affine norm parameters
        for m in G.modules():
            if isinstance(m, nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    x = torch.rand(2, 2, 24, 24) * 2 - 1
    sd = G.state_dict()
    w = G.widths
    with torch.no_grad():
        torch.testing.assert_close(G(x), _reference_forward(sd, w, (1, 3, 5), x), rtol=1e-5, atol=1e-5)
        y, feats = G.forward_features(x)
    # CAT's kernel-alignment layers: down_sampling.9 (after the last down-sampling ReLU) and the blocks' outputs
    assert [tuple(f.shape[1:]) for f in feats] == [(w["down"][2], 6, 6)] * 4
    torch.testing.assert_close(feats[0], G.down_sampling(x))
    if widths is None:   # unpruned: every branch has mid width 4 ngf // 6
        assert w["blocks"][0] == {"res": [5, 5, 5], "dw": [5, 5, 5]}
        assert G.features[1].first_norms()["res"][0] is G.features[1].res_ops[0][1][1]
    else:   # the empty block is the identity: its input equals its output
        assert len(G.features[1].res_ops) == len(G.features[1].dw_ops) == 0


def test_inception_widths_are_validated():
    with pytest.raises(ValueError, match="widths list 2 blocks for n_blocks=3"):
        _inception(ngf=8, n_blocks=3, widths={**PRUNED, "blocks": PRUNED["blocks"][:2]})
    with pytest.raises(ValueError, match="non-negative integers"):
        _inception(ngf=8, n_blocks=3, widths={**PRUNED, "down": [3, 0, 7]})
    with pytest.raises(ValueError, match="distinct odd"):
        _inception(ngf=8, n_blocks=3, kernel_sizes=[1, 2])


# --------------------------------------------------------------------------------------------------
# MACs in CAT's profiler convention


def test_cat_macs_counts_like_cats_profiler():
    from baselines.cat.macs import cat_macs

    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),                          # 3*4*9*8*8
        nn.InstanceNorm2d(4, affine=True),                       # 4*8*8 (no running statistics)
        nn.BatchNorm2d(4),                                       # 0 (running statistics)
        nn.ReLU(), nn.ReflectionPad2d(1),                        # 0
        nn.Conv2d(4, 4, 3, groups=4),                            # 4*4*9*8*8 // 4
        nn.BatchNorm2d(4, track_running_stats=False),            # 4*8*8
        nn.ConvTranspose2d(4, 2, 3, 2, 1, output_padding=1),     # by OUTPUT size: 4*2*9*16*16
        nn.Flatten(), nn.Linear(2 * 16 * 16, 5), nn.Tanh())     # 512*5
    expected = 3 * 4 * 9 * 64 + 4 * 64 + 4 * 4 * 9 * 64 // 4 + 4 * 64 + 4 * 2 * 9 * 256 + 512 * 5
    assert cat_macs(net, 3, 8) == expected


def test_mini_budget_is_the_papers_fraction_of_the_teacher():
    """mini target / mini teacher = paper target / paper teacher (CAT's convention, at each scale's input)."""
    from baselines.cat.macs import cat_macs
    from vem.config import resolve

    fractions = []
    for task, nc, size in (("fmnist_sneaker2boot", 1, 32), ("horse2zebra", 3, 256)):
        c = resolve(task, method="cat")["cat"]
        t = c["teacher"]
        G = _inception(in_nc=nc, out_nc=nc, ngf=t["ngf"], n_blocks=t["n_blocks"])
        fractions.append(c["target_macs"] / cat_macs(G, nc, size))
    assert fractions[1] == pytest.approx(2.6e9 / 43_527_405_568)
    assert fractions[0] == pytest.approx(fractions[1], rel=1e-5)


@pytest.mark.parametrize("size, norm", [(32, "instance_affine"), (30, "instance_affine"), (24, "batch")])
def test_torch_free_count_equals_cats_profiler_on_the_built_generator(size, norm):
    """baselines.cat.arithmetic (what the dry run checks target_macs with) = cat_macs of the built model, for
    random widths with deleted branches and blocks, odd sizes and both norm kinds, and for the smallest one."""
    from baselines.cat.arithmetic import inception_macs, smallest_widths
    from baselines.cat.macs import cat_macs

    rng = np.random.default_rng(size)
    for trial in range(4):
        widths = {"down": [int(v) for v in rng.integers(1, 9, 3)], "up": [int(v) for v in rng.integers(1, 9, 2)],
                  "blocks": [{"res": [int(v) for v in rng.integers(0, 4, 3) * (rng.random(3) < 0.6)],
                              "dw": [int(v) for v in rng.integers(0, 4, 3) * (rng.random(3) < 0.6)]}
                             for _ in range(3)]}
        if trial == 3:
            widths = smallest_widths(3, 2)
        G = _inception(in_nc=2, out_nc=3, ngf=8, n_blocks=3, norm=norm, widths=widths)
        assert inception_macs(widths, 2, 3, size, norm) == cat_macs(G, 2, size), widths


def test_a_budget_below_the_smallest_reachable_network_fails_the_dry_run_check():
    from baselines.cat.arithmetic import inception_macs, smallest_widths
    from vem.config import ConfigError, resolve

    c = resolve("fmnist_sneaker2boot", method="cat")["cat"]
    smallest = inception_macs(smallest_widths(c["teacher"]["n_blocks"], c["prune_cin_lb"]), 1, 1, 32,
                              c["teacher"]["norm"])
    assert smallest < c["target_macs"]
    resolve("fmnist_sneaker2boot", {"cat.target_macs": float(smallest)}, method="cat")      # reachable: fine
    with pytest.raises(ConfigError, match=rf"cat.target_macs {smallest - 1} is below the smallest network .*"
                                          rf"\({smallest} MACs at 32 px with cat.prune_cin_lb 4\)"):
        resolve("fmnist_sneaker2boot", {"cat.target_macs": float(smallest - 1)}, method="cat")


# --------------------------------------------------------------------------------------------------
# kernel alignment


def test_kernel_alignment_closed_forms():
    from baselines.cat.train import kernel_alignment as ka

    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 4)
    assert ka(x, x).item() == pytest.approx(1.0)
    assert ka(x, 3.7 * x).item() == pytest.approx(1.0)                 # scale-invariant
    assert ka(x[:1], torch.randn(1, 7, 2, 2)).item() == pytest.approx(1.0)   # batch 1: always 1, no signal
    # orthogonal rows vs identical rows: K_x = I, K_y = c J -> KA = 1 / sqrt(B)
    b = 5
    eye = torch.eye(b).reshape(b, b, 1, 1)
    same = torch.ones(b, 3, 1, 1) * 2.0
    assert ka(eye, same).item() == pytest.approx(1 / np.sqrt(b))
    # against the trace form on random maps of different widths
    y = torch.randn(6, 5, 2, 2)
    X, Y = x.reshape(6, -1).double().numpy(), y.reshape(6, -1).double().numpy()
    kx, ky = X @ X.T, Y @ Y.T
    ref = np.trace(kx @ ky) / np.sqrt(np.trace(kx @ kx) * np.trace(ky @ ky))
    assert ka(x, y).item() == pytest.approx(ref, rel=1e-5)
    with pytest.raises(ValueError, match="same batch"):
        ka(x, y[:3])


# --------------------------------------------------------------------------------------------------
# |gamma| bisection (stage prune)


def _teacher_ck(path, ngf=8, n_blocks=3, seed=0):
    """A saved CAT teacher whose norm scales are all distinct (spaced far more than the 1e-3 stop rule)."""
    from vem.models import record
    from vem.train.gan import build_discriminator, discriminator_record
    from vem.utils import atomic_save_torch

    torch.manual_seed(seed)
    rec = record("inception", in_nc=1, out_nc=1, ngf=ngf, n_blocks=n_blocks)
    from vem.models import build

    G = build(rec)
    norms = [*G.down_norms(), *G.up_norms(), *(n for b in G.features for ns in b.first_norms().values() for n in ns)]
    n_all = sum(n.weight.numel() for n in norms)
    values = torch.linspace(0.05, 2.0, n_all)[torch.randperm(n_all)]
    k = 0
    with torch.no_grad():
        for n in norms:
            n.weight.copy_(values[k:k + n.weight.numel()] * torch.sign(torch.randn(n.weight.numel())))
            k += n.weight.numel()
    d_rec = discriminator_record({"ndf": 4, "n_layers_d": 2, "norm_d": "instance_affine"}, 1)
    D = build_discriminator(d_rec)
    snap = {"iter": 4, "val": 1.0, "state_dict": G.state_dict(), "d_state_dict": D.state_dict()}
    atomic_save_torch(path, {"generator": rec, "state_dict": G.state_dict(), "snapshots": [snap], "best_iter": 4,
                             "discriminator": {"kwargs": d_rec, "state_dict": D.state_dict()}})
    return G


@pytest.fixture
def fake_data(tmp_path):
    z = np.zeros((4, 32, 32), np.uint8)
    np.savez(tmp_path / "d.npz", **{f"{s}_{side}": z for s in ("train", "val", "test") for side in "AB"})
    return tmp_path / "d.npz"


@pytest.mark.parametrize("fraction", [0.08, 0.3])
def test_bisection_finds_the_largest_threshold_network_in_the_budget(tmp_path, fake_data, fraction):
    from baselines.cat.macs import cat_macs
    from baselines.cat.train import prune, widths_at

    G = _teacher_ck(tmp_path / "t.pt")
    target = fraction * cat_macs(G, 1, 32)
    ctx = stage_context("cat", "prune", TASK, fake_data, {"cat.target_macs": target, "cat.prune_cin_lb": 2}, 0,
                        {"teacher": tmp_path / "t.pt"}, tmp_path / "none.pt")
    ck, trace = prune(ctx)
    assert ck["macs_cat"] <= target and trace[-1]["step"] == ck["bisection_steps"] == len(trace)
    # brute force: every distinct threshold, from the largest network down; the first that fits wins
    gammas = sorted({float(n.weight.detach().abs()[i]) for n in [*G.down_norms(), *G.up_norms(),
                     *(n for b in G.features for ns in b.first_norms().values() for n in ns)]
                     for i in range(n.weight.numel())})

    def macs(w):
        return cat_macs(_inception(in_nc=1, out_nc=1, ngf=8, n_blocks=3, widths=w), 1, 32)

    best = next(widths_at(G, t, 2) for t in [0.0, *gammas] if macs(widths_at(G, t, 2)) <= target)
    assert ck["widths"] == best
    assert min(ck["widths"]["down"] + ck["widths"]["up"]) >= 2          # the lower bound holds
    assert ck["teacher_macs_cat"] == cat_macs(G, 1, 32) and ck["macs_harness"] > 0
    # the trace is a bisection: the interval halves and always contains the threshold found
    assert all(r["lo"] <= ck["threshold"] <= r["hi"] for r in trace)
    # an impossible budget is refused with the smallest reachable size: by the configuration check (the dry run
    # and the stage's own resolve), before the prune would find it
    with pytest.raises(ValueError, match=r"below the smallest network the threshold can reach \(263552 MACs"):
        stage_context("cat", "prune", TASK, fake_data, {"cat.target_macs": 1000.0, "cat.prune_cin_lb": 2}, 0,
                      {"teacher": tmp_path / "t.pt"}, tmp_path / "none.pt")


# --------------------------------------------------------------------------------------------------
# configuration


def test_cat_configuration_checks():
    from vem.config import ConfigError, resolve

    with pytest.raises(ConfigError, match="kernel alignment over a batch of 1"):
        resolve(TASK, {"cat.batch": 1}, method="cat")
    assert resolve(TASK, {"cat.batch": 1, "cat.lambda_distill": 0.0}, method="cat")["cat"]["batch"] == 1
    with pytest.raises(ConfigError, match="affine norms"):
        resolve(TASK, {"cat.teacher.norm": "instance"}, method="cat")
    with pytest.raises(ConfigError, match="cat.target_macs must be > 0"):
        resolve(TASK, {"cat.target_macs": 0.0}, method="cat")
    with pytest.raises(ConfigError, match="does not run on paired tasks"):
        resolve("fmnist_edges2shoes", method="cat")
    paper = yaml.safe_load((ROOT / "baselines" / "cat" / "config.yaml").read_text())["paper"]["kinds"]["unpaired"]
    assert (paper["target_macs"], paper["prune_cin_lb"], paper["batch"], paper["lambda_recon"],
            paper["lambda_distill"], paper["teacher"]["ngf"], paper["teacher"]["batch"]) == (2.6e9, 16, 80, 5.0,
                                                                                             1.0, 64, 32)
    assert paper["teacher"]["micro_batch"] == 4            # CAT's 32 over 8 GPUs: 4 images each
    # gradient accumulation: a divisor of the batch, CycleGAN recipes only, per-image norms only
    with pytest.raises(ConfigError, match="cat.teacher.micro_batch 3 must divide cat.teacher.batch 8"):
        resolve(TASK, {"cat.teacher.micro_batch": 3}, method="cat")
    with pytest.raises(ConfigError, match="cat.teacher.micro_batch must be a whole number .* got 2.0"):
        resolve(TASK, {"cat.teacher.micro_batch": 2.0}, method="cat")      # JSON Schema's integer admits 2.0
    for bad in (True, 0, 1.5):                             # the schema's own one-line refusals
        with pytest.raises(ConfigError, match=f"cat.teacher.micro_batch.* got {bad!r}"):
            resolve(TASK, {"cat.teacher.micro_batch": bad}, method="cat")
    with pytest.raises(ConfigError, match="norm_d 'batch' normalises over the batch"):
        resolve(TASK, {"cat.teacher.micro_batch": 4, "cat.teacher.norm_d": "batch"}, method="cat")
    from vem.schema import check_teacher

    for kind in ("paired", "unconditional"):            # pix2pix's batch norms, SAGAN/StyleGAN2: not built
        with pytest.raises(ConfigError, match=f"x.micro_batch is implemented for CycleGAN teachers .* {kind}"):
            check_teacher({"batch": 4, "micro_batch": 2}, "x", kind)
    check_teacher({"batch": 4, "micro_batch": None}, "x", "paired")
    assert resolve(TASK, {"cat.teacher.micro_batch": 4}, method="cat")["cat"]["teacher"]["micro_batch"] == 4


class _Images:
    """Unpaired training images for a CycleGAN recipe called directly (no val scoring)."""

    def __init__(self, n=6, size=16):
        from types import SimpleNamespace

        g = torch.Generator().manual_seed(3)
        self.spec = SimpleNamespace(id="toy", kind="unpaired", in_channels=1, out_channels=1, size=size)
        self.x = {s: torch.rand(n, 1, size, size, generator=g) * 2 - 1 for s in "AB"}

    def tensor(self, split, side):
        return self.x[side]

    def batch_indices(self, gen, batch, split="train", side="A"):
        return torch.randint(0, len(self.x[side]), (batch,), generator=gen)


class _NoScore:
    def __call__(self, G):
        return 0.0

    def better(self, a, b):
        return False


def test_micro_batches_take_the_whole_batch_step(monkeypatch):
    """CAT's teacher at batch 32 over 8 GPUs, on one: the chunks' gradients summed are the batch's (instance
    norms: per image), for G and D, the image pool fed the whole batch of fakes. Compared as the gradients
    the optimisers step with (the weights after Adam would not do: a conv bias before an instance norm has
    a zero gradient up to rounding, and Adam turns the rounding's sign into a full step)."""
    from vem.config import resolve
    from vem.train import train_teacher

    t = {**resolve(TASK, {}, method="cat")["cat"]["teacher"], "iters": 1, "batch": 4, "pool_size": 3,
         "snapshot_every": 10**6}
    steps = []
    adam_step = torch.optim.Adam.step

    def recording(self, *a, **k):
        steps.append(torch.cat([p.grad.flatten() for g in self.param_groups for p in g["params"]]))
        return adam_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", recording)

    def grads(**kw):
        steps.clear()
        train_teacher({**t, **kw}, _Images(), 0, _NoScore)
        assert len(steps) == 2                              # one G step, one D step
        return steps[:]

    def rel(x, y):
        return ((x - y).norm() / y.norm()).item()

    whole = grads()
    for micro in (2, 1):
        for got, want in zip(grads(micro_batch=micro), whole):
            assert rel(got, want) < 1e-4, micro
    # the comparison can fail: another batch gives another gradient
    assert all(rel(got, want) > 1e-2 for got, want in zip(grads(batch=2), whole))


# --------------------------------------------------------------------------------------------------
# stages end to end (real Fashion-MNIST data)

pytestmark_fm = pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST is not installed (make setup)")


@pytest.fixture(scope="module")
def s2b(edges_assets, tmp_path_factory):
    """sneaker2boot data, a tiny CAT teacher and its pruned widths, through the CLI."""
    import sys


    d = tmp_path_factory.mktemp("cat")
    save_task_data(TASK, d)
    common = [sys.executable, "-m", "vem", "stage", "--task", TASK, "--method", "cat", "--threads", "1",
              "--data", str(d / "d.npz"), "--evalnet", str(edges_assets / "feature.pt"),
              "--set", "cat.teacher.iters=6", "--set", "cat.teacher.snapshot_every=3", "--set", "cat.teacher.ngf=8"]
    for stage, extra in (("teacher", []), ("prune", ["--input", f"teacher={d / 'teacher.pt'}"])):
        r = run_vem([*common, "--stage", stage, *extra, "--out", str(d / f"{stage}.pt"),
                     "--table", str(d / f"{stage}.csv")])
        assert r.returncode == 0, r.stderr[-1500:]
    return d, edges_assets, common


@pytestmark_fm
def test_teacher_and_prune_outputs(s2b):
    import pandas as pd

    d, _, _ = s2b
    t = torch.load(d / "teacher.pt", weights_only=True)
    assert [s["iter"] for s in t["snapshots"]] == [3, 6] and "d_state_dict" in t["snapshots"][0]
    assert t["best_iter"] in (3, 6) and t["generator"]["kwargs"]["norm"] == "instance_affine"
    p = torch.load(d / "prune.pt", weights_only=True)
    assert p["macs_cat"] <= p["target_macs"] and p["teacher_macs_cat"] > p["macs_cat"]
    assert sorted(p["widths"]) == ["blocks", "down", "up"] and p["stage"] == "prune"
    trace = pd.read_csv(d / "prune.csv")
    assert list(trace.columns) == ["step", "threshold", "macs_cat", "fits", "lo", "hi"] and len(trace) >= 1


@pytestmark_fm
def test_distill_reinitialises_the_student_and_starts_d_from_the_teacher(s2b, monkeypatch):
    import baselines.cat.train as cat_train
    from vem.train import best_snapshot

    d, assets, _ = s2b
    built = []

    def capture(rec):
        built.append(cat_train.build_discriminator.__wrapped__(rec))
        return built[-1]

    capture.__wrapped__ = cat_train.build_discriminator
    monkeypatch.setattr(cat_train, "build_discriminator", capture)
    over = {"cat.iters": 1, "cat.lr": 1e-12, "cat.eval_every": 1, "cat.teacher.ngf": 8}
    ctx = stage_context("cat", "distill", TASK, d / "d.npz", over, 3, {"teacher": d / "teacher.pt",
                        "prune": d / "prune.pt"}, assets / "feature.pt", addon="vem")
    ck, curve = cat_train.distill(ctx)
    t = torch.load(d / "teacher.pt", weights_only=True)
    p = torch.load(d / "prune.pt", weights_only=True)
    assert ck["generator"]["kwargs"]["widths"] == p["widths"] and len(curve) == 1
    assert {"recon_loss", "gan_loss", "ka", "mi_loss", "energy_gap"} <= set(curve[0])
    convs = [v for k, v in ck["state_dict"].items() if k.endswith(".weight") and v.dim() == 4]
    std = torch.cat([w.flatten() for w in convs]).std().item()
    assert std == pytest.approx(0.02, rel=0.25)            # N(0, 0.02): the pruned architecture, re-initialised
    # the discriminator started from the teacher's D_A at the best snapshot (lr ~ 0: it has not moved since)
    (D,) = built
    for k, v in best_snapshot(t)["d_state_dict"].items():
        torch.testing.assert_close(D.state_dict()[k], v, rtol=0, atol=1e-8)


@pytestmark_fm
@pytest.mark.parametrize("how", ["kill", "term"])
def test_interrupted_cat_distill_resumes_to_the_same_result(s2b, tmp_path, how):
    import pandas as pd

    d, _, common = s2b

    def cmd(out, every):
        return [*common, "--addon", "vem", "--seed", "1", "--input", f"teacher={d / 'teacher.pt'}",
                "--input", f"prune={d / 'prune.pt'}", "--set", "cat.iters=40", "--set", "cat.eval_every=10",
                "--set", "cat.batch=4", "--checkpoint-every", str(every), "--out", str(out / "student.pt"),
                "--table", str(out / "curve.csv")]

    ref, run = tmp_path / "ref", tmp_path / "run"
    r = run_vem(cmd(ref, 0))
    assert r.returncode == 0, r.stderr[-1500:]
    code, err = interrupt(cmd(run, 3), run / "student.pt.resume", how, min_iter=12)
    assert code == (-9 if how == "kill" else 143), err[-800:]
    assert not (run / "student.pt").exists()
    r = run_vem(cmd(run, 3))
    assert r.returncode == 0 and "resuming from" in r.stderr, r.stderr[-1500:]
    a, b = (torch.load(x / "student.pt", weights_only=True) for x in (ref, run))
    assert b["resumed_from"] >= 12 and a["resumed_from"] == 0
    for k, v in a["state_dict"].items():
        assert torch.equal(b["state_dict"][k], v), k
    pd.testing.assert_frame_equal(*(pd.read_csv(x / "curve.csv").drop(columns=["seconds"]) for x in (ref, run)),
                                  check_exact=True)

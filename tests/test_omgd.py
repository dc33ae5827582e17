"""OMGD on the method contract: replaying recorded online teachers trains the same student as training
them online; every stage resumes exactly after kill -9 / SIGTERM; best-on-test selection."""

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, fmnist_available, interrupt, stage_context

TASK = "fmnist_edges2shoes"
pytestmark = pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST is not installed (make setup)")


@pytest.fixture(scope="module")
def setup(edges_assets):
    d = edges_assets
    over = {"omgd.iters": 6, "omgd.n_dis": 2, "omgd.eval_every": 3, "omgd.batch": 4}
    return d, d / "d.npz", over


def _train(d, data, over, addon, trajectory=None, seed=1):
    from vem.methods import get_method

    over = dict(over, **{"omgd.share_teachers": trajectory is not None})
    inputs = {"perceptual": d / "perceptual.pt", **({"teachers": trajectory} if trajectory else {})}
    ctx = stage_context("omgd", "distill", TASK, data, over, seed, inputs, d / "feature.pt", addon=addon)
    return get_method("omgd").run_stage("distill", ctx)


@pytest.mark.parametrize("addon", ["none", "vem"])
def test_replayed_teachers_train_the_online_student(setup, addon, tmp_path):
    from baselines.omgd.train import teachers
    from vem.utils import atomic_save_torch

    d, data, over = setup
    ctx = stage_context("omgd", "teachers", TASK, data, over, 1, {}, d / "feature.pt")
    traj, tcurve = teachers(ctx, dtype=torch.float32)
    assert [r["iter"] for r in tcurve] == [3, 6] and all(np.isfinite(r["val_wide"]) for r in tcurve)
    assert traj["idx"].shape == (6, 4) and traj["out_wide"].shape == (6, 4, 1, 32, 32)
    atomic_save_torch(tmp_path / "t.pt", traj)
    online, c_on = _train(d, data, over, addon)
    replay, c_re = _train(d, data, over, addon, trajectory=tmp_path / "t.pt")
    assert online["teachers"] == "online" and replay["teachers"] == "replayed trajectory"
    for k, v in online["state_dict"].items():
        torch.testing.assert_close(replay["state_dict"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    assert [r["val"] for r in c_on] == pytest.approx([r["val"] for r in c_re], rel=1e-4)


def test_trajectory_of_another_config_is_refused(setup, tmp_path):
    from baselines.omgd.train import teachers
    from vem.utils import atomic_save_torch

    d, data, over = setup
    traj, _ = teachers(stage_context("omgd", "teachers", TASK, data, over, 1, {}, d / "feature.pt"), score=False)
    atomic_save_torch(tmp_path / "t.pt", traj)
    assert traj["out_wide"].dtype == torch.float16
    with pytest.raises(ValueError, match="recorded for another task/seed/teacher config"):
        _train(d, data, dict(over, **{"omgd.lr": 0.001}), "none", trajectory=tmp_path / "t.pt")
    with pytest.raises(ValueError, match="recorded for another"):
        _train(d, data, over, "none", trajectory=tmp_path / "t.pt", seed=2)
    # student-only keys do not invalidate the teachers
    ck, _ = _train(d, data, dict(over, **{"omgd.lambda_ssim": 1.0}), "none", trajectory=tmp_path / "t.pt")
    assert ck["iters"] == 6


# --------------------------------------------------------------------------------------------------
# resumable training: kill -9 / SIGTERM mid-run, re-run, same result as an uninterrupted run
def _compress_cmd(d, out, addon="vem", every=3, iters=40):
    import sys

    return [sys.executable, "-m", "vem", "stage", "--task", TASK, "--method", "omgd", "--addon", addon,
            "--seed", "1", "--data", str(d / "d.npz"), "--input", f"perceptual={d / 'perceptual.pt'}",
            "--evalnet", str(d / "feature.pt"), "--threads", "1", "--checkpoint-every", str(every),
            "--set", f"omgd.iters={iters}", "--set", "omgd.eval_every=10", "--set", "omgd.batch=4",
            "--set", "omgd.share_teachers=false", "--out", str(out / "student.pt"), "--table", str(out / "curve.csv")]


def _final(out):
    import pandas as pd

    ck = torch.load(out / "student.pt", weights_only=True)
    return ck, pd.read_csv(out / "curve.csv").drop(columns=["seconds"])


@pytest.mark.parametrize("how", ["kill", "term"])
def test_interrupted_run_resumes_to_the_same_result(setup, tmp_path, how):
    import pandas as pd

    from tests.conftest import run_vem

    d, _, _ = setup
    ref, run = tmp_path / "ref", tmp_path / "run"
    r = run_vem(_compress_cmd(d, ref, every=0))
    assert r.returncode == 0, r.stderr[-1500:]
    resume = run / "student.pt.resume"
    code, err = interrupt(_compress_cmd(d, run), resume, how)
    if how == "kill":
        assert code == -9
    else:
        assert code == 143 and "SIGTERM: state saved" in err, err[-800:]
    assert resume.is_file() and not (run / "student.pt").exists()   # nothing that looks finished
    r = run_vem(_compress_cmd(d, run))
    assert r.returncode == 0, r.stderr[-1500:]
    assert "resuming from" in r.stderr
    assert not resume.exists()                                       # a finished job leaves no resume file
    (ck_ref, c_ref), (ck_run, c_run) = _final(ref), _final(run)
    assert ck_run["resumed_from"] >= 12 and ck_ref["resumed_from"] == 0
    for k, v in ck_ref["state_dict"].items():
        assert torch.equal(ck_run["state_dict"][k], v), k
    pd.testing.assert_frame_equal(c_ref, c_run, check_exact=True)


def test_resume_file_of_another_config_is_ignored(setup, tmp_path):
    from tests.conftest import run_vem

    d, _, _ = setup
    out = tmp_path / "run"
    code, _ = interrupt(_compress_cmd(d, out, addon="none", iters=60), out / "student.pt.resume", "kill", 3)
    assert code == -9
    cmd = _compress_cmd(d, out, addon="none", iters=6)             # another configuration (a shorter one)
    r = run_vem(cmd)
    assert r.returncode == 0, r.stderr[-1500:]
    assert "belongs to another configuration; starting from scratch" in r.stderr
    assert torch.load(out / "student.pt", weights_only=True)["resumed_from"] == 0


def test_checkpoint_selection_final_best_on_val_and_best_on_test_say_what_they_did(setup, tmp_path, capsys,
                                                                                   monkeypatch):
    """Checkpoint selection is explicit: final (default), the best val-curve snapshot (test read once) or
    the best snapshot on the test set."""
    import importlib
    import json

    import pandas as pd

    from vem.cli import main

    ev_mod = importlib.import_module("vem.eval.evaluate")     # the module (vem.eval.evaluate is also a function)

    d, data, _ = setup
    common = ["--task", TASK, "--data", str(d / "d.npz"), "--threads", "1"]
    assert main(["real-stats", *common, "--featnet", str(d / "feature.pt"), "--images", str(tmp_path / "real.zip"),
                 "--out", str(tmp_path / "stats.npz")]) == 0
    stage = ["stage", *common, "--method", "omgd", "--addon", "none", "--input", f"perceptual={d / 'perceptual.pt'}",
             "--evalnet", str(d / "feature.pt"), "--set", "omgd.share_teachers=false", "--set", "omgd.batch=4"]
    assert main([*stage, "--set", "omgd.iters=6", "--set", "omgd.eval_every=2", "--keep-snapshots",
                 "--out", str(tmp_path / "s.pt"), "--table", str(tmp_path / "c.csv")]) == 0
    ev = ["evaluate", *common, "--method", "omgd", "--generator", str(tmp_path / "s.pt"), "--evalnet",
          str(d / "feature.pt"), "--real-stats", str(tmp_path / "stats.npz")]
    assert main([*ev, "--images", str(tmp_path / "f.zip"), "--out", str(tmp_path / "final.json")]) == 0
    assert main([*ev, "--selection", "best_on_test", "--images", str(tmp_path / "b.zip"),
                 "--out", str(tmp_path / "best.json")]) == 0
    final, best = (json.loads((tmp_path / f).read_text()) for f in ("final.json", "best.json"))
    cands = best["protocol"]["candidates"]
    assert [c["iter"] for c in cands] == [2, 4, 6]
    assert best["metric"]["value"] == min(c["value"] for c in cands)
    assert best["protocol"]["selected_iter"] == min(cands, key=lambda c: c["value"])["iter"]
    assert "ON THE TEST SET" in best["protocol"]["checkpoint_selection"]
    assert final["protocol"]["checkpoint_selection"].startswith("final")
    assert cands[-1]["value"] == final["metric"]["value"]       # the last snapshot is the final weights
    # best on val: the snapshot with the lowest val FD (the curve's own numbers), evaluated on test once
    calls = []
    real_evaluate = ev_mod.evaluate
    monkeypatch.setattr(ev_mod, "evaluate", lambda *a, **k: calls.append(1) or real_evaluate(*a, **k))
    assert main([*ev, "--selection", "best_on_val", "--images", str(tmp_path / "v.zip"),
                 "--out", str(tmp_path / "val.json")]) == 0
    monkeypatch.setattr(ev_mod, "evaluate", real_evaluate)
    on_val = json.loads((tmp_path / "val.json").read_text())
    curve = pd.read_csv(tmp_path / "c.csv")
    assert [c["iter"] for c in on_val["protocol"]["candidates"]] == list(curve["iter"]) == [2, 4, 6]
    assert [c["val"] for c in on_val["protocol"]["candidates"]] == list(curve["val"])
    want = int(curve.loc[curve["val"].idxmin(), "iter"])
    assert on_val["protocol"]["selected_iter"] == want and len(calls) == 1
    assert on_val["metric"]["value"] == next(c["value"] for c in cands if c["iter"] == want)
    assert "selected on the VAL split" in on_val["protocol"]["checkpoint_selection"]
    # without snapshots best-on-test is refused with one line
    assert main([*stage, "--set", "omgd.iters=2", "--out", str(tmp_path / "n.pt"),
                 "--table", str(tmp_path / "n.csv")]) == 0
    capsys.readouterr()
    assert main([*ev[:-6], "--generator", str(tmp_path / "n.pt"), "--evalnet", str(d / "feature.pt"),
                 "--real-stats", str(tmp_path / "stats.npz"), "--selection", "best_on_test",
                 "--images", str(tmp_path / "x.zip"), "--out", str(tmp_path / "x.json")]) == 2
    assert "--keep-snapshots" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


def test_interrupted_cyclegan_teacher_resumes_to_the_same_result(edges_assets, tmp_path):
    """Teacher jobs resume too (generators, discriminators, optimisers, schedulers, image pools, RNGs)."""
    import sys

    from tests.conftest import run_vem
    from vem.data import fmnist
    from vem.data.tasks import build_task
    from vem.utils import atomic_save_npz

    task = "fmnist_sneaker2boot"
    arrays = build_task(task, fmnist.load(ROOT / "resources" / "fmnist"), seed=0)
    atomic_save_npz(tmp_path / "d.npz", **arrays, task=np.array(task))

    def cmd(out, every):
        return [sys.executable, "-m", "vem", "stage", "--task", task, "--method", "omgd", "--stage", "teacher",
                "--threads", "1", "--data", str(tmp_path / "d.npz"), "--evalnet", str(edges_assets / "feature.pt"),
                "--set", "omgd.teacher.iters=60", "--set", "omgd.teacher.snapshot_every=20",
                "--set", "omgd.teacher.pool_size=6", "--set", "omgd.teacher.batch=2",
                "--checkpoint-every", str(every), "--out", str(out / "g.pt"), "--table", str(out / "c.csv")]

    ref, run = tmp_path / "ref", tmp_path / "run"
    r = run_vem(cmd(ref, 0))
    assert r.returncode == 0, r.stderr[-1500:]
    code, _ = interrupt(cmd(run, 2), run / "g.pt.resume", "kill", min_iter=24)
    assert code == -9 and not (run / "g.pt").exists()
    r = run_vem(cmd(run, 2))
    assert r.returncode == 0 and "resuming from" in r.stderr, r.stderr[-1500:]
    a, b = (torch.load(d / "g.pt", weights_only=True) for d in (ref, run))
    assert b["resumed_from"] >= 24 and not (run / "g.pt.resume").exists()
    for k, v in a["state_dict"].items():
        assert torch.equal(b["state_dict"][k], v), k
    assert [s["val"] for s in a["snapshots"]] == [s["val"] for s in b["snapshots"]]


def test_interrupted_online_teacher_recording_resumes_to_the_same_trajectory(setup, tmp_path):
    import sys

    from tests.conftest import run_vem

    d, _, _ = setup

    def cmd(out, every):
        return [sys.executable, "-m", "vem", "stage", "--task", TASK, "--method", "omgd", "--stage", "teachers",
                "--seed", "1", "--threads", "1", "--data", str(d / "d.npz"), "--evalnet", str(d / "feature.pt"),
                "--set", "omgd.iters=60", "--set", "omgd.batch=4", "--set", "omgd.eval_every=20",
                "--checkpoint-every", str(every), "--out", str(out / "t.pt"), "--table", str(out / "c.csv")]

    ref, run = tmp_path / "ref", tmp_path / "run"
    r = run_vem(cmd(ref, 0))
    assert r.returncode == 0, r.stderr[-1500:]
    code, _ = interrupt(cmd(run, 3), run / "t.pt.resume", "term", min_iter=15)
    assert code == 143 and not (run / "t.pt").exists()
    r = run_vem(cmd(run, 3))
    assert r.returncode == 0 and "resuming from" in r.stderr, r.stderr[-1500:]
    a, b = (torch.load(x / "t.pt", weights_only=True) for x in (ref, run))
    for k in ("idx", "out_wide", "out_deep"):
        assert torch.equal(a[k], b[k]), k
    assert all(torch.equal(x, y) for x, y in zip(a["feat_means"], b["feat_means"]))


@pytest.mark.parametrize("addon", ["vem", "vid"])
def test_gradient_probe_leaves_training_unchanged_and_lands_in_the_curve(setup, addon):
    """The probe takes its gradients from the step's own graph and draws no randomness: the student is
    bit-identical with the probe on (every iteration) and off; the curve carries its columns."""
    d, data, over = setup
    on, c_on = _train(d, data, {**over, "addon.probe_every": 1}, addon)
    off, c_off = _train(d, data, {**over, "addon.probe_every": 0}, addon)
    for k, v in off["state_dict"].items():
        assert torch.equal(on["state_dict"][k], v), k
    assert [r["val"] for r in c_on] == [r["val"] for r in c_off]
    cols = {"probe_ratio_out", "probe_ratio_params", "probe_cos_out", "probe_cos_params", "probe_cos_to_positive"}
    assert cols <= set(c_on[-1]) and not cols & set(c_off[-1])
    assert all(np.isfinite(c_on[-1][c]) for c in cols) and -1 <= c_on[-1]["probe_cos_to_positive"] <= 1

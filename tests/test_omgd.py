"""OMGD: replaying recorded online teachers trains the same student as training them online."""

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, fmnist_available
from vem.config import resolve

TASK = "fmnist_edges2shoes"
pytestmark = pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST is not installed (make setup)")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from vem.data import fmnist
    from vem.data.tasks import build_task
    from vem.evalnets import train_classifier
    from vem.train import TaskData
    from vem.utils import atomic_save_npz, atomic_save_torch

    d = tmp_path_factory.mktemp("omgd")
    arrays = build_task(TASK, fmnist.load(ROOT / "resources" / "fmnist"), seed=0)
    atomic_save_npz(d / "d.npz", **arrays, task=np.array(TASK))
    cfg = resolve(TASK, {})
    for kind in ("feature", "perceptual"):
        ck, _ = train_classifier(kind, dict(cfg["evalnets"][kind], iters=3), 0, ROOT / "resources" / "fmnist")
        atomic_save_torch(d / f"{kind}.pt", ck)
    over = {"omgd.iters": 6, "omgd.n_dis": 2, "omgd.eval_every": 3, "omgd.batch": 4}
    return d, TaskData(d / "d.npz", TASK), over


def _train(d, data, over, addon, trajectory=None, seed=1):
    from baselines.omgd import OMGD

    m = OMGD(resolve(TASK, over), data, addon, seed, d / "perceptual.pt", d / "feature.pt", trajectory=trajectory)
    ck, curve = m.run()
    return ck, curve


@pytest.mark.parametrize("addon", ["none", "vem"])
def test_replayed_teachers_train_the_online_student(setup, addon, tmp_path):
    from baselines.omgd import record_trajectory
    from vem.utils import atomic_save_torch

    d, data, over = setup
    traj, tcurve = record_trajectory(resolve(TASK, over), data, 1, d / "feature.pt", dtype=torch.float32)
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
    from baselines.omgd import record_trajectory
    from vem.utils import atomic_save_torch

    d, data, over = setup
    traj, _ = record_trajectory(resolve(TASK, over), data, 1)
    atomic_save_torch(tmp_path / "t.pt", traj)
    assert traj["out_wide"].dtype == torch.float16
    with pytest.raises(ValueError, match="recorded for another task/seed/teacher config"):
        _train(d, data, dict(over, **{"omgd.lr": 0.001}), "none", trajectory=tmp_path / "t.pt")
    with pytest.raises(ValueError, match="recorded for another"):
        _train(d, data, over, "none", trajectory=tmp_path / "t.pt", seed=2)
    # student-only keys do not invalidate the teachers
    ck, _ = _train(d, data, dict(over, **{"omgd.lambda_ssim": 1.0}), "none", trajectory=tmp_path / "t.pt")
    assert ck["iters"] == 6

"""Figures from run outputs: every kind renders a PNG and its PDF twin, byte-reproducibly, from the files the
workflow lists; the Figure 2 analogue shows the task's own test inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import fmnist_available

pytestmark = pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST is not installed (make setup)")


def _zip(path, seed, n=6, rgb=False):
    from vem.eval.images import write_png_zip

    rng = np.random.default_rng(seed)
    write_png_zip(rng.integers(0, 256, (n, 32, 32, 3) if rgb else (n, 32, 32), dtype=np.uint8), path)
    return str(path)


def _curve(path, seed, vem=True):
    rng = np.random.default_rng(seed)
    it = np.arange(10, 110, 10)
    df = pd.DataFrame({"iter": it, "val": 20 / np.sqrt(it) + rng.normal(0, 0.1, len(it)), "seconds": it * 0.1})
    if vem:
        df["energy_gap"] = it * 1e-3
        df["langevin_disp"] = 0.01
        df["probe_ratio_out"] = 1e-3 * (1 + rng.random(len(it)))
        df["probe_cos_to_positive"] = rng.uniform(-1, 1, len(it))
    df.to_csv(path, index=False)
    return str(path)


def _png_ok(p):
    im = Image.open(p)
    assert im.size[0] > 200 and im.size[1] > 100
    return np.asarray(im)


def test_every_figure_renders_reproducibly(edges_assets, tmp_path):
    from vem import figures

    data = str(edges_assets / "d.npz")
    panels = [{"task": "fmnist_edges2shoes", "data": data,
               "columns": [["Original", _zip(tmp_path / "o.zip", 0)], ["OMGD", _zip(tmp_path / "s.zip", 1)],
                           ["OMGD + VEM", _zip(tmp_path / "v.zip", 2)]]}]
    outs = {"figure2": lambda o: figures.figure2(panels, o, n=3)}
    cells = [{"method": "OMGD", "label": lab, "curves": [_curve(tmp_path / f"{lab}{s}.csv", s) for s in range(3)]}
             for lab in ("OMGD", "OMGD + VEM")]
    outs["curves"] = lambda o: figures.curves("fmnist_edges2shoes", "FD (lower is better)", cells, o)
    outs["vem"] = lambda o: figures.vem_diagnostics([{"label": "edges OMGD + VEM", "curves": cells[1]["curves"]},
                                                    {"label": "no VEM columns", "curves": [
                                                        _curve(tmp_path / "plain.csv", 9, vem=False)]}], o)
    table = tmp_path / "table4.csv"
    pd.DataFrame({"block": ["measured (mini scale)"] * 3 + ["paper (published)"], "task": ["t1", "t1", "t2", "t1"],
                  "method": ["OMGD + VID", "OMGD + VEM", "CAT + VEM", "OMGD"],
                  "metric": ["FD-FMNIST (lower is better)"] * 2 + ["mIoU (higher is better)"] * 2,
                  "delta_paired": [0.2, -0.3, 1.0, np.nan], "delta_ci_low": [-0.1, -0.6, 0.5, np.nan],
                  "delta_ci_high": [0.5, 0.0, 1.5, np.nan]}).to_csv(table, index=False)
    outs["effects"] = lambda o: figures.addon_effects(table, o)
    for name, fn in outs.items():
        a, b = tmp_path / f"{name}_a.png", tmp_path / f"{name}_b.png"
        assert fn(a) == [str(a), str(a.with_suffix(".pdf"))]
        fn(b)
        _png_ok(a)
        assert a.read_bytes() == b.read_bytes(), name          # same inputs, same bytes
        assert a.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"


def test_figure2_inputs_are_the_tasks_test_inputs(edges_assets):
    from vem.data.taskdata import open_task_data
    from vem.figures import input_images

    ims = input_images("fmnist_edges2shoes", edges_assets / "d.npz", 3)
    x = open_task_data(edges_assets / "d.npz", "fmnist_edges2shoes").tensor("test", "A")[np.arange(3)]
    assert len(ims) == 3 and ims[0].dtype == np.uint8 and ims[0].shape == (32, 32)
    np.testing.assert_array_equal(np.stack(ims), ((x[:, 0] + 1) * 127.5).round().byte().numpy())

"""Measured latency: exports checked against eager, interleaved timing, the speed-up of a model with less work,
the MACs ratio of the same record, the table of every evaluated generator."""

import json

import pytest
import torch
from torch import nn

from vem.metrics.cost import count_macs
from vem.metrics.latency import export_torchscript, latency, time_models


def _convnet(width: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                         nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1), nn.Tanh())


class _Noisy(nn.Module):
    def forward(self, x):
        return x + torch.rand_like(x)        # a trace freezes nothing wrong here, but every call differs


def test_a_model_with_much_less_work_is_measured_faster_with_every_backend():
    pytest.importorskip("onnxruntime")
    small, big = _convnet(4), _convnet(96)
    rec = latency(small, 3, 48, original=big, runs=9, warmup=2, backends=("eager", "torchscript", "onnx"))
    assert rec["torchscript"] == "ok" and rec["onnx"] == "ok" and rec["original_onnx"] == "ok"
    assert rec["onnx_max_abs_diff"] < 1e-4 and rec["torchscript_max_abs_diff"] == 0
    for b in ("eager", "torchscript", "onnx"):
        assert rec[f"{b}_ms"] > 0 and rec[f"original_{b}_ms"] > rec[f"{b}_ms"]
        assert rec[f"speedup_{b}"] == pytest.approx(rec[f"original_{b}_ms"] / rec[f"{b}_ms"], rel=1e-2)
        assert rec[f"speedup_{b}"] > 3         # ~500x the MACs: a large, robust difference
    assert rec["macs_ratio"] == pytest.approx(count_macs(big, 3, 48) / count_macs(small, 3, 48), rel=1e-3)
    assert rec["threads"] == 1 and rec["input"] == [1, 3, 48, 48] and rec["runs"] == 9
    assert torch.get_num_threads() >= 1


def test_an_export_that_differs_from_eager_is_reported_not_timed():
    traced, info = export_torchscript(_Noisy(), torch.zeros(1, 3, 4, 4))
    assert traced is None and info["torchscript"].startswith("differs from eager")
    rec = latency(_Noisy(), 3, 4, runs=3, warmup=0)
    assert "torchscript_ms" not in rec and rec["eager_ms"] > 0 and "speedup_eager" not in rec
    with pytest.raises(ValueError, match="unknown latency backend"):
        latency(_convnet(2), 3, 4, backends=("eager", "tensorrt"))


def test_interleaved_timing_rotates_the_order_and_restores_threads():
    calls = []
    models = {n: (lambda x, n=n: calls.append(n)) for n in "abc"}
    before = torch.get_num_threads()
    out = time_models(models, torch.zeros(1), runs=3, warmup=1, threads=1)
    assert calls == list("abc") + list("abc") + list("bca") + list("cab")
    assert set(out) == set("abc") and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="runs must be >= 1"):
        time_models(models, torch.zeros(1), runs=0)


def test_latency_table_gathers_every_record(tmp_path):
    from vem.tables import render_latency

    paths = []
    for method, addon, seed, ms in [("original", "none", None, 9.0), ("omgd", "none", 0, 3.0),
                                    ("omgd", "vem", 0, 3.2), ("omgd", "vem", 1, 2.8)]:
        lat = {"eager_ms": ms, "torchscript_ms": ms / 2, "input": [1, 1, 32, 32], "threads": 1, "runs": 30,
               "cpu": "test cpu", "torch": "x", "torchscript": "ok", "backends": ["eager", "torchscript"]}
        if method != "original":
            lat.update(original_eager_ms=9.0, speedup_eager=9.0 / ms, speedup_torchscript=9.0 / ms,
                       macs_ratio=4.0, original_macs=4e6)
        rec = {"task": "t", "scale": "mini", "method": method, "addon": addon, "arms": [], "lambda_mi": 0.1,
               "seed": seed, "cost": {"macs": 1e6, "params": 10}, "latency": lat}
        p = tmp_path / f"{method}-{addon}-{seed}.json"
        p.write_text(json.dumps(rec))
        paths.append(p)
    csv_path, md_path = render_latency(paths, tmp_path / "latency.csv")
    import pandas as pd

    df = pd.read_csv(csv_path)
    assert len(df) == 4 and df.loc[df.method == "original", "speedup_eager"].iloc[0] == 1.0
    md = open(md_path).read()
    row = next(line for line in md.splitlines() if "OMGD + VEM" in line)
    assert [c.strip() for c in row.split("|")][5] == "2"                      # two seeds averaged
    (tmp_path / "old.json").write_text(json.dumps({k: v for k, v in json.loads(paths[1].read_text()).items()
                                                   if k != "latency"}))
    with pytest.raises(ValueError, match="no latency record"):
        render_latency([tmp_path / "old.json"], tmp_path / "l2.csv")

"""Measured CPU latency of generators, beside their MACs (the paper reports MACs only).

Each model is exported with TorchScript (``torch.jit.trace`` at batch 1 in eval mode) and, where ``onnx``,
``onnxscript`` and ``onnxruntime`` are installed and the exporter supports its operators, to ONNX (run in
onnxruntime on the CPU); each export is checked against the eager model on the same input (max |difference|
recorded; an export that differs by more than ``tolerance`` is reported, not timed). Timing: batch 1 at the
task's input size, ``warmup`` runs, then ``runs`` rounds in which every model runs once, in an order rotated
each round, so that the models of one measurement share the machine's conditions (other jobs, frequency);
the median and the inter-quartile range per model, the threads (set to ``threads`` for the measurement) and
the CPU are recorded. The speed-up is the ratio of medians measured in that one interleaved run.
"""

from __future__ import annotations

import platform
import statistics
import time

import torch
from torch import nn


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def export_torchscript(model: nn.Module, x: torch.Tensor, tolerance: float = 1e-4):
    """(traced module or None, record): the TorchScript export of ``model`` at ``x`` checked against eager."""
    model = model.eval()
    import warnings

    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")              # TracerWarnings of shape-dependent Python branches
            traced = torch.jit.trace(model, x, check_trace=False)
            want, got = model(x), traced(x)
        diff = float((want - got).abs().max())
    except Exception as e:  # noqa: BLE001 - a model the tracer cannot export is recorded, not fatal
        return None, {"torchscript": f"export failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    ok = diff <= tolerance
    return (traced if ok else None), {"torchscript": "ok" if ok else f"differs from eager by {diff:.3g}",
                                      "torchscript_max_abs_diff": diff}


def export_onnx(model: nn.Module, x: torch.Tensor, threads: int = 1, tolerance: float = 1e-4):
    """(a callable running the ONNX export in onnxruntime, or None; record) - where ``onnx`` and
    ``onnxruntime`` are installed and the exporter supports the model's operators; checked against eager."""
    import tempfile
    import warnings
    from pathlib import Path

    try:
        import onnxruntime as ort
    except ImportError:
        return None, {"onnx": "not measured (pip install onnx onnxruntime onnxscript)"}
    model = model.eval()
    try:
        with tempfile.TemporaryDirectory(prefix="vem-onnx-") as d, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            path = Path(d) / "model.onnx"
            torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=["x"], output_names=["y"],
                              verbose=False)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        with torch.no_grad():
            want = model(x).numpy()
        got = sess.run(None, {"x": x.numpy()})[0]
        diff = float(abs(want - got).max())
    except Exception as e:  # noqa: BLE001 - an operator the exporter lacks is recorded, not fatal
        return None, {"onnx": f"export failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    if diff > tolerance:
        return None, {"onnx": f"differs from eager by {diff:.3g}", "onnx_max_abs_diff": diff}
    return (lambda inp: sess.run(None, {"x": inp.numpy()})), {"onnx": "ok", "onnx_max_abs_diff": diff,
                                                             "onnxruntime": ort.__version__}


def time_models(models: dict[str, nn.Module], x: torch.Tensor, runs: int = 30, warmup: int = 5,
                threads: int = 1) -> dict[str, dict]:
    """Per model: median and inter-quartile range of ``runs`` interleaved timings in milliseconds."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"latency runs must be >= 1 and warmup >= 0, got {runs}, {warmup}")
    names = list(models)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    times: dict[str, list[float]] = {n: [] for n in names}
    try:
        with torch.no_grad():
            for _ in range(warmup):
                for n in names:
                    models[n](x)
            for r in range(runs):
                for n in names[r % len(names):] + names[:r % len(names)]:
                    t0 = time.perf_counter()
                    models[n](x)
                    times[n].append((time.perf_counter() - t0) * 1e3)
    finally:
        torch.set_num_threads(before)
    out = {}
    for n, ts in times.items():
        q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [ts[0]] * 3
        out[n] = {"median_ms": statistics.median(ts), "iqr_ms": q[2] - q[0]}
    return out


EXPORTS = {"torchscript": lambda m, x, threads: export_torchscript(m, x),
           "onnx": lambda m, x, threads: export_onnx(m, x, threads)}


def latency(model: nn.Module, in_channels: int, size: int, original: nn.Module | None = None, runs: int = 30,
            warmup: int = 5, threads: int = 1, backends=("eager", "torchscript")) -> dict:
    """The latency record of ``model`` (and of the ``original`` it was compressed from, timed interleaved
    with it: ``speedup_<backend>`` = original median / model median) at batch 1 on the CPU, per backend
    (``eager``, ``torchscript``, ``onnx``); ``macs_ratio`` = the original's MACs / the model's (torchprofile)."""
    from .cost import count_macs

    unknown = sorted(set(backends) - {"eager", *EXPORTS})
    if unknown:
        raise ValueError(f"unknown latency backend(s) {unknown}; choose from eager, torchscript, onnx")
    x = torch.randn(1, in_channels, size, size, generator=torch.Generator().manual_seed(0), device="cpu")
    pairs = {"": model.to("cpu").eval()}
    if original is not None:
        pairs["original_"] = original.to("cpu").eval()
    models, rec = {}, {}
    for prefix, m in pairs.items():
        for b in backends:
            if b == "eager":
                models[f"{prefix}eager"] = m
                continue
            fn, info = EXPORTS[b](m, x, threads)
            rec.update({f"{prefix}{k}": v for k, v in info.items()})
            if fn is not None:
                models[f"{prefix}{b}"] = fn
    timed = time_models(models, x, runs, warmup, threads)
    for k, v in timed.items():
        rec[f"{k}_ms"] = round(v["median_ms"], 4)
        rec[f"{k}_iqr_ms"] = round(v["iqr_ms"], 4)
    if original is not None:
        for b in backends:
            if b in timed and f"original_{b}" in timed:
                rec[f"speedup_{b}"] = round(timed[f"original_{b}"]["median_ms"] / timed[b]["median_ms"], 3)
        rec["macs"], rec["original_macs"] = count_macs(model, in_channels, size), count_macs(original, in_channels,
                                                                                              size)
        rec["macs_ratio"] = round(rec["original_macs"] / rec["macs"], 3)
    rec.update(backends=list(backends), input=[1, in_channels, size, size], runs=runs, warmup=warmup,
               threads=threads, device="cpu", cpu=cpu_name(), torch=torch.__version__,
               protocol="batch 1, eval mode, no_grad; median of interleaved runs after warm-up (vem.metrics.latency)")
    return rec

"""The one evaluation path: a generator -> uint8 PNGs in a zip -> the task's metric backend.

Test scores (``evaluate``, ``evaluate_best_on_val``, ``evaluate_best_on_test``), val curves (``ValScorer``) and
real reference statistics (``real_stats``) all go through it, at both scales.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..metrics.cost import PAPER_COUNTERS, profile
from ..models import load_generator
from ..utils import default_device, rng_devices
from .backends import make_backend
from .images import generate_u8, write_png_zip


class ValScorer:
    """The task metric on the held-out *val* split (part of train): learning curves, teacher snapshots,
    selection. The first ``eval.val_images`` val inputs are translated and scored against the real val B
    images."""

    def __init__(self, data, evalnet_path, cfg: dict):
        self.data, self.cfg = data, cfg
        self.backend = make_backend(data.spec, evalnet_path, cfg)
        self.ref = self.backend.reference(data, "val")
        self.n = min(cfg["eval"]["val_images"], data.n("val", "A"))

    def __call__(self, G) -> float:
        images = generate_u8(G, self.data, "val", self.n, self.cfg["eval"]["batch"])
        return self.backend.score_images(images, self.ref)[0]

    def better(self, a: float, b: float) -> bool:
        return self.backend.better(a, b)


def real_stats(data, evalnet_path, cfg: dict, out_zip) -> dict:
    """Reference statistics of the real test-side images (written to ``out_zip`` as the PNGs used)."""
    backend = make_backend(data.spec, evalnet_path, cfg)
    if not hasattr(backend, "real_stats"):
        raise ValueError(f"task {data.spec.id} is scored by {backend.name}: it has no real feature statistics")
    return backend.real_stats(data, out_zip)


def evaluate(ck: dict, data, evalnet_path, cfg: dict, images_zip, real_stats_path=None, backend=None) -> dict:
    """Every test image generated, quantised, written as PNG, scored; MACs/params; the protocol."""
    t0 = time.time()
    backend = backend or make_backend(data.spec, evalnet_path, cfg)
    ref = backend.reference(data, "test", real_stats_path)
    G = load_generator(ck).to(default_device())
    n = total = data.n("test", "A")
    if cfg["eval"].get("test_images") is not None:   # the first N test inputs (a quick look, not the protocol)
        n = min(total, int(cfg["eval"]["test_images"]))
    write_png_zip(generate_u8(G, data, "test", n, batch=cfg["eval"]["batch"]), images_zip)
    value, proto = backend.score(images_zip, ref)
    spec = data.spec
    protocol = {"eval_split": "test", "n_images": n,
                "quantisation": "uint8 PNG before features ((x + 1) / 2 * 255 truncated, as tensor2im)", **proto}
    if n < total:
        protocol["subset"] = f"the first {n} of {total} test inputs (eval.test_images): not the protocol"
    cost = profile(G, spec.in_channels, spec.input_size)
    # a method's own MAC convention (macs_cat, macs_gan_compression in its student checkpoint) beside ours
    cost.update({k: int(v) for k, v in ck.items() if k.startswith("macs_") and k != "macs_harness"})
    if ck["generator"]["backbone"] in PAPER_COUNTERS:      # e.g. the Original SAGAN in GCC's convention
        key, counter = PAPER_COUNTERS[ck["generator"]["backbone"]]
        cost.setdefault(key, counter(G, spec.in_channels, spec.input_size))
    return {"metric": {"name": backend.name, "value": float(value), "higher_is_better": backend.higher_is_better},
            "cost": cost, "protocol": protocol, "eval_seconds": time.time() - t0}


def measure_latency(ck: dict, spec, cfg: dict, compare_original: bool = True) -> dict:
    """CPU latency of the checkpoint's generator at batch 1 (``eval.latency``; vem.metrics.latency), timed
    interleaved with the task's Original architecture (``teachers.original``, built with fresh weights:
    latency does not depend on their values) unless it is the Original itself."""
    import torch

    from ..metrics.latency import latency
    from ..models import build, from_config

    lat = cfg["eval"]["latency"]
    # built, exported (traced) and timed on the CPU, also in a --device cuda job (its default device is cuda)
    with torch.device("cpu"):
        G = load_generator(ck)
        orig = None
        if compare_original:
            with torch.random.fork_rng(devices=rng_devices()):
                orig = build(from_config(cfg["teachers"]["original"], spec.in_channels, spec.out_channels,
                                         image_size=spec.size))
        return latency(G, spec.in_channels, spec.input_size, orig, lat["runs"], lat["warmup"], lat["threads"],
                       lat["backends"])


def _snapshots(ck: dict, name: str, selection: str) -> list[dict]:
    snaps = ck.get("snapshots") or []
    if not snaps:
        raise ValueError(f"{name} has no training snapshots; train with --keep-snapshots "
                         f"(config checkpoint_selection: {selection}) for {selection.replace('_', '-')} selection")
    return snaps


def evaluate_best_on_val(ck: dict, data, evalnet_path, cfg: dict, images_zip, real_stats_path=None,
                         name="generator") -> dict:
    """Selection without looking at test: the training snapshot with the best val-curve score (the held-out
    part of train, scored during training) is the one evaluated on test, once."""
    snaps = _snapshots(ck, name, "best_on_val")
    if any("val" not in sn for sn in snaps):
        raise ValueError(f"{name}: its snapshots carry no val score (a stage without a val curve); "
                         "use checkpoint_selection final")
    backend = make_backend(data.spec, evalnet_path, cfg)
    best = snaps[0]
    for sn in snaps[1:]:
        if backend.better(float(sn["val"]), float(best["val"])):
            best = sn
    res = evaluate(dict(ck, state_dict=best["state_dict"]), data, evalnet_path, cfg, images_zip, real_stats_path,
                   backend)
    res["protocol"].update(
        checkpoint_selection=f"best of {len(snaps)} training snapshots selected on the VAL split "
                             f"(held out of train; test read once): iteration {best['iter']}",
        selected_iter=int(best["iter"]), candidates=[{"iter": int(sn["iter"]), "val": float(sn["val"])}
                                                     for sn in snaps])
    return res


def evaluate_best_on_test(ck: dict, data, evalnet_path, cfg: dict, images_zip, real_stats_path=None,
                          name="generator") -> dict:
    """The anchors' selection: every training snapshot (and the final weights) scored on the TEST set,
    the best one reported. Optimistic by construction; the protocol says so and lists every candidate."""
    snaps = _snapshots(ck, name, "best_on_test")
    cands = [(int(sn["iter"]), sn["state_dict"]) for sn in snaps]
    if cands[-1][0] != ck.get("iters"):
        cands.append((int(ck.get("iters") or -1), ck["state_dict"]))
    backend = make_backend(data.spec, evalnet_path, cfg)
    scores, best_it, res = [], None, None
    images_zip = Path(images_zip)
    tmp = images_zip.with_name(f".{images_zip.name}.candidate.zip")
    best_tmp = images_zip.with_name(f".{images_zip.name}.best.zip")
    try:
        for it, sd in cands:
            r = evaluate(dict(ck, state_dict=sd), data, evalnet_path, cfg, tmp, real_stats_path, backend)
            v = r["metric"]["value"]
            scores.append({"iter": it, "value": v})
            if res is None or backend.better(v, res["metric"]["value"]):
                best_it, res = it, r
                os.replace(tmp, best_tmp)   # keep the best candidate's images: no second evaluation
        os.replace(best_tmp, images_zip)
    finally:
        tmp.unlink(missing_ok=True)
        best_tmp.unlink(missing_ok=True)
    res["protocol"].update(
        checkpoint_selection=f"best of {len(cands)} training snapshots selected ON THE TEST SET "
                             f"(anchors' protocol; optimistic): iteration {best_it}",
        selected_iter=best_it, candidates=scores)
    return res

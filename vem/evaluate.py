"""Evaluate a generator on the test split: images (PNG, zipped), the task metric, MACs/params, protocol."""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data.tasks import SUPER_CLASSES, TaskSpec
from .metrics.cost import profile
from .metrics.fd import FDExtractor, frechet, stats
from .metrics.miou import miou
from .models import FeatureNet, Segmenter
from .train import TaskData, generate
from .utils import file_sha256, load_checkpoint

METRIC_NAMES = {"fd": "FD-FMNIST", "miou": "mIoU-FMNIST-scenes"}


def write_png_zip(images_u8, path) -> None:
    """Every image (an array or any iterable of uint8 HxW / HxWx3 arrays) as ``00000.png`` ... inside one
    zip (written to a temp name, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
        for i, im in enumerate(images_u8):
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="PNG")
            info = zipfile.ZipInfo(f"{i:05d}.png", date_time=(2020, 1, 1, 0, 0, 0))
            z.writestr(info, buf.getvalue())
    os.replace(tmp, path)


def zip_features(path, extractor: FDExtractor) -> np.ndarray:
    """Features of the PNGs in a zip through clean-fid (files in sorted order: deterministic sums)."""
    from cleanfid import fid

    with zipfile.ZipFile(path) as z:
        files = sorted(n for n in z.namelist() if n.endswith(".png"))
    return fid.get_files_features(files, model=extractor, num_workers=0, batch_size=256,
                                  device=torch.device("cpu"), mode="clean",
                                  custom_fn_resize=lambda x: x, fdir=str(path), verbose=False)


def load_feature_extractor(path) -> FDExtractor:
    ck = load_checkpoint(path)
    net = FeatureNet(**ck["kwargs"])
    net.load_state_dict(ck["state_dict"])
    return FDExtractor(net)


def real_stats(data: TaskData, featnet_path, out_zip) -> dict:
    """Real reference statistics, per the anchors' protocol: paired tasks -> real *test* B images;
    unpaired (CycleGAN) -> real *train + test* B images of the target domain."""
    spec = data.spec
    if spec.kind == "paired":
        imgs, desc = data.raw["test_B"], f"real test B ({len(data.raw['test_B'])})"
    else:
        imgs = np.concatenate([data.raw["train_B"], data.raw["val_B"], data.raw["test_B"]])
        desc = f"real train+test B ({len(imgs)})"
    write_png_zip(imgs, out_zip)
    feats = zip_features(out_zip, load_feature_extractor(featnet_path))
    mu, sigma = stats(feats)
    return {"mu": mu, "sigma": sigma, "description": np.array(desc), "n": np.array(len(imgs))}


def evaluate(spec: TaskSpec, ck: dict, data: TaskData, evalnet_path, images_zip, real_stats_path=None) -> dict:
    from .teachers import load_generator

    if spec.scale == "paper":
        from .paper_eval import evaluate_paper

        return evaluate_paper(spec, ck, data, evalnet_path, images_zip, real_stats_path)
    t0 = time.time()
    G = load_generator(ck)
    x = data.tensor("test", "A")
    out = generate(G, x)
    imgs = ((out.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).squeeze(1).numpy()
    write_png_zip(imgs, images_zip)
    protocol = {"eval_split": "test", "n_images": int(len(imgs)), "quantisation": "uint8 PNG before features",
                "evalnet": Path(evalnet_path).name, "evalnet_sha256": file_sha256(evalnet_path)}
    if spec.metric == "fd":
        if real_stats_path is None:
            raise ValueError("FD needs the real statistics file")
        feats = zip_features(images_zip, load_feature_extractor(evalnet_path))
        with np.load(real_stats_path) as z:
            ref_mu, ref_sigma, ref_desc = z["mu"], z["sigma"], str(z["description"])
        value = frechet(*stats(feats), ref_mu, ref_sigma)
        protocol.update(backend="clean-fid get_files_features + frechet_distance", mode="clean",
                        feature_net="FeatureNet penultimate (128-d), trained on Fashion-MNIST train",
                        resize="none (native 32x32)", real_stats=ref_desc)
    else:
        ckseg = load_checkpoint(evalnet_path)
        seg = Segmenter(**ckseg["kwargs"])
        seg.load_state_dict(ckseg["state_dict"])
        seg.eval()
        with torch.no_grad():
            xin = torch.from_numpy(imgs).float().unsqueeze(1) / 127.5 - 1
            pred = torch.cat([seg(xin[i:i + 500]).argmax(1) for i in range(0, len(xin), 500)]).numpy()
        value = miou(pred, data.raw["test_A"], len(SUPER_CLASSES))
        protocol.update(backend="segmenter argmax at 32x32 vs input label maps", feature_net=None,
                        segmenter="Segmenter trained on real fmnist_scenes train", classes=SUPER_CLASSES,
                        aggregation="nanmean of per-class IoU x 100")
    cost = profile(G, spec.in_channels, spec.size)
    return {"metric": {"name": METRIC_NAMES[spec.metric], "value": float(value),
                       "higher_is_better": spec.metric == "miou"},
            "cost": cost, "protocol": protocol, "eval_seconds": time.time() - t0}


def evaluate_best_on_test(spec: TaskSpec, ck: dict, data: TaskData, evalnet_path, images_zip,
                          real_stats_path=None, name="generator") -> dict:
    """The anchors' selection: every training snapshot (and the final weights) scored on the TEST set,
    the best one reported. Optimistic by construction; the protocol says so and lists every candidate."""
    snaps = ck.get("snapshots") or []
    if not snaps:
        raise ValueError(f"{name} has no training snapshots; compress with --keep-snapshots "
                         "(config checkpoint_selection: best_on_test) for best-on-test selection")
    cands = [(int(sn["iter"]), sn["state_dict"]) for sn in snaps]
    if cands[-1][0] != ck.get("iters"):
        cands.append((int(ck.get("iters") or -1), ck["state_dict"]))
    higher = spec.metric == "miou"
    scores, best_it, res = [], None, None
    images_zip = Path(images_zip)
    tmp = images_zip.with_name(f".{images_zip.name}.candidate.zip")
    best_tmp = images_zip.with_name(f".{images_zip.name}.best.zip")
    try:
        for it, sd in cands:
            r = evaluate(spec, dict(ck, state_dict=sd), data, evalnet_path, tmp, real_stats_path)
            v = r["metric"]["value"]
            scores.append({"iter": it, "value": v})
            if res is None or (v > res["metric"]["value"] if higher else v < res["metric"]["value"]):
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


def sample_grid(images_zip, out_png, n: int = 64) -> None:
    with zipfile.ZipFile(images_zip) as z:
        names = sorted(z.namelist())[:n]
        ims = [np.array(Image.open(io.BytesIO(z.read(nm)))) for nm in names]
    side = int(np.ceil(np.sqrt(len(ims))))
    h, w = ims[0].shape[:2]
    grid = np.zeros((side * h, side * w) + ims[0].shape[2:], np.uint8)   # grayscale or RGB
    for i, im in enumerate(ims):
        grid[(i // side) * h:(i // side + 1) * h, (i % side) * w:(i % side + 1) * w] = im
    tmp = Path(out_png).with_name(f".{Path(out_png).name}.tmp.png")
    Image.fromarray(grid).save(tmp)
    os.replace(tmp, out_png)

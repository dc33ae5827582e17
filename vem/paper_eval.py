"""Paper-scale evaluation: Inception FID through clean-fid and Cityscapes mIoU with DRN-D-105.

Protocol (anchors' §2.5/§7): generated test images are quantised to uint8 and written as PNGs (a zip),
then read back for features / segmentation. FID: clean-fid's ``legacy_pytorch`` mode (pytorch-fid's
Inception weights, bilinear resize to 299: what the original repositories report) or ``clean``; the
real statistics come from :func:`real_stats_paper` (paired: real test/val B; CycleGAN: real train+test B
of the target domain) and must have been computed in the same mode. mIoU: :mod:`vem.metrics.cityscapes`.
"""

from __future__ import annotations

import io
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from .evaluate import write_png_zip
from .metrics.cost import profile
from .utils import default_device, file_sha256

FID_NAMES = {"legacy_pytorch": "FID (Inception, pytorch-fid weights)", "clean": "FID (Inception, clean-fid)"}


def eval_cfg(data) -> dict:
    return getattr(data, "eval_cfg", None) or {"fid_mode": "legacy_pytorch", "batch": 16, "val_images": 500}


def real_images(data, split_sides) -> tuple:
    """uint8 images (resized to the crop size) of the given (split, side) pairs, lazily; and their count."""
    items = [(sp, sd, i) for sp, sd in split_sides for i in range(data.n(sp, sd))]

    def gen():
        for sp, sd, i in items:
            yield data.eval_u8(sp, sd, i)
    return gen(), len(items)


def real_stats_paper(data, mode: str, weights, out_zip) -> dict:
    from .metrics.fd import stats
    from .metrics.inception import zip_inception_features

    spec = data.spec
    if spec.kind == "paired":
        sides, desc = [("test", "B")], "real test B"
    else:
        sides, desc = [("train", "B"), ("val", "B"), ("test", "B")], "real train+test B (val = held-out train)"
    imgs, n = real_images(data, sides)
    write_png_zip(imgs, out_zip)
    feats = zip_inception_features(out_zip, mode, weights, batch_size=eval_cfg(data)["batch"], device=default_device())
    mu, sigma = stats(feats)
    return {"mu": mu, "sigma": sigma, "description": np.array(f"{desc} ({n})"), "n": np.array(n),
            "mode": np.array(mode), "weights_sha256": np.array(file_sha256(weights))}


@torch.no_grad()
def generate_u8(G, data, split: str, batch: int = 16, n: int | None = None):
    """Yield the generator's outputs on the first ``n`` (default: all) of ``split`` A as uint8 (H, W, 3)
    arrays, in index order."""
    x = data.tensor(split, "A")
    n = len(x) if n is None else min(n, len(x))
    G.eval()
    dev = default_device()
    for i in range(0, n, batch):
        out = G(x[torch.arange(i, min(i + batch, n))].to(dev))
        u8 = ((out.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        yield from u8


def _zip_batches(images_zip, batch: int):
    from PIL import Image

    with zipfile.ZipFile(images_zip) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".png"))
        for i in range(0, len(names), batch):
            yield np.stack([np.asarray(Image.open(io.BytesIO(z.read(n))).convert("RGB"))
                            for n in names[i:i + batch]])


def label_batches(images_zip, label_files, batch: int):
    from PIL import Image

    from .metrics.cityscapes import label_ids_to_train_ids

    for k, imgs in enumerate(_zip_batches(images_zip, batch)):
        files = label_files[k * batch:k * batch + len(imgs)]
        yield imgs, np.stack([label_ids_to_train_ids(np.asarray(Image.open(f))) for f in files])


def score_zip(spec, data, evalnet_path, images_zip, ref=None, label_split="test") -> tuple[float, dict]:
    """The task metric of the PNGs in ``images_zip`` and its protocol."""
    ec, dev = eval_cfg(data), default_device()
    if spec.metric == "fd":
        from .metrics.fd import frechet, stats
        from .metrics.inception import zip_inception_features

        feats = zip_inception_features(images_zip, ref["mode"], evalnet_path, batch_size=ec["batch"], device=dev)
        value = frechet(*stats(feats), ref["mu"], ref["sigma"])
        return value, {"backend": "clean-fid get_files_features + frechet_distance", "mode": ref["mode"],
                       "feature_net": "Inception-v3 pool3 (2048-d), " + ("pytorch-fid weights" if ref["mode"] ==
                                                                          "legacy_pytorch" else "clean-fid weights"),
                       "resize": "clean-fid's resize for the mode (256 -> 299)", "real_stats": ref["description"]}
    from .metrics.cityscapes import CLASSES, FULL_SIZE, cityscapes_miou
    from .models.drn import load_drn

    drn = load_drn(evalnet_path, dev)
    res = cityscapes_miou(drn, label_batches(images_zip, data.labels(label_split), ec["batch"]), device=dev)
    return res["miou"], {"backend": "DRN-D-105 at 256x256, scores bilinearly resized to 2048x1024, argmax",
                         "segmenter": "drn-d-105_ms_cityscapes.pth", "labels": "gtFine trainIds (255 ignored)",
                         "label_size": list(FULL_SIZE), "classes": CLASSES, "per_class_iou": res["per_class_iou"],
                         "aggregation": "nanmean of per-class IoU x 100 over one confusion matrix"}


def load_ref(real_stats_path) -> dict:
    if real_stats_path is None:
        raise ValueError("FID needs the real statistics file (python -m vem real-stats)")
    with np.load(real_stats_path) as z:
        if "mode" not in z.files:
            raise ValueError(f"{real_stats_path} has no FID mode: not paper-scale Inception statistics")
        return {"mu": z["mu"], "sigma": z["sigma"], "description": str(z["description"]), "mode": str(z["mode"])}


def evaluate_paper(spec, ck, data, evalnet_path, images_zip, real_stats_path=None) -> dict:
    from .teachers import load_generator

    t0 = time.time()
    ref = load_ref(real_stats_path) if spec.metric == "fd" else None
    G = load_generator(ck).to(default_device())
    write_png_zip(generate_u8(G, data, "test", eval_cfg(data)["batch"]), images_zip)
    value, proto = score_zip(spec, data, evalnet_path, images_zip, ref)
    protocol = {"eval_split": "test", "n_images": data.n("test", "A"), "quantisation": "uint8 PNG before features",
                "evalnet": Path(evalnet_path).name, "evalnet_sha256": file_sha256(evalnet_path), **proto}
    name = FID_NAMES[ref["mode"]] if ref else "mIoU (DRN-D-105, Cityscapes val)"
    cost = profile(G, spec.in_channels, spec.size)
    return {"metric": {"name": name, "value": float(value), "higher_is_better": spec.metric == "miou"},
            "cost": cost, "protocol": protocol, "eval_seconds": time.time() - t0}


class PaperValScorer:
    """The task metric on the held-out val split (part of train) at paper scale: learning curves and
    OMGD's best-snapshot choice. FID uses the val B images as reference (computed once)."""

    def __init__(self, data, evalnet_path):
        self.data, self.spec, self.evalnet = data, data.spec, evalnet_path
        self.n = min(eval_cfg(data)["val_images"], data.n("val", "A"))
        self.tmp = tempfile.TemporaryDirectory(prefix="vem-val-")
        self.ref = None
        if self.spec.metric == "fd":
            from .metrics.fd import stats
            from .metrics.inception import zip_inception_features

            imgs, _ = real_images(data, [("val", "B")])
            real_zip = Path(self.tmp.name) / "real.zip"
            write_png_zip((im for _, im in zip(range(self.n), imgs)), real_zip)
            mode = eval_cfg(data)["fid_mode"]
            mu, sigma = stats(zip_inception_features(real_zip, mode, evalnet_path, device=default_device()))
            self.ref = {"mu": mu, "sigma": sigma, "description": f"real val B ({self.n})", "mode": mode}

    def __call__(self, gen) -> float:
        was = gen.training
        out = Path(self.tmp.name) / "gen.zip"
        try:
            imgs = generate_u8(gen, self.data, "val", eval_cfg(self.data)["batch"], self.n)
            write_png_zip(imgs, out)
            return score_zip(self.spec, self.data, self.evalnet, out, self.ref, label_split="val")[0]
        finally:
            gen.train(was)

    @property
    def better(self):
        return (lambda a, b: a < b) if self.spec.metric == "fd" else (lambda a, b: a > b)

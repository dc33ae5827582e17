"""Metric backends: one per way a task is scored, used identically for val curves and test scores.

Every backend reads generated images from a zip of uint8 PNGs (``vem.eval.images``) and compares them
with a *reference* for the split: real feature statistics (Fréchet distances) or label maps (mIoU).

==================  =====  =========================================================================
backend             scale  metric
==================  =====  =========================================================================
``fd_fmnist``       mini   FD-FMNIST: Fréchet distance of FeatureNet's 128-d penultimate features (not FID)
``miou_segmenter``  mini   mIoU of the scenes segmenter at 32x32 against the input label maps
``fid_inception``   paper  Inception FID through clean-fid (``eval.fid_mode``: legacy_pytorch | clean)
``miou_drn``        paper  Cityscapes mIoU with DRN-D-105 at 2048x1024 against gtFine trainIds
==================  =====  =========================================================================

The reference of the *test* split comes from the workflow (``real_stats`` rule: paired tasks -> real test
B; unpaired -> real train + val + test B, the anchors' protocol; unconditional -> the real test
images); the *val* reference is computed from the
real held-out val B images the same way. Networks are loaded from files only (nothing downloads).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..data.tasks import SUPER_CLASSES
from ..utils import default_device, file_sha256, rng_devices
from .images import batched_u8, read_zip_u8, write_png_zip


class Backend:
    """``score(images_zip, ref)`` reads the PNGs of a zip. A backend with ``read_batch`` (the batch it reads
    them in) also scores uint8 images in memory (``score_batches``) with the same value to the last bit: the
    val curves skip the PNG round trip (tested)."""

    id: str
    higher_is_better: bool = False
    read_batch: int | None = None

    def __init__(self, spec, evalnet_path, cfg: dict):
        self.spec, self.evalnet, self.cfg = spec, Path(evalnet_path), cfg

    @property
    def name(self) -> str:
        raise NotImplementedError

    def better(self, a: float, b: float) -> bool:
        return a > b if self.higher_is_better else a < b

    def reference(self, data, split: str, real_stats_path=None):
        raise NotImplementedError

    def score(self, images_zip, ref) -> tuple[float, dict]:
        if self.read_batch is None:
            raise NotImplementedError
        return self.score_batches(read_zip_u8(images_zip, self.read_batch), ref)

    def score_batches(self, batches, ref) -> tuple[float, dict]:
        raise NotImplementedError

    def score_images(self, images_u8, ref) -> tuple[float, dict]:
        """The score of an iterable of uint8 images: in memory where the backend reads batches, else through
        a zip of PNGs in a scratch folder that lives only while it is scored."""
        if self.read_batch is not None:
            return self.score_batches(batched_u8(images_u8, self.read_batch), ref)
        with tempfile.TemporaryDirectory(prefix="vem-val-") as tmp:
            out = Path(tmp) / "gen.zip"
            write_png_zip(images_u8, out)
            return self.score(out, ref)

    @functools.cached_property
    def evalnet_sha256(self) -> str:
        """The evaluation network's file hash, read once per backend (every candidate's protocol names it)."""
        return file_sha256(self.evalnet)

    def protocol(self) -> dict:
        return {"backend_id": self.id, "evalnet": self.evalnet.name, "evalnet_sha256": self.evalnet_sha256}


# --------------------------------------------------------------------------------------------------
class _Frechet(Backend):
    """Shared by FD-FMNIST and Inception FID: features of a zip, statistics, Fréchet distance."""

    def features(self, images_zip) -> np.ndarray:
        return self.features_batches(read_zip_u8(images_zip, self.read_batch))

    def features_batches(self, batches) -> np.ndarray:
        raise NotImplementedError

    def real_sides(self, split: str) -> list[tuple[str, str]]:
        if split != "test":
            return [(split, "B")]
        if self.spec.kind != "unpaired":   # paired: the test targets; unconditional: the real test images
            return [("test", "B")]
        return [("train", "B"), ("val", "B"), ("test", "B")]

    def real_stats(self, data, out_zip, split: str = "test") -> dict:
        """Feature statistics of the real target images of ``split`` (for ``test``: the anchors' set)."""
        from ..metrics.fd import stats

        sides = self.real_sides(split)
        n = sum(data.n(sp, sd) for sp, sd in sides)
        images = (im for sp, sd in sides for im in data.real_u8(sp, sd))
        if out_zip is None:    # in memory (the val reference of a backend that reads batches)
            feats = self.features_batches(batched_u8(images, self.read_batch))
        else:
            write_png_zip(images, out_zip)
            feats = self.features(out_zip)
        mu, sigma = stats(feats)
        desc = {"val": "real val B (held out from train)", "test": "real test B" if len(sides) == 1 else
                "real train+test B (val = held-out train)"}[split]
        return {"mu": mu, "sigma": sigma, "description": f"{desc} ({n})", "n": n, **self.stats_extra()}

    def stats_extra(self) -> dict:
        """Recorded beside the statistics: the feature network they were computed with (checked at use)."""
        return {"evalnet_sha256": self.evalnet_sha256}

    def reference(self, data, split: str, real_stats_path=None) -> dict:
        if split == "test":
            if real_stats_path is None:
                raise ValueError(f"{self.name} needs the real statistics file (python -m vem real-stats)")
            with np.load(real_stats_path) as z:
                ref = {k: (str(z[k]) if z[k].dtype.kind in "US" else z[k]) for k in z.files}
            self.check_reference(ref, real_stats_path)
            return ref
        if self.read_batch is not None:
            return self.real_stats(data, None, split)
        with tempfile.TemporaryDirectory(prefix="vem-ref-") as d:
            return self.real_stats(data, Path(d) / "real.zip", split)

    def check_reference(self, ref: dict, path) -> None:
        """Test statistics are only compared with features of the network that computed them."""
        got, want = ref.get("evalnet_sha256", ref.get("weights_sha256")), self.evalnet_sha256
        if got is None:
            raise ValueError(f"{path} records no feature network: re-run `python -m vem real-stats` for it")
        if str(got) != want:
            raise ValueError(f"{path} was computed with another feature network (sha256 {str(got)[:12]}..., this "
                             f"run's {self.evalnet.name} {want[:12]}...): re-run `python -m vem real-stats`")

    def score(self, images_zip, ref) -> tuple[float, dict]:
        return self._frechet(self.features(images_zip), ref)

    def score_batches(self, batches, ref) -> tuple[float, dict]:
        return self._frechet(self.features_batches(batches), ref)

    def _frechet(self, feats, ref) -> tuple[float, dict]:
        from ..metrics.fd import frechet, stats

        value = frechet(*stats(feats), ref["mu"], ref["sigma"])
        return value, {**self.protocol(), "real_stats": str(ref["description"])}


class FDFMNIST(_Frechet):
    id = "fd_fmnist"
    name = "FD-FMNIST"
    read_batch = 256

    def __init__(self, spec, evalnet_path, cfg):
        super().__init__(spec, evalnet_path, cfg)
        from ..metrics.fd import FDExtractor
        from ..models import FeatureNet
        from ..models.evalnets import load_evalnet

        self.extractor = FDExtractor(load_evalnet(FeatureNet, evalnet_path))   # draws from the run's RNG stream

    @torch.no_grad()
    def features_batches(self, batches) -> np.ndarray:
        """FeatureNet features of the PNGs read back from the zip (sorted names, batches of 256), or of the
        same uint8 batches in memory. The batches are the gray images repeated to 3 channels in [0, 255], as
        clean-fid would hand a ``custom_feat_extractor`` (FDExtractor averages them back): the same features
        as clean-fid's ``get_files_features``, bit for bit (tested), without its per-image reopening of the zip."""
        return np.concatenate([self.extractor(torch.from_numpy(u8).float().unsqueeze(1).expand(-1, 3, -1, -1)).numpy()
                               for u8 in batches])

    def protocol(self) -> dict:
        return {**super().protocol(), "backend": "PNGs read back, FeatureNet features, clean-fid frechet_distance",
                "feature_net": "FeatureNet penultimate (128-d), trained on Fashion-MNIST train",
                "resize": "none (native 32x32)"}


class InceptionFID(_Frechet):
    id = "fid_inception"
    NAMES = {"legacy_pytorch": "FID (Inception, pytorch-fid weights)", "clean": "FID (Inception, clean-fid)"}

    def __init__(self, spec, evalnet_path, cfg):
        super().__init__(spec, evalnet_path, cfg)
        from ..metrics.inception import require_weights

        self.mode = cfg["eval"]["fid_mode"]
        require_weights(self.mode, evalnet_path)   # before any image is read or generated

    @property
    def name(self) -> str:
        return self.NAMES[self.mode]

    def features(self, images_zip) -> np.ndarray:
        from ..metrics.inception import zip_inception_features

        with torch.random.fork_rng(devices=rng_devices()):   # building the network, the DataLoader: not the run's RNG
            return zip_inception_features(images_zip, self.mode, self.evalnet, batch_size=self.cfg["eval"]["batch"],
                                          device=default_device())

    def stats_extra(self) -> dict:
        return {**super().stats_extra(), "mode": self.mode, "weights_sha256": self.evalnet_sha256}

    def check_reference(self, ref: dict, path) -> None:
        if "mode" not in ref:
            raise ValueError(f"{path} has no FID mode: not paper-scale Inception statistics")
        if ref["mode"] != self.mode:
            raise ValueError(f"{path} holds {ref['mode']} statistics; this run scores in {self.mode} mode")
        super().check_reference(ref, path)

    def protocol(self) -> dict:
        return {**super().protocol(), "backend": "clean-fid get_files_features + frechet_distance",
                "mode": self.mode, "feature_net": "Inception-v3 pool3 (2048-d), " + (
                    "pytorch-fid weights" if self.mode == "legacy_pytorch" else "clean-fid weights"),
                "resize": "clean-fid's resize for the mode (256 -> 299)"}


# --------------------------------------------------------------------------------------------------
class _MIoU(Backend):
    """Shared by the segmentation backends: the reference of a split is its label maps."""

    higher_is_better = True

    def reference(self, data, split: str, real_stats_path=None):
        return data.labels(split)


class SegmenterMIoU(_MIoU):
    id = "miou_segmenter"
    name = "mIoU-FMNIST-scenes"
    read_batch = 500

    def __init__(self, spec, evalnet_path, cfg):
        super().__init__(spec, evalnet_path, cfg)
        from ..models import Segmenter
        from ..models.evalnets import load_evalnet

        self.seg = load_evalnet(Segmenter, evalnet_path)   # draws from the run's RNG stream

    @torch.no_grad()
    def score_batches(self, batches, ref) -> tuple[float, dict]:
        from ..metrics.miou import miou

        preds = [self.seg(torch.from_numpy(u8).float().unsqueeze(1) / 127.5 - 1).argmax(1).numpy()
                 for u8 in batches]
        pred = np.concatenate(preds)
        value = miou(pred, ref[:len(pred)], len(SUPER_CLASSES))
        return value, {**self.protocol(), "backend": "segmenter argmax at 32x32 vs input label maps",
                       "feature_net": None, "segmenter": "Segmenter trained on real fmnist_scenes train",
                       "classes": SUPER_CLASSES, "aggregation": "nanmean of per-class IoU x 100"}


class DRNMIoU(_MIoU):
    id = "miou_drn"
    name = "mIoU (DRN-D-105, Cityscapes val)"

    def __init__(self, spec, evalnet_path, cfg):
        super().__init__(spec, evalnet_path, cfg)
        from ..models.drn import load_drn

        with torch.random.fork_rng(devices=rng_devices()):
            self.drn = load_drn(evalnet_path, default_device())

    def score(self, images_zip, ref) -> tuple[float, dict]:
        from PIL import Image

        from ..metrics.cityscapes import CLASSES, FULL_SIZE, cityscapes_miou, label_ids_to_train_ids

        batch = self.cfg["eval"]["batch"]

        def batches():
            for k, imgs in enumerate(read_zip_u8(images_zip, batch)):
                files = ref[k * batch:k * batch + len(imgs)]
                yield imgs, np.stack([label_ids_to_train_ids(np.asarray(Image.open(f))) for f in files])

        res = cityscapes_miou(self.drn, batches(), device=default_device())
        return res["miou"], {**self.protocol(),
                             "backend": "DRN-D-105 at 256x256, scores bilinearly resized to 2048x1024, argmax",
                             "segmenter": "drn-d-105_ms_cityscapes.pth", "labels": "gtFine trainIds (255 ignored)",
                             "label_size": list(FULL_SIZE), "classes": CLASSES, "per_class_iou": res["per_class_iou"],
                             "aggregation": "nanmean of per-class IoU x 100 over one confusion matrix"}


BACKENDS = {b.id: b for b in (FDFMNIST, InceptionFID, SegmenterMIoU, DRNMIoU)}


def make_backend(spec, evalnet_path, cfg: dict) -> Backend:
    return BACKENDS[spec.backend](spec, evalnet_path, cfg)

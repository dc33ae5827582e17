"""Cityscapes mIoU of generated images, the anchors' protocol (OMGD / GAN-Compression ``metric/``):

each 256x256 generated photo is normalised with Cityscapes' mean/std and fed to DRN-D-105 at 256x256;
the 19-class score map is resized (bilinear) to 2048x1024 and its argmax compared with the original
``gtFine`` trainIds of that val image (255 = ignored); one confusion matrix over the 500 val images;
mIoU = nanmean of the per-class IoU x 100 (a class absent from both predictions and labels is NaN).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .miou import confusion, per_class_iou

N_CLASSES = 19
FULL_SIZE = (1024, 2048)  # H, W of Cityscapes' gtFine
CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
           "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
           "bicycle"]
# Cityscapes labelIds -> trainIds (cityscapesScripts' labels.py); everything else is 255 (ignored)
LABEL_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                  26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    lut = np.full(256, 255, np.uint8)
    for k, v in LABEL_TO_TRAIN.items():
        lut[k] = v
    return lut[np.asarray(label_ids, dtype=np.uint8)]


def normalise(images_u8: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> DRN input (N, 3, H, W), Cityscapes mean/std."""
    from ..models.drn import CITYSCAPES_MEAN, CITYSCAPES_STD

    x = torch.from_numpy(np.ascontiguousarray(images_u8)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(CITYSCAPES_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CITYSCAPES_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def predict_full_size(segmenter, images_u8: np.ndarray, size=FULL_SIZE, device=None) -> np.ndarray:
    """trainId predictions (N, *size): scores at the input size, bilinearly resized to ``size``, argmax."""
    device = device or torch.device("cpu")
    scores = segmenter(normalise(images_u8).to(device))
    scores = F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
    return scores.argmax(1).to(torch.uint8).cpu().numpy()


def cityscapes_miou(segmenter, batches, size=FULL_SIZE, device=None) -> dict:
    """``batches``: iterable of (generated uint8 (N, h, w, 3), trainId labels (N, *size)).
    Returns mIoU, per-class IoU and the number of images."""
    conf = np.zeros((N_CLASSES, N_CLASSES), np.int64)
    n = 0
    for images, labels in batches:
        pred = predict_full_size(segmenter, images, size, device)
        if pred.shape != np.asarray(labels).shape:
            raise ValueError(f"label maps {np.asarray(labels).shape} do not match predictions {pred.shape}")
        conf += confusion(pred, labels, N_CLASSES, ignore=255)
        n += len(images)
    iou = per_class_iou(conf)
    per_class = {c: (None if np.isnan(v) else float(v)) for c, v in zip(CLASSES, iou)}   # None: class absent
    return {"miou": float(np.nanmean(iou) * 100), "per_class_iou": per_class, "n": n}

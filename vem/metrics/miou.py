"""Mean intersection over union, as the Cityscapes protocol computes it (nanmean of per-class IoU x 100)."""

from __future__ import annotations

import numpy as np


def confusion(pred: np.ndarray, target: np.ndarray, n_classes: int, ignore: int | None = 255) -> np.ndarray:
    pred, target = np.asarray(pred).ravel().astype(np.int64), np.asarray(target).ravel().astype(np.int64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction and target sizes differ: {pred.shape} vs {target.shape}")
    keep = (target >= 0) & (target < n_classes)
    if ignore is not None:
        keep &= target != ignore
    return np.bincount(n_classes * target[keep] + pred[keep], minlength=n_classes**2).reshape(n_classes, n_classes)


def per_class_iou(conf: np.ndarray) -> np.ndarray:
    """IoU per class; NaN for a class absent from both prediction and target."""
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - np.diag(conf)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def miou(pred, target, n_classes: int, ignore: int | None = 255) -> float:
    return float(np.nanmean(per_class_iou(confusion(pred, target, n_classes, ignore))) * 100)

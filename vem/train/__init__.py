"""Training: the one resumable loop (``loop``) and the GAN recipes teachers are trained with (``gan``)."""

from .gan import ImagePool, best_snapshot, build_discriminator, linear_decay, train_teacher
from .loop import Loop, LoopResult, check_finite, snapshot_weights

__all__ = ["ImagePool", "Loop", "LoopResult", "best_snapshot", "build_discriminator", "check_finite", "linear_decay",
           "snapshot_weights", "train_teacher"]

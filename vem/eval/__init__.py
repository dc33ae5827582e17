"""Evaluation: metric backends (``backends``), image zips (``images``) and the one evaluation path
(``evaluate``) used for test scores, val curves and real reference statistics at both scales."""

from .backends import BACKENDS, make_backend
from .evaluate import ValScorer, evaluate, evaluate_best_on_test, evaluate_best_on_val, measure_latency, real_stats
from .images import generate_u8, sample_grid, write_png_zip

__all__ = ["BACKENDS", "ValScorer", "evaluate", "evaluate_best_on_test", "evaluate_best_on_val",
           "generate_u8", "make_backend",
           "measure_latency", "real_stats", "sample_grid", "write_png_zip"]

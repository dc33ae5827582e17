"""Generators (by backbone id: ``vem.models.backbones``), discriminators and the evaluation networks."""

from .backbones import BACKBONES, PAPER_MODELS, build, from_config, init_weights, load_generator, record
from .discriminators import MultiNLayerDiscriminator, NLayerDiscriminator
from .evalnets import FeatureNet, PerceptualNet, Segmenter

__all__ = ["BACKBONES", "FeatureNet", "MultiNLayerDiscriminator", "NLayerDiscriminator", "PAPER_MODELS",
           "PerceptualNet", "Segmenter", "build", "from_config", "init_weights", "load_generator", "record"]

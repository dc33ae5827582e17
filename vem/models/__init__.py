"""Generators, discriminators and the evaluation networks of the embedded suite."""

from .discriminators import MultiNLayerDiscriminator, NLayerDiscriminator
from .evalnets import FeatureNet, PerceptualNet, Segmenter
from .generators import PAPER_MODELS, ResnetGenerator, UnetGenerator, build_generator

__all__ = ["FeatureNet", "MultiNLayerDiscriminator", "NLayerDiscriminator", "PAPER_MODELS", "PerceptualNet",
           "ResnetGenerator", "Segmenter", "UnetGenerator", "build_generator"]

"""Class-agnostic mask generators and the mask-guided refinement.

Generators (registered in ``mmseg.registry.MODELS``): SAM
(:class:`SAMMaskGenerator`, ``segment-anything``), SAM 2
(:class:`SAM2MaskGenerator`, optional ``sam2``) and pre-computed masks read
from files (:class:`FileMaskGenerator`, CorrCLIP's format).
:class:`MaskVoteRefinement` votes a dense method's predictions within their
regions (``TrainingFreeHead(mask_refinement=...)``), with an optional cache
folder (:class:`MaskCache`).
"""
from .base import BaseMaskGenerator, generator_regions, masks_to_regions
from .cache import MaskCache
from .files import FileMaskGenerator, load_regions, save_regions
from .refinement import MaskVoteRefinement, majority_vote, mean_vote
from .sam import SAMMaskGenerator
from .sam2 import SAM2MaskGenerator

__all__ = [
    'BaseMaskGenerator', 'FileMaskGenerator', 'MaskCache',
    'MaskVoteRefinement', 'SAM2MaskGenerator', 'SAMMaskGenerator',
    'generator_regions', 'load_regions', 'majority_vote', 'masks_to_regions',
    'mean_vote', 'save_regions'
]

"""Registered datasets and transforms (mmseg.registry)."""
from .benchmarks import (  # noqa: F401
                         WIDE_IGNORE_INDEX,
                         ADE20K150Dataset,
                         ADE20K847Dataset,
                         CityscapesOVDataset,
                         COCOObjectDataset,
                         COCOStuff171Dataset,
                         PascalContext59Dataset,
                         PascalContext60Dataset,
                         PascalContext459Dataset,
                         PascalVOC20bDataset,
                         PascalVOC20Dataset,
                         PascalVOC21Dataset,
)
from .layout import BenchmarkDatasetMixin, Layout, generate_palette  # noqa: F401
from .max_side_resize import ResizeToMaxSide  # noqa: F401
from .ovshapes import OVShapesDataset  # noqa: F401
from .transforms import LoadSegAnnotations  # noqa: F401

__all__ = [
    'ADE20K847Dataset', 'ADE20K150Dataset', 'PascalContext459Dataset',
    'PascalContext59Dataset', 'PascalContext60Dataset', 'PascalVOC20Dataset',
    'PascalVOC21Dataset', 'PascalVOC20bDataset', 'COCOStuff171Dataset', 'COCOObjectDataset',
    'CityscapesOVDataset', 'WIDE_IGNORE_INDEX', 'BenchmarkDatasetMixin',
    'Layout', 'generate_palette', 'LoadSegAnnotations', 'OVShapesDataset', 'ResizeToMaxSide'
]
from .captions import CaptionDataset, SampleCaption  # noqa: F401,E402
from .mixed_sampler import MixedSourceSampler  # noqa: F401,E402
from .ovseg_regions import RegionCropDataset  # noqa: F401,E402

__all__ += [
    'CaptionDataset', 'SampleCaption', 'MixedSourceSampler',
    'RegionCropDataset'
]
from .custom import OpenVocabCustomDataset  # noqa: F401,E402

__all__ += ['OpenVocabCustomDataset']

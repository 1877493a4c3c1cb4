"""Images in and out: reading, writing, file discovery and the dataset split.

numpy, scipy, nibabel and scikit-image only; nothing here imports TensorFlow
or the sampler. The preprocessing pieces live in their own modules
(:mod:`~niftykit.io.geometry`, :mod:`~niftykit.io.intensity`,
:mod:`~niftykit.io.histogram`, :mod:`~niftykit.io.labels`,
:mod:`~niftykit.io.augment` with :mod:`~niftykit.io.deform`, :mod:`~niftykit.io.warp`
and :mod:`~niftykit.io.intensity_augment`, :mod:`~niftykit.io.preprocess`,
:mod:`~niftykit.io.cache`, :mod:`~niftykit.io.readers`).
"""

from niftykit.io.augment import Augmenter
from niftykit.io.cache import VolumeCache
from niftykit.io.discovery import Subject, find_files, match_subjects, read_file_list
from niftykit.io.geometry import Geometry, apply_geometry, invert_geometry, plan_geometry
from niftykit.io.histogram import HistogramStandardiser
from niftykit.io.image import Image, check_same_grid, read_image, stack_channels
from niftykit.io.intensity import ct_window, foreground_mask, percentile_clip, whiten
from niftykit.io.labels import LabelMapping
from niftykit.io.partition import PHASES, load_or_create_split, subjects_in_phase, write_folds
from niftykit.io.preprocess import Prepared, Preprocessor, SourceSettings
from niftykit.io.writer import write_csv, write_image, write_text

__all__ = [
    "Image",
    "read_image",
    "stack_channels",
    "check_same_grid",
    "write_image",
    "write_csv",
    "write_text",
    "Subject",
    "find_files",
    "read_file_list",
    "match_subjects",
    "PHASES",
    "load_or_create_split",
    "subjects_in_phase",
    "write_folds",
    "Geometry",
    "plan_geometry",
    "apply_geometry",
    "invert_geometry",
    "foreground_mask",
    "whiten",
    "ct_window",
    "percentile_clip",
    "HistogramStandardiser",
    "LabelMapping",
    "Augmenter",
    "VolumeCache",
    "SourceSettings",
    "Preprocessor",
    "Prepared",
]

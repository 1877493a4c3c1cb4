"""Application sections (NiftyNet's ``[SEGMENTATION]`` … ``[REGISTRATION]``) and names.

Grouping keys such as ``image`` or ``label`` list input section names; their
modalities are concatenated along the channel axis (NiftyNet's
``image = T1,T2,Flair``). Keys and defaults follow NiftyNet 0.6
(``niftynet/utilities/user_parameters_custom.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from niftykit.config.sequences import InputRefs, IntList, SpatialSize, Triple
from niftykit.config.spec import option
from niftykit.config.suggest import did_you_mean
from niftykit.config.values import Bool, Choice, Float, Int, Invalid, Mapping, Str, show

__all__ = ["SegmentationConfig", "CascadeConfig", "ClassificationConfig", "RegressionConfig",
           "AutoencoderConfig", "GANConfig", "RegistrationConfig", "APP_SECTIONS",
           "normalise_application", "is_dotted"]

_IMAGE = "the input section(s) that feed the network, e.g. image: [T1]"
_CLASSES = " (the number of labels including background)"
_CLASSES_REQUIRED = ("the number of labels including background, e.g. 2 for "
                     "foreground/background")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(\.[A-Za-z_]\w*|:[A-Za-z_]\w*)$")
ALIASES = {"net_segment": "segmentation", "net_classify": "classification",
           "net_regress": "regression", "net_autoencoder": "autoencoder", "net_gan": "gan"}


@dataclass
class SegmentationConfig:
    """NiftyNet's ``[SEGMENTATION]``: inputs, classes and output of a segmentation."""

    image: tuple[str, ...] = option((), InputRefs(), True, required=_IMAGE)
    label: tuple[str, ...] = option((), InputRefs(), True)
    weight: tuple[str, ...] = option((), InputRefs())
    sampler: tuple[str, ...] = option((), InputRefs(), True)
    inferred: tuple[str, ...] = option((), InputRefs(), True)
    value: tuple[str, ...] = option((), InputRefs())
    num_classes: int = option(-1, Int(ge=2, note=_CLASSES), True, required=_CLASSES_REQUIRED)
    output_prob: bool = option(False, Bool(), True)
    label_normalisation: bool = option(False, Bool(), True)
    softmax: bool = option(True, Bool(), True)
    min_sampling_ratio: float = option(0.0, Float(ge=0, le=1))
    compulsory_labels: tuple[int, ...] = option((0, 1), IntList(ge=0))
    rand_samples: int = option(0, Int(ge=0))
    min_numb_labels: int = option(1, Int(ge=1))
    proba_connect: bool = option(True, Bool())
    evaluation_units: str = option("foreground", Choice(("foreground", "label", "cc")), True)
    do_mixup: bool = option(False, Bool())
    mixup_alpha: float = option(0.2, Float(gt=0))
    mix_match: bool = option(False, Bool())


@dataclass
class CascadeConfig(SegmentationConfig):
    """niftykit's ``[CASCADE]``: a two-stage, coarse-to-fine segmentation
    (:mod:`niftykit.application.cascade`). Every ``[SEGMENTATION]`` key, plus stage 1's.

    Stage 1 segments the same labels on volumes resampled to ``stage1_pixdim`` (mm)
    with its own window, network and iterations (unset: stage 2's); stage 2 segments
    at the inputs' ``pixdim`` inside the box where stage 1's foreground probability is
    at least ``stage1_threshold`` (its largest connected part, ``stage1_largest_component``),
    grown by ``region_margin_mm``, with that probability as an extra input channel
    (``cascade_mode: input``), joined to its last features (``local``) or not at all
    (``region``: the crop only).
    """

    cascade_mode: str = option("input", Choice(("input", "local", "region")), True)
    stage1_pixdim: tuple[float, float, float] | None = option(
        None, Triple(float, True, gt=0), True,
        required="stage 1's voxel size in mm, e.g. [4, 4, 4] (coarser than stage 2's pixdim)")
    stage1_window_size: tuple[int, int, int] | None = option(None, SpatialSize(), True)
    stage1_network: str | None = option(None, Str(optional=True), True)
    stage1_params: dict = option({}, Mapping(), True)
    stage1_max_iter: int = option(-1, Int(ge=1, also=(-1,)), True)
    stage1_threshold: float = option(0.5, Float(gt=0, lt=1), True)
    stage1_largest_component: bool = option(True, Bool(), True)
    region_margin_mm: float = option(10.0, Float(ge=0), True)
    local_features: int = option(16, Int(ge=1), True)


@dataclass
class ClassificationConfig:
    """NiftyNet's ``[CLASSIFICATION]``: one label per image.

    ``label`` names an input section holding one value per subject: a
    ``csv_data_file`` of ``subject_id,value`` rows, or label images of one value.
    """

    image: tuple[str, ...] = option((), InputRefs(), True, required=_IMAGE)
    label: tuple[str, ...] = option((), InputRefs(), True)
    sampler: tuple[str, ...] = option((), InputRefs())
    inferred: tuple[str, ...] = option((), InputRefs())
    num_classes: int = option(-1, Int(ge=2, note=_CLASSES), True, required=_CLASSES_REQUIRED)
    output_prob: bool = option(False, Bool(), True)
    label_normalisation: bool = option(False, Bool(), True)


@dataclass
class RegressionConfig:
    """NiftyNet's ``[REGRESSION]``: regression of an ``output`` image, voxel by voxel,
    or (niftykit) of per-image values when the ``output`` section is a ``csv_data_file``.

    ``loss_border`` is in voxels, dropped from the loss at every window edge.
    """

    image: tuple[str, ...] = option((), InputRefs(), True, required=_IMAGE)
    output: tuple[str, ...] = option((), InputRefs(), True)
    weight: tuple[str, ...] = option((), InputRefs(), True)
    sampler: tuple[str, ...] = option((), InputRefs())
    inferred: tuple[str, ...] = option((), InputRefs())
    loss_border: int = option(0, Int(ge=0), True)
    error_map: bool = option(False, Bool())


@dataclass
class AutoencoderConfig:
    """NiftyNet's ``[AUTOENCODER]``: a variational autoencoder."""

    image: tuple[str, ...] = option((), InputRefs())
    feature: tuple[str, ...] = option((), InputRefs())
    inference_type: str | None = option(None, Choice(
        ("encode", "encode-decode", "sample", "linear_interpolation"), optional=True))
    noise_stddev: float | None = option(None, Float(optional=True, gt=0))
    n_interpolations: int = option(10, Int(ge=1))


@dataclass
class GANConfig:
    """NiftyNet's ``[GAN]``: a generative adversarial network."""

    image: tuple[str, ...] = option((), InputRefs())
    conditioning: tuple[str, ...] = option((), InputRefs())
    noise_size: int = option(-1, Int(ge=1, also=(-1,)))
    n_interpolations: int = option(10, Int(ge=1))


@dataclass
class RegistrationConfig:
    """NiftyNet's ``[REGISTRATION]``: label-driven registration (Hu et al., MedIA 2018)."""

    moving_image: tuple[str, ...] = option((), InputRefs())
    moving_label: tuple[str, ...] = option((), InputRefs())
    fixed_image: tuple[str, ...] = option((), InputRefs())
    fixed_label: tuple[str, ...] = option((), InputRefs())
    label_normalisation: bool = option(False, Bool())


APP_SECTIONS: dict[str, type] = {
    "segmentation": SegmentationConfig, "cascade": CascadeConfig,
    "classification": ClassificationConfig,
    "regression": RegressionConfig, "autoencoder": AutoencoderConfig, "gan": GANConfig,
    "registration": RegistrationConfig,
}


def is_dotted(name: str) -> bool:
    """Return True for a user application ``package.module:Class`` or ``package.module.Class``."""
    return bool(_DOTTED.match(name)) and name.lower() not in APP_SECTIONS


def normalise_application(value: object) -> str:
    """Return the canonical application name.

    Args:
        value: ``segmentation`` … ``registration``, a NiftyNet alias such as
            ``net_segment``, or a dotted class path (kept as is).

    Raises:
        Invalid: For anything else, with the nearest valid name.
    """
    if isinstance(value, str):
        name = value.strip()
        if name.lower() in APP_SECTIONS:
            return name.lower()
        if name.lower() in ALIASES:
            return ALIASES[name.lower()]
        if is_dotted(name):
            return name
    names = list(APP_SECTIONS) + list(ALIASES)
    raise Invalid(f"expected one of {', '.join(APP_SECTIONS)} or a dotted path "
                  f"package.module:Class, got {show(value)}" + did_you_mean(str(value), names))

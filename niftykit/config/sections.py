"""The input and system sections: NiftyNet's keys and defaults, plus niftykit's.

Each field is declared with :func:`~niftykit.config.spec.option` (default,
kind, support). Key names, defaults and choices follow NiftyNet 0.6
(``niftynet/utilities/user_parameters_default.py``); niftykit adds
``system.seed``, ``system.strategy`` (with ``cpu_replicas``, ``workers``,
``worker_index`` and ``communication``), ``system.strict_subjects``,
``system.grid_tolerance_mm``, ``system.cache_size_mb``, ``system.cache_dir``,
``system.queue_size_mb``, ``inference.aggregation``, ``inference.overlap``, ``inference.tta``,
``network.params``, ``network.precision``, the per-source ``ct_window``,
``percentile_clip``, ``replace_nonfinite`` and ``crop_box_file``, the augmentations
``training.gamma_range`` and ``training.noise_std``, and the training-loop keys
``training.lr_schedule`` (with ``lr_decay_steps``, ``lr_decay_rate``, ``lr_min``,
``lr_power``, ``lr_warmup_iters``), ``gradient_clip_norm``, ``weight_decay``,
``restore_from``, ``early_stopping``, ``log_every_n`` and ``exact_resume``;
``optimiser`` also takes ``adamw``. For 2-D classification (radiographs, ultrasound):
the per-source ``pixel_spacing`` and ``rgb_to_grey``, ``training.class_weights``,
``evaluation.operating_point`` and ``evaluation.roc_ci``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from niftykit.config.paths import CONFIG_DIR, MODEL_DIR, PathList, PathValue
from niftykit.config.sequences import (Axcodes, FloatPair, IntList, SpatialSize, StrList,
                                       Triple, split_items)
from niftykit.config.spec import option
from niftykit.config.values import (Bool, Choice, Float, Int, IntOrName, Invalid, Kind, Mapping,
                                    Name, Str, show, to_float)

__all__ = ["InputConfig", "SystemConfig", "NetworkConfig", "TrainingConfig",
           "InferenceConfig", "EvaluationConfig"]

LOADERS = ("nibabel", "opencv", "skimage", "pillow", "simpleitk", "dummy")
EVENT_HANDLERS = ("model_saver", "model_restorer", "sampler_threading", "apply_gradients",
                  "output_interpreter", "console_logger", "tensorboard_logger",
                  "performance_logger")
ACTIVATIONS = ("relu", "relu6", "elu", "softplus", "softsign", "sigmoid", "tanh", "prelu",
               "selu", "leakyrelu", "dropout")
INITIALIZERS = ("constant", "zeros", "ones", "uniform_scaling", "orthogonal", "variance_scaling",
                "glorot_normal", "glorot_uniform", "he_normal", "he_uniform")
OPTIMISERS = ("adam", "adamw", "gradientdescent", "momentum", "nesterov", "adagrad", "rmsprop")
PAD_MODES = ("constant", "edge", "linear_ramp", "maximum", "mean", "median", "minimum",
             "reflect", "symmetric", "wrap", "empty")
SAMPLINGS = ("uniform", "resize", "balanced", "weighted", "patch", "multiview", "multiscale")
VIEW_CENTRES = ("uniform", "balanced", "weighted", "volume")
MASK_TYPES = ("otsu_plus", "otsu_minus", "threshold_plus", "threshold_minus", "mean_plus")
LR_SCHEDULES = ("constant", "step", "cosine", "polynomial")
EARLY_STOPPING = ("mean", "robust_mean", "median", "generalisation_loss", "median_smoothing",
                  "validation_up")
PHASES = ("all", "training", "validation", "inference")


class _PixelSpacing(Kind):
    """A 2-D image's pixel spacing in mm: ``[rows, columns]`` (DICOM's order), or one
    value for square pixels; empty means unset."""

    def coerce(self, value: object) -> tuple[float, float] | None:
        try:
            numbers = [to_float(item) for item in split_items(value)]
        except Invalid:
            numbers = []
        if not split_items(value):
            return None
        if len(numbers) == 1:
            numbers *= 2
        if len(numbers) != 2 or min(numbers) <= 0:
            raise Invalid(f"give 1 or 2 positive numbers in mm (row spacing, column spacing), "
                          f"e.g. [0.14, 0.14], got {show(value)}")
        return (numbers[0], numbers[1])


@dataclass
class InputConfig:
    """One input source, e.g. NiftyNet's ``[T1]`` or ``[label]`` section.

    Window sizes are in voxels along (x, y, z); ``pixdim`` is in mm.
    """

    csv_file: Path | None = option(None, PathValue(CONFIG_DIR, optional=True), True)
    csv_data_file: Path | None = option(None, PathValue(CONFIG_DIR, optional=True), True)
    to_ohe: bool = option(False, Bool())
    path_to_search: tuple[Path, ...] = option((), PathList(CONFIG_DIR), True)
    filename_contains: tuple[str, ...] = option((), StrList(), True)
    filename_not_contains: tuple[str, ...] = option((), StrList(), True)
    filename_removefromid: str = option("", Str(), True)
    interp_order: int = option(1, Int(ge=-1, le=3), True)
    loader: str | None = option(None, Choice(LOADERS, optional=True))
    pixdim: tuple[float, float, float] | None = option(None, Triple(float, True, gt=0), True)
    axcodes: tuple[str, str, str] | None = option(None, Axcodes(), True)
    spatial_window_size: tuple[int, int, int] | None = option(None, SpatialSize(), True)
    # niftykit: per-source intensity handling, applied in this order after NiftyNet's
    # normalisation switches are read (CT window, then percentile clip).
    ct_window: tuple[float, float] | None = option(None, FloatPair(), True)
    percentile_clip: tuple[float, float] | None = option(None, FloatPair(ge=0, le=100), True)
    replace_nonfinite: float | None = option(None, Float(optional=True), True)
    # niftykit: a CSV of per-subject voxel boxes (the rib-cage boxes of Gibson et al.'s
    # cropping.csv; format in niftykit/io/crop.py), relative to the config file's folder.
    # Every source of a subject is cropped to its box first; outputs are padded back.
    crop_box_file: Path | None = option(None, PathValue(CONFIG_DIR, optional=True), True)
    # niftykit: 2-D files (PNG, TIFF, JPEG) carry no spacing and are read with 1 mm pixels;
    # pixel_spacing [rows, columns] in mm gives theirs (other formats keep their header's).
    # rgb_to_grey: colour pixels become one BT.601 grey channel (else RGB(A) stays as
    # channels). Read by the classification application.
    pixel_spacing: tuple[float, float] | None = option(None, _PixelSpacing(), True)
    rgb_to_grey: bool = option(False, Bool(), True)


@dataclass
class SystemConfig:
    """NiftyNet's ``[SYSTEM]``: devices, folders, seed and distribution strategy."""

    cuda_devices: str = option("", Str(), True)
    num_threads: int = option(2, Int(ge=1), True)
    num_gpus: int = option(1, Int(ge=0), True)
    model_dir: Path | None = option(None, PathValue(CONFIG_DIR, optional=True), True)
    dataset_split_file: Path = option(Path("dataset_split.csv"), PathValue(MODEL_DIR), True)
    event_handler: tuple[str, ...] = option(EVENT_HANDLERS, StrList())
    iteration_generator: str = option("iteration_generator", Str())
    seed: int = option(0, Int(ge=0), True)
    strategy: str = option("default", Choice(("default", "mirrored", "multi_worker")), True)
    strict_subjects: bool = option(False, Bool(), True)
    grid_tolerance_mm: float = option(1e-3, Float(ge=0), True)
    cache_size_mb: int = option(2048, Int(ge=0), True)
    cache_dir: Path | None = option(None, PathValue(MODEL_DIR, optional=True), True)
    queue_size_mb: int = option(512, Int(ge=1), True)
    # niftykit: distribution (niftykit/engine/distribute.py). cpu_replicas: logical CPU
    # devices that `mirrored` spreads over when it uses no GPU; workers ("host:port") and
    # worker_index: the multi_worker cluster and this process's place in it (else TF_CONFIG);
    # communication: multi_worker's collective implementation.
    cpu_replicas: int = option(1, Int(ge=1), True)
    workers: tuple[str, ...] = option((), StrList(), True)
    worker_index: int = option(0, Int(ge=0), True)
    communication: str = option("auto", Choice(("auto", "ring", "nccl")), True)


class _SizeList(Kind):
    """A list of window sizes, e.g. ``[[32, 32, 32], [64, 64, 64]]`` (``[x, y]`` means
    ``[x, y, 1]``; a bare number ``n`` means ``[n, n, n]``); INI: ``(32, 32, 32), (64, 64, 64)``."""

    def coerce(self, value: object) -> tuple[tuple[int, int, int], ...]:
        if isinstance(value, str):
            groups = re.findall(r"[(\[]([^()\[\]]*)[)\]]", value)
            value = groups if groups else split_items(value)
        items = value if isinstance(value, (list, tuple)) else [value]
        sizes = []
        for item in items:
            if isinstance(item, (int, str)) and not isinstance(item, bool) and \
                    not (isinstance(item, str) and "," in item):
                item = [item] * 3
            try:
                size = SpatialSize().coerce(item)
            except Invalid:
                size = None
            if size is None or min(size) < 1:
                raise Invalid(f"give window sizes such as [[32, 32, 32], [64, 64, 64]] "
                              f"(positive voxels), got {show(value)}")
            sizes.append(size)
        return tuple(sizes)


@dataclass
class NetworkConfig:
    """NiftyNet's ``[NETWORK]``: architecture, batching, volume preprocessing.

    ``params`` holds the architecture hyper-parameters passed to the network.
    """

    name: str | None = option(None, Str(optional=True), True)
    activation_function: str = option("relu", Choice(ACTIVATIONS), True)
    batch_size: int = option(2, Int(ge=1), True)
    smaller_final_batch_mode: str = option("pad", Choice(("drop", "pad", "dynamic")), True)
    decay: float = option(0.0, Float(ge=0), True)
    reg_type: str = option("L2", Choice(("L1", "L2")), True)
    volume_padding_size: tuple[int, int, int] = option((0, 0, 0), Triple(int, ge=0), True)
    volume_padding_mode: str = option("minimum", Choice(PAD_MODES), True)
    volume_padding_to_size: tuple[int, int, int] = option((0, 0, 0), Triple(int, ge=0), True)
    window_sampling: str = option("uniform", Choice(SAMPLINGS),
                                  ("uniform", "weighted", "balanced", "resize", "multiview",
                                   "multiscale"))
    # niftykit: multiview and multiscale windows (niftykit/sampler/multiview.py, multiscale.py).
    # centre_sampling: where their centres come from (volume = the volume's centre voxel);
    # views / oblique_views / oblique_axis: the planes of a multiview window; multiscale_sizes:
    # the context windows [x, y, z] around each window, one of them the window itself.
    centre_sampling: str = option("uniform", Choice(VIEW_CENTRES), True)
    views: tuple[str, ...] = option(("axial", "coronal", "sagittal"), StrList(), True)
    oblique_views: int = option(0, Int(ge=0), True)
    oblique_axis: str = option("z", Choice(("x", "y", "z")), True)
    multiscale_sizes: tuple[tuple[int, int, int], ...] = option((), _SizeList(), True)
    force_output_identity_resizing: bool = option(False, Bool())
    queue_length: int = option(5, Int(ge=1), True)
    multimod_foreground_type: str = option("and", Choice(("and", "or", "multi")), True)
    histogram_ref_file: Path = option(Path("histogram_ref_file.txt"), PathValue(MODEL_DIR),
                                      True)
    norm_type: str = option("percentile", Choice(("percentile", "quartile", "median")), True)
    cutoff: tuple[float, float] = option((0.01, 0.99), FloatPair(False, ge=0, le=1), True)
    foreground_type: str = option("otsu_plus", Choice(MASK_TYPES), True)
    normalisation: bool = option(False, Bool(), True)
    rgb_normalisation: bool = option(False, Bool())
    whitening: bool = option(False, Bool(), True)
    normalise_foreground_only: bool = option(False, Bool(), True)
    weight_initializer: str = option("he_normal", Name(INITIALIZERS), True)
    bias_initializer: str = option("zeros", Name(INITIALIZERS), True)
    keep_prob: float = option(1.0, Float(gt=0, le=1))
    weight_initializer_args: dict[str, Any] = option({}, Mapping(), True)
    bias_initializer_args: dict[str, Any] = option({}, Mapping(), True)
    params: dict[str, Any] = option({}, Mapping(), True)
    precision: str = option("float32", Choice(("float32", "mixed_bfloat16", "mixed_float16")),
                            True)


class _ClassWeights(Kind):
    """Per-class loss weights: ``[1, 5]`` (class index order), ``auto`` (inverse class
    frequency in the training split), or empty (off)."""

    textual = True

    def coerce(self, value: object) -> tuple[float, ...] | str:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        try:
            numbers = [to_float(item) for item in split_items(value)]
        except Invalid:
            numbers = [-1.0]
        if any(n <= 0 for n in numbers):
            raise Invalid(f"give one positive weight per class, e.g. [1, 5], or auto "
                          f"(inverse class frequency), got {show(value)}")
        return tuple(numbers)


@dataclass
class TrainingConfig:
    """NiftyNet's ``[TRAINING]``: optimiser, schedule, augmentation, validation.

    Angles are in degrees, scaling in percent.
    """

    optimiser: str = option("adam", Name(OPTIMISERS), True)
    sample_per_volume: int = option(1, Int(ge=1), True)
    rotation_angle: tuple[float, float] | None = option(None, FloatPair(), True)
    rotation_angle_x: tuple[float, float] | None = option(None, FloatPair(), True)
    rotation_angle_y: tuple[float, float] | None = option(None, FloatPair(), True)
    rotation_angle_z: tuple[float, float] | None = option(None, FloatPair(), True)
    scaling_percentage: tuple[float, float] | None = option(None, FloatPair(gt=-100), True)
    isotropic_scaling: bool = option(False, Bool(), True)
    antialiasing: bool = option(True, Bool(), True)
    bias_field_range: tuple[float, float] | None = option(None, FloatPair(), True)
    bf_order: int = option(3, Int(ge=0), True)
    random_flipping_axes: tuple[int, ...] = option((), IntList(off=-1, ge=0, le=2), True)
    spatial_rank: int = option(3, Int(ge=2, le=3))
    do_elastic_deformation: bool = option(False, Bool(), True)
    num_ctrl_points: int = option(4, Int(ge=1), True)
    deformation_sigma: float = option(15.0, Float(ge=0), True)
    proportion_to_deform: float = option(0.5, Float(ge=0, le=1), True)
    gamma_range: tuple[float, float] | None = option(None, FloatPair(gt=0), True)
    noise_std: tuple[float, float] | None = option(None, FloatPair(ge=0), True)
    lr: float = option(0.01, Float(gt=0), True)
    # niftykit: the learning-rate schedule, a function of the update count stored in the
    # optimiser state (niftykit/engine/schedule.py has the formulas). ``step`` multiplies lr by
    # lr_decay_rate every lr_decay_steps; ``cosine`` and ``polynomial`` (lr_power; 0.9 is
    # nnU-Net's "poly") decay to lr_min at max_iter; lr_warmup_iters of linear warm-up first.
    lr_schedule: str = option("constant", Choice(LR_SCHEDULES), True)
    lr_decay_steps: int = option(1000, Int(ge=1), True)
    lr_decay_rate: float = option(0.1, Float(gt=0, le=1), True)
    lr_min: float = option(0.0, Float(ge=0), True)
    lr_power: float = option(0.9, Float(gt=0), True)
    lr_warmup_iters: int = option(0, Int(ge=0), True)
    # niftykit: clip the global L2 norm of the gradients (0 = off); decoupled weight decay
    # w -= lr * weight_decay * w for every optimiser (adamw = adam + this; 0 = off).
    gradient_clip_norm: float = option(0.0, Float(ge=0), True)
    weight_decay: float = option(0.0, Float(ge=0), True)
    loss_type: str = option("Dice", Str(), True)
    starting_iter: int = option(0, Int(ge=-1, note=" (-1 = latest checkpoint)"), True)
    save_every_n: int = option(500, Int(ge=0, also=(-1,)), True)
    tensorboard_every_n: int = option(20, Int(ge=0, also=(-1,)), True)
    max_iter: int = option(10000, Int(ge=0), True)
    max_checkpoints: int = option(100, Int(ge=1), True)
    validation_every_n: int = option(-1, Int(ge=1, also=(-1,), note=" (-1 = never)"), True)
    validation_max_iter: int = option(1, Int(ge=1), True)
    exclude_fraction_for_validation: float = option(0.0, Float(ge=0, lt=1), True)
    exclude_fraction_for_inference: float = option(0.0, Float(ge=0, lt=1), True)
    # niftykit: draw the split (and `niftykit split --folds` / crossval folds) per class, so
    # that each partition keeps the classes' proportions (classification).
    stratify_split: bool = option(False, Bool(), True)
    # Transfer learning: regular expressions searched in variable paths such as
    # network/down0_conv0/kernel. vars_to_restore: only the matching weights come from the
    # checkpoint (training.restore_from for a new run, else the one resumed); vars_to_freeze:
    # the matching weights get no updates. A pattern that matches nothing is an error.
    vars_to_restore: str = option("", Str(), True)
    vars_to_freeze: str = option("", Str(), True)
    # niftykit: initialise a new run (starting_iter 0) from this checkpoint prefix, folder
    # of checkpoints or model_dir (its latest), relative to the config file's folder.
    restore_from: Path | None = option(None, PathValue(CONFIG_DIR, optional=True), True)
    # Early stopping on the validation loss with NiftyNet's rules (engine/early_stopping.py);
    # patience counts validation rounds. niftykit: switched on by early_stopping (NiftyNet
    # added early_stopper to [SYSTEM] event_handler); needs validation_every_n.
    patience: int = option(100, Int(ge=1), True)
    early_stopping_mode: str = option("mean", Choice(EARLY_STOPPING), True)
    early_stopping: bool = option(False, Bool(), True)
    # niftykit: a progress line (iter/max_iter, loss, lr, it/s, ETA) every log_every_n iterations
    log_every_n: int = option(10, Int(ge=1), True)
    # niftykit: a resumed run first replays (samples, does not train on) the windows of the
    # iterations it skips, so that it ends with the weights of an uninterrupted run; costs
    # the sampling time of those iterations.
    exact_resume: bool = option(False, Bool(), True)
    # niftykit: classification cross-entropy weighted per class, mean_b w[y_b] e_b
    # (niftykit/loss/classification.py): [w_0, w_1, ...] or auto = n / (K n_c) over the
    # training split (scikit-learn's "balanced"); empty: unweighted.
    class_weights: tuple[float, ...] | str = option((), _ClassWeights(), True)


@dataclass
class InferenceConfig:
    """NiftyNet's ``[INFERENCE]``: checkpoint, grid windows, output files."""

    spatial_window_size: tuple[int, int, int] | None = option(None, SpatialSize(), True)
    # the checkpoint to infer with: its iteration, -1 for the latest, or niftykit's "best"
    # (lowest validation loss, kept in <model_dir>/models/best/ when training validates)
    inference_iter: int | str = option(
        -1, IntOrName(("best",), ge=-1, note=" (-1 = latest checkpoint)"), True)
    dataset_to_infer: str | None = option(None, Choice(PHASES, optional=True), True)
    save_seg_dir: Path = option(Path("output"), PathValue(MODEL_DIR), True)
    output_postfix: str = option("_niftynet_out", Str(), True)
    output_interp_order: int = option(0, Int(ge=-1, le=3), True)
    border: tuple[int, int, int] = option((0, 0, 0), Triple(int, ge=0), True)
    fill_constant: float = option(0.0, Float(), True)
    # niftykit: how overlapping grid windows are combined, and test-time augmentation
    aggregation: str = option("crop", Choice(("crop", "mean", "gaussian")), True)
    overlap: float = option(0.0, Float(ge=0, lt=1), True)
    tta: str = option("none", Choice(("none", "flip")), True)
    # niftykit: a fully connected 3-D CRF after segmentation inference (Kamnitsas et al.,
    # MedIA 2017, after Krähenbühl & Koltun, NIPS 2011; niftykit/postprocess/crf.py), on the
    # preprocessed grid. Defaults: DeepMedic's dense3dCrf. Sigmas in mm (1 or 3 values, x y z);
    # crf_appearance_sigma_intensity in the preprocessed image's units (z-scores with whitening).
    crf: str = option("none", Choice(("none", "dense")), True)
    crf_iterations: int = option(5, Int(ge=0), True)
    crf_smooth_weight: float = option(3.0, Float(ge=0), True)
    crf_smooth_sigma_mm: tuple[float, float, float] = option((3.0, 3.0, 3.0),
                                                             Triple(float, gt=0), True)
    crf_appearance_weight: float = option(5.0, Float(ge=0), True)
    crf_appearance_sigma_mm: tuple[float, float, float] = option((5.0, 5.0, 5.0),
                                                                 Triple(float, gt=0), True)
    crf_appearance_sigma_intensity: float = option(0.07, Float(gt=0), True)


_POINT = re.compile(r"^(sensitivity|specificity)@([0-9.eE+-]+)$")


class _OperatingPoint(Kind):
    """A binary classifier's operating point: a threshold on the positive class's
    probability (``0.5``), or the threshold reaching a sensitivity or specificity on
    the ROC (``sensitivity@0.95``, ``specificity@0.9``)."""

    def coerce(self, value: object) -> float | str:
        text = str(value).strip().lower().replace(" ", "") if not isinstance(value, bool) else ""
        match = _POINT.match(text)
        try:
            number = to_float(match.group(2) if match else value)
        except Invalid:
            number = -1.0
        if 0 <= number <= 1 and not isinstance(value, bool):
            return f"{match.group(1)}@{number:g}" if match else number
        raise Invalid(f"give a threshold in [0, 1] on the positive class's probability (e.g. 0.5), "
                      f"or sensitivity@S / specificity@S with S in [0, 1] (e.g. sensitivity@0.95), "
                      f"got {show(value)}")


@dataclass
class EvaluationConfig:
    """NiftyNet's ``[EVALUATION]``: metric names and the CSV output folder."""

    evaluations: tuple[str, ...] = option((), StrList(), True)
    save_csv_dir: Path = option(Path("evaluation"), PathValue(MODEL_DIR), True)
    # niftykit: binary classification's clinical metrics (niftykit/evaluation/classification.py):
    # sensitivity and specificity at operating_point (a threshold on the positive class's
    # probability, or sensitivity@S / specificity@S chosen on the evaluated ROC), and the
    # ROC AUC's 95% confidence interval by roc_ci: delong (DeLong et al., Biometrics 1988)
    # or bootstrap (2000 stratified resamples, seeded by system.seed).
    operating_point: float | str = option(0.5, _OperatingPoint(), True)
    roc_ci: str = option("delong", Choice(("delong", "bootstrap")), True)

"""The application interface: the hooks a task implements.

An application turns a validated :class:`~niftykit.config.Config` into the
pieces the engine runs. It holds no global state: the engine creates one
application per run and asks it, in order,

* :meth:`~BaseApplication.subjects` - which subjects a phase uses;
* :meth:`~BaseApplication.prepare` - learn or load data-dependent preprocessing;
* :meth:`~BaseApplication.preprocess` - a subject's arrays, ready to cut
  (cached by :meth:`~BaseApplication.load_volumes`);
* :meth:`~BaseApplication.make_sampler` - how training windows are drawn;
* :meth:`~BaseApplication.build_network` and :meth:`~BaseApplication.loss` -
  the model and the quantity to minimise for one batch of windows;
* :meth:`~BaseApplication.infer_subject` - how outputs become files;
* :meth:`~BaseApplication.evaluate` - how files become numbers.

A new task subclasses this (or an existing application) and overrides the
hooks it changes; see the README's "Writing an application". Helpers every
application may use: :meth:`~BaseApplication.training_window`,
:meth:`~BaseApplication.augmenter`, :meth:`~BaseApplication.instantiate_network`,
:meth:`~BaseApplication.inference_window` and :meth:`~BaseApplication.inference_border`;
the multiview and multiscale samplers: :meth:`~BaseApplication.centre_sampler`,
:meth:`~BaseApplication.context_sampler` and :meth:`~BaseApplication.grid_sampler`.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from niftykit.application.dataset import discover_subjects, select_phase
from niftykit.errors import ConfigError
from niftykit.io import Subject
from niftykit.io.augment import Augmenter
from niftykit.io.cache import VolumeCache
from niftykit.network import NETWORKS, nearest_valid, window_error, window_output
from niftykit.sampler import (BalancedSampler, GridSampler, MultiScaleGridSampler,
                              MultiScaleSampler, MultiViewSampler, UniformSampler, WeightedSampler)
from niftykit.sampler.multiscale import check_scales
from niftykit.sampler.multiview import ORTHOGONAL_VIEWS, CentredSampler
from niftykit.sampler.window import WindowSampler, resolve_window

__all__ = ["BaseApplication", "PredictFn"]

log = logging.getLogger("niftykit")

#: predict(batch of windows (B, x, y, z, c) float32) -> network outputs (B, x, y, z, k) numpy
PredictFn = Callable[[np.ndarray], np.ndarray]


class BaseApplication:
    """Base class of every application.

    Args:
        config: the loaded config; applications read it, lower layers never see it.
    """

    #: the config section holding this task's settings (``config.<section>``)
    section: ClassVar[str] = "segmentation"
    #: True when :meth:`infer_subject` cuts its grid with :meth:`grid_sampler`, so that
    #: ``window_sampling: multiscale`` windows carry their context at inference too
    multiscale_inference: ClassVar[bool] = False

    def __init__(self, config: Any) -> None:
        self.config = config
        self.task = getattr(config, self.section)
        if self.task is None:
            raise ConfigError(f"{config.source}: [{self.section}] section is missing")
        self._cache: Optional[VolumeCache] = None

    # -- data -------------------------------------------------------------------
    def input_sources(self, phase: str) -> List[str]:
        """Input section names a phase needs (``training``, ``inference``, ``evaluation``)."""
        raise NotImplementedError

    def subjects(self, phase: str) -> List[Subject]:
        """Subjects of a partition, discovered from the input sections this phase needs."""
        kind = "evaluation" if phase == "evaluation" else (
            "inference" if phase == "inference" else "training")
        found = discover_subjects(self.config.inputs, self.input_sources(kind),
                                  strict=self.config.system.strict_subjects)
        if phase == "evaluation":
            return found
        wanted = phase
        if phase == "inference" and self.config.inference.dataset_to_infer:
            wanted = self.config.inference.dataset_to_infer
        return select_phase(found, self.config.system, self.config.training, wanted,
                            create=(phase == "training"), strata=self.strata)

    def strata(self, subjects: Sequence[Subject]) -> Optional[Dict[str, Any]]:
        """Each subject's class when ``training.stratify_split`` is set (from
        :meth:`split_strata`), else None: what splits and folds are drawn by."""
        return self.split_strata(subjects) if self.config.training.stratify_split else None

    def split_strata(self, subjects: Sequence[Subject]) -> Dict[str, Any]:
        """Each subject's class, to draw a stratified split by (``training.stratify_split``).

        Applications with one class per subject override this (classification); here it
        is a config error, since there is nothing to stratify by.
        """
        raise ConfigError(f"{self.config.source}: [training] stratify_split: application "
                          f"'{self.config.application}' has no class per subject to stratify "
                          "the split by (classification has); remove the key")

    def prepare(self, phase: str, subjects: Sequence[Subject]) -> None:
        """Learn (``training``) or load the data-dependent preprocessing before a phase runs."""

    # -- stages: applications whose trained networks this one uses (a cascade) -----------
    def stages(self) -> Sequence["BaseApplication"]:
        """Earlier stages, in order: applications whose trained networks this one needs
        (a cascade's stage 1). The engine trains each before this one (unless
        :meth:`stage_trained`) and hands their predict functions to :meth:`attach_stages`
        before :meth:`prepare` runs, in training and in inference. None by default."""
        return ()

    def stage_trained(self, stage: "BaseApplication") -> bool:
        """True when ``stage`` need not be trained again (its last checkpoint is current)."""
        return False

    def attach_stages(self, predictors: Sequence[PredictFn]) -> None:
        """Receive one predict function per :meth:`stages` entry, in order."""

    def preprocess(self, subject: Subject, with_label: bool) -> Any:
        """A subject read and preprocessed: an object with ``volumes`` (name -> array)."""
        raise NotImplementedError

    def load_volumes(self, subject: Subject, phase: str) -> Dict[str, np.ndarray]:
        """A subject's arrays ``(x, y, z, channels)`` by window name, preprocessed and cached."""
        with_label = phase != "inference"
        return self.cache.get(self.cache_key(subject, with_label),
                              lambda: self.preprocess(subject, with_label).volumes)

    @property
    def cache(self) -> VolumeCache:
        """Preprocessed volumes, bounded by ``system.cache_size_mb`` (and on disk in ``cache_dir``)."""
        if self._cache is None:
            system = self.config.system
            self._cache = VolumeCache(int(system.cache_size_mb) * 2 ** 20, system.cache_dir)
        return self._cache

    def cache_key(self, subject: Subject, with_label: bool) -> str:
        """Names a subject's preprocessed volumes: changes whenever a file or setting does."""
        digest = hashlib.sha1(repr((self.config.inputs, self.config.network, self.task,
                                    with_label)).encode())
        boxes = {f"crop_box_file={s.crop_box_file}": s.crop_box_file
                 for s in self.config.inputs.values() if s.crop_box_file is not None}
        for name, path in sorted({**subject.paths, **boxes}.items()):  # an edited box re-crops
            stat = Path(path).stat() if Path(path).exists() else None
            digest.update(f"{name}={path}:{stat.st_size if stat else 0}:"
                          f"{stat.st_mtime_ns if stat else 0}".encode())
        ref = Path(self.config.network.histogram_ref_file)
        if ref.exists():
            digest.update(ref.read_bytes())
        return f"{subject.id}-{digest.hexdigest()[:16]}"

    def make_sampler(self, rng: np.random.Generator,
                     phase: str = "training") -> Callable[[Mapping[str, np.ndarray]], list]:
        """A callable from a subject's volumes to a list of windows (augmented in training)."""
        raise NotImplementedError

    def centre_sampler(self, window: Sequence[int], n: int,
                       rng: np.random.Generator) -> Optional[WindowSampler]:
        """Where multiview and multiscale windows are centred (``network.centre_sampling``):
        a sampler of ``window``-sized boxes whose centres are taken, or None for the
        volume's centre voxel (``volume``).

        Raises:
            ConfigError: ``balanced`` or ``weighted`` without a voxel map to draw from.
        """
        kind, where = self.config.network.centre_sampling, f"{self.config.source}: [network]"
        if kind == "volume":
            return None
        if kind == "uniform":
            return UniformSampler(window, n, rng)
        if self.section != "segmentation":
            raise ConfigError(f"{where} centre_sampling: {kind} draws centres from a voxel label "
                              f"or sampling map (segmentation); {self.section} takes volume or "
                              "uniform")
        if kind == "weighted":
            if not self.task.sampler:
                raise ConfigError(f"{self.config.source}: [segmentation] sampler: required for "
                                  "centre_sampling: weighted (the input section holding the map)")
            return WeightedSampler(window, n, rng, map_name="sampler")
        return BalancedSampler(window, n, rng,
                               label_name="sampler" if self.task.sampler else "label")

    def multiscale_sizes(self, window: Sequence[int]) -> Tuple[Tuple[int, int, int], ...]:
        """``network.multiscale_sizes``, checked against the network ``window``."""
        try:
            return check_scales(window, self.config.network.multiscale_sizes)
        except ValueError as exc:
            raise ConfigError(f"{self.config.source}: [network] multiscale_sizes: {exc} (the "
                              "window is spatial_window_size, the finest scale)") from None

    def context_sampler(self, window: Sequence[int], n: int, rng: np.random.Generator,
                        orders: Optional[Mapping[str, int]] = None) -> CentredSampler:
        """The ``multiview`` or ``multiscale`` sampler of ``network.window_sampling`` for the
        training ``window``, centred by :meth:`centre_sampler`; ``orders``: the oblique
        views' interpolation order per volume name.

        Raises:
            ConfigError: a window or setting the sampler cannot take (naming the key).
        """
        net, source = self.config.network, self.config.source
        key = f"{source}: [inputs.{self.task.image[0]}] spatial_window_size"
        if not all(size > 0 for size in window):
            raise ConfigError(f"{key}: window_sampling: {net.window_sampling} needs a full window "
                              f"size, got {list(window)}")
        if net.window_sampling == "multiscale":
            sizes = self.multiscale_sizes(window)
            return MultiScaleSampler(window, sizes, n, rng, self.centre_sampler(window, n, rng))
        if window[2] != 1 or window[0] != window[1]:
            raise ConfigError(f"{key}: multiview windows are square 2-D planes [s, s], got "
                              f"{list(window)}")
        unknown = [v for v in net.views if v not in ORTHOGONAL_VIEWS]
        if unknown or not (net.views or net.oblique_views):
            raise ConfigError(f"{source}: [network] views: give any of "
                              f"{', '.join(ORTHOGONAL_VIEWS)} (or oblique_views > 0), got "
                              f"{list(net.views)}")
        centres = self.centre_sampler((window[0],) * 3, n, rng)
        return MultiViewSampler(window[0], n, rng, net.views, net.oblique_views, net.oblique_axis,
                                centres, orders)

    def grid_sampler(self, volume: np.ndarray, window: Sequence[int],
                     border: Sequence[int]) -> GridSampler:
        """The inference grid over one ``(x, y, z, c)`` volume (``inference.overlap``); with
        ``window_sampling: multiscale`` each window carries its coarser context as channels."""
        overlap = self.config.inference.overlap
        if self.config.network.window_sampling == "multiscale":
            return MultiScaleGridSampler(volume, window, border, self.multiscale_sizes(window),
                                         overlap=overlap)
        return GridSampler(volume, window, border, overlap=overlap)

    # -- model --------------------------------------------------------------------
    def network_class(self) -> Any:
        """The network class named in ``network.name``."""
        return NETWORKS.get(self.config.network.name)

    def check_window(self, window: Sequence[int], key: str) -> None:
        """Raise a ConfigError naming ``key`` if the network cannot take ``window``."""
        problem = window_error(self.network_class(), window, self.config.network.params)
        if problem:
            raise ConfigError(f"{self.config.source}: {key} = {list(window)}: {problem}")

    def build_network(self) -> Any:
        """The Keras model; must be called inside the engine's strategy scope."""
        raise NotImplementedError

    def instantiate_network(self, num_classes: int, spatial_rank: int = 3,
                            params: Optional[Mapping[str, Any]] = None) -> Any:
        """``network.name`` built with NiftyNet's common arguments and ``network.params``
        (which may override ``num_classes``); ``params`` replaces ``network.params``, e.g.
        without an application's own keys.

        Raises:
            ConfigError: the network rejects its parameters (naming ``network.params``).
        """
        net = self.config.network
        kwargs = dict(
            num_classes=int(num_classes), activation=net.activation_function,
            spatial_rank=spatial_rank, weight_initializer=net.weight_initializer,
            weight_initializer_args=dict(net.weight_initializer_args or {}),
            bias_initializer=net.bias_initializer,
            bias_initializer_args=dict(net.bias_initializer_args or {}),
            decay=net.decay, reg_type=net.reg_type)
        kwargs.update((net.params or {}) if params is None else params)
        try:
            return self.network_class()(name="network", **kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.config.source}: [network] params: cannot build "
                              f"'{net.name}': {exc}") from exc

    def training_window(self) -> Tuple[int, int, int]:
        """``spatial_window_size`` of the first image source; the other training sources
        that set a window must agree.

        Raises:
            ConfigError: no window, or two sources disagree (naming the keys).
        """
        images = list(getattr(self.task, "image", ()))
        if not images:
            raise ConfigError(f"{self.config.source}: [{self.section}] image: required")
        name = images[0]
        window = tuple(self.config.inputs[name].spatial_window_size or ())
        if not window:
            raise ConfigError(f"{self.config.source}: [inputs.{name}] spatial_window_size: "
                              "required for training, e.g. [32, 32, 32]")
        for other in self.input_sources("training")[1:]:
            size = tuple(self.config.inputs[other].spatial_window_size or ())
            if size and size != window:
                raise ConfigError(
                    f"{self.config.source}: [inputs.{other}] spatial_window_size: {list(size)} "
                    f"differs from [inputs.{name}] {list(window)}; give them the same window")
        return window  # type: ignore[return-value]

    def output_window(self, window: Sequence[int]) -> Tuple[int, ...]:
        """The network's spatial output for an input ``window`` (smaller for valid convolutions)."""
        return window_output(self.network_class(), window, self.config.network.params)

    def inference_window(self, spatial_shape: Sequence[int]) -> Tuple[int, int, int]:
        """The grid window for one volume: ``inference.spatial_window_size`` or the
        training window; sizes of 0 or less take the whole axis, rounded up to what
        the network accepts (the volume is padded and cropped back)."""
        if self.config.network.window_sampling == "multiscale" and not self.multiscale_inference:
            raise ConfigError(
                f"{self.config.source}: [network] window_sampling: multiscale: {self.section} "
                "inference does not cut multi-scale windows yet (its grid is not "
                "BaseApplication.grid_sampler); train and infer with another window_sampling")
        window = tuple(self.config.inference.spatial_window_size or ()) or self.training_window()
        resolved = resolve_window(window, spatial_shape)
        cls, params = self.network_class(), dict(self.config.network.params or {})
        rounded = tuple(
            size if size <= 1 or fixed > 0 or window_error(cls, (size, 1, 1), params) is None
            else (nearest_valid(cls, size, params) or [size])[-1]
            for size, fixed in zip(resolved, window))
        self.check_window(rounded, "[inference] spatial_window_size")
        return rounded  # type: ignore[return-value]

    def inference_border(self, window: Sequence[int]) -> Tuple[int, int, int]:
        """``inference.border``, raised where a valid-padded network's output is smaller
        than the window, so that the outputs tile the volume (NiftyNet left this to the user)."""
        border = [int(b) for b in self.config.inference.border]
        border += [0] * (3 - len(border))
        margin = [(w - o) // 2 for w, o in zip(window, self.output_window(window))]
        needed = tuple(max(b, m) for b, m in zip(border, margin))
        if needed != tuple(border[:3]):
            log.info("inference border %s raised to %s: the network's output for window %s is %s",
                     tuple(border[:3]), needed, tuple(window), self.output_window(window))
        return needed  # type: ignore[return-value]

    def augmenter(self, rng: np.random.Generator) -> Augmenter:
        """NiftyNet's ``[TRAINING]`` augmentation plus gamma and noise, drawn from ``rng``."""
        t = self.config.training
        return Augmenter(
            rng=rng, flip_axes=t.random_flipping_axes, rotation=t.rotation_angle,
            rotation_x=t.rotation_angle_x, rotation_y=t.rotation_angle_y,
            rotation_z=t.rotation_angle_z, scaling=t.scaling_percentage,
            isotropic_scaling=t.isotropic_scaling, antialiasing=t.antialiasing,
            elastic=t.do_elastic_deformation, num_ctrl_points=t.num_ctrl_points,
            deformation_sigma=t.deformation_sigma, proportion_to_deform=t.proportion_to_deform,
            bias_field_range=t.bias_field_range, bf_order=t.bf_order,
            gamma_range=t.gamma_range, noise_std=t.noise_std)

    def loss(self, outputs: Any, batch: Mapping[str, Any]) -> Any:
        """Scalar loss of one batch (without regularisation terms)."""
        raise NotImplementedError

    # -- inference and evaluation ---------------------------------------------------
    def infer_subject(self, subject: Subject, predict: PredictFn, *, overwrite: bool,
                      progress: Optional[Callable[[int, int], None]] = None) -> Any:
        """Run the network over one subject and write its outputs; return the file written.

        ``progress(done, total)`` is called as windows are processed.
        """
        raise NotImplementedError

    def evaluate(self, inferred: Mapping[str, Any], *, overwrite: bool) -> Any:
        """Compare inferred outputs (subject id -> file) with references.

        Returns:
            ``(file written, summary mapping)``.
        """
        raise NotImplementedError

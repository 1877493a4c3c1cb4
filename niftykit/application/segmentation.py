"""Segmentation: voxel-wise labels from one or more image sources.

Training cuts windows of every image source (stacked as channels) and of
the label source at the same place; inference slides a grid of windows over
each volume, stitches the network outputs back (NiftyNet's crop
aggregation) and writes one label map (or probability map, with
``output_prob``) per subject on the input's exact grid and affine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from niftykit.application.base import BaseApplication, PredictFn
from niftykit.errors import ConfigError, DataError, ImageError
from niftykit.evaluation import evaluate_segmentations, summarise
from niftykit.io import Image, Subject, check_same_grid, read_image, stack_channels, write_image
from niftykit.loss import LOSSES
from niftykit.sampler import GridAggregator, GridSampler, UniformSampler, resolve_window

__all__ = ["SegmentationApplication"]


class SegmentationApplication(BaseApplication):
    """Multi-class segmentation (config section ``segmentation``)."""

    section = "segmentation"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        where = f"{config.source}: [segmentation]"
        if not self.task.image:
            raise ConfigError(f"{where} image: required (the input section(s) to segment)")
        if len(self.task.label) > 1:
            raise ConfigError(f"{where} label: give one input section, got {list(self.task.label)}")
        self.num_classes = int(self.task.num_classes)

    # -- data -------------------------------------------------------------------
    def input_sources(self, phase: str) -> List[str]:
        sources = list(self.task.image)
        if phase == "inference":
            return sources
        if not self.task.label:
            raise ConfigError(f"{self.config.source}: [segmentation] label: required for {phase}")
        return sources + [self.task.label[0]]

    def read_image(self, subject: Subject) -> Image:
        """The subject's image sources stacked as channels ``(x, y, z, c)``."""
        return stack_channels([read_image(subject.paths[s]) for s in self.task.image])

    def read_label(self, subject: Subject, image: Image) -> Image:
        """The subject's label map, checked against the image grid and ``num_classes``."""
        label = read_image(subject.paths[self.task.label[0]], kind="label")
        check_same_grid(image, label)
        if label.num_channels != 1:
            raise ImageError(f"{label.path}: a label map has one channel, got {label.num_channels}")
        low, high = int(label.array.min()), int(label.array.max())
        if low < 0 or high >= self.num_classes:
            bad = low if low < 0 else high
            raise DataError(
                f"label value {bad} in {label.path} is outside 0..{self.num_classes - 1} "
                f"(segmentation.num_classes={self.num_classes} in {self.config.source})")
        return label

    def load_volumes(self, subject: Subject, phase: str) -> Dict[str, np.ndarray]:
        image = self.read_image(subject)
        volumes = {"image": image.array}
        if phase != "inference":
            volumes["label"] = self.read_label(subject, image).array
        return volumes

    def training_window(self) -> Tuple[int, int, int]:
        """``spatial_window_size`` of the first image source (label windows must agree)."""
        name = self.task.image[0]
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

    def make_sampler(self, rng: np.random.Generator) -> Callable[[Mapping[str, np.ndarray]], list]:
        window = self.training_window()
        if all(size > 0 for size in window):
            self.check_window(window, f"[inputs.{self.task.image[0]}] spatial_window_size")
        return UniformSampler(window, self.config.training.sample_per_volume, rng)

    # -- model --------------------------------------------------------------------
    def build_network(self) -> Any:
        net = self.config.network
        window = self.training_window()
        kwargs = dict(
            num_classes=self.num_classes, activation=net.activation_function,
            spatial_rank=2 if window[2] == 1 else 3,
            weight_initializer=net.weight_initializer,
            weight_initializer_args=dict(net.weight_initializer_args or {}),
            bias_initializer=net.bias_initializer,
            bias_initializer_args=dict(net.bias_initializer_args or {}),
            decay=net.decay, reg_type=net.reg_type)
        kwargs.update(net.params or {})
        try:
            return self.network_class()(name="network", **kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.config.source}: [network] params: cannot build "
                              f"'{net.name}': {exc}") from exc

    def loss(self, outputs: Any, batch: Mapping[str, Any]) -> Any:
        return LOSSES.get(self.config.training.loss_type)(outputs, batch["label"])

    # -- inference ----------------------------------------------------------------
    def inference_window(self, spatial_shape: Sequence[int]) -> Tuple[int, int, int]:
        """The grid window for one volume: ``inference.spatial_window_size`` or the
        training window; sizes of 0 or less take the whole axis, rounded up to what
        the network accepts (the volume is padded and cropped back)."""
        window = tuple(self.config.inference.spatial_window_size or ()) or self.training_window()
        resolved = resolve_window(window, spatial_shape)
        divisor_of = getattr(self.network_class(), "window_divisor", None)
        divisor = int(divisor_of(dict(self.config.network.params or {}))) if divisor_of else 1
        rounded = tuple(size if size <= 1 or fixed > 0 else -(-size // divisor) * divisor
                        for size, fixed in zip(resolved, window))
        self.check_window(rounded, "[inference] spatial_window_size")
        return rounded  # type: ignore[return-value]

    def output_path(self, subject: Subject) -> Path:
        inference = self.config.inference
        return Path(inference.save_seg_dir) / f"{subject.id}{inference.output_postfix}.nii.gz"

    def infer_subject(self, subject: Subject, predict: PredictFn, *, overwrite: bool) -> Path:
        path = self.output_path(subject)
        if path.exists() and not overwrite:
            raise ImageError(f"{path} exists; pass --overwrite to replace it")
        image = self.read_image(subject)
        inference = self.config.inference
        sampler = GridSampler(image.array, self.inference_window(image.spatial_shape),
                              inference.border)
        aggregator = GridAggregator(sampler, self.num_classes, fill_constant=inference.fill_constant)
        for windows, locations in sampler.batches(self.config.network.batch_size):
            outputs = predict(windows)
            aggregator.add(_softmax(outputs) if self.task.softmax else outputs, locations)
        result = aggregator.result()
        if self.task.output_prob:
            array = result.astype(np.float32)
        else:
            dtype = np.uint8 if self.num_classes <= 256 else np.int16
            array = np.argmax(result, axis=-1).astype(dtype)
        return write_image(array, image.affine, path, overwrite=overwrite)

    # -- evaluation ---------------------------------------------------------------
    def evaluate(self, inferred: Mapping[str, Path], *, overwrite: bool) -> Tuple[Path, dict]:
        """Dice per subject and label of the inferred label maps against the references.

        Args:
            inferred: subject id -> inferred label map (from ``inferred.csv``).

        Returns:
            The CSV written and the mean Dice per label.
        """
        if self.task.output_prob:
            raise ConfigError(f"{self.config.source}: [segmentation] output_prob: evaluation "
                              "needs label maps; infer again with output_prob: false")
        references = {s.id: s for s in self.subjects("evaluation")}
        pairs = [(sid, path, references[sid].paths[self.task.label[0]])
                 for sid, path in sorted(inferred.items()) if sid in references]
        if not pairs:
            raise DataError(f"no reference label for any of the {len(inferred)} inferred subjects "
                            f"(label source '{self.task.label[0]}')")
        out = Path(self.config.evaluation.save_csv_dir) / "evaluation.csv"
        if out.exists() and not overwrite:
            raise DataError(f"{out} exists; pass --overwrite to replace it")
        rows = evaluate_segmentations(pairs, range(1, self.num_classes), out, overwrite=True)
        return out, summarise(rows)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)

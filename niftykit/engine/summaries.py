"""TensorBoard summaries under ``<model_dir>/logs/{training,validation}``.

Scalars: ``loss`` (both runs), ``learning_rate`` (training). Images, every
``training.tensorboard_every_n`` iterations: the three orthogonal central
slices (``axial`` through the middle z, ``coronal`` y, ``sagittal`` x) of the
first window of the batch: its ``image`` (first channel), ``label`` and the
network's ``prediction`` (class index for several output channels), each in
[0, 1] — the image by its own minimum and maximum, labels and predictions by
the number of classes so that a class has one grey level everywhere. Slices
are shown with x to the right and y (axial) or z (coronal, sagittal) upwards;
2-D windows have the axial view only. ``tensorboard --logdir <model_dir>/logs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np

__all__ = ["Summaries", "central_slices", "window_images"]

VIEWS = ("axial", "coronal", "sagittal")


def central_slices(volume: np.ndarray) -> Dict[str, np.ndarray]:
    """The central axial, coronal and sagittal slices of ``volume`` ``(x, y, z)`` as
    display images ``(rows, columns)``; views with a single row or column are left out."""
    x, y, z = (s // 2 for s in volume.shape[:3])
    cuts = {"axial": volume[:, :, z], "coronal": volume[:, y, :], "sagittal": volume[x, :, :]}
    return {name: np.flipud(cut.T) for name, cut in cuts.items() if min(cut.shape) > 1}


def _unit(array: np.ndarray, high: Optional[float] = None) -> np.ndarray:
    """``array`` in [0, 1]: divided by ``high``, or min-max scaled (a flat array gives 0)."""
    array = np.asarray(array, dtype=np.float32)
    if high is not None:
        return np.clip(array / max(high, 1.0), 0.0, 1.0)
    low, top = float(array.min()), float(array.max())
    return (array - low) / (top - low) if top > low else np.zeros_like(array)


def window_images(image: np.ndarray, label: Optional[np.ndarray],
                  output: Optional[np.ndarray]) -> Dict[str, np.ndarray]:
    """``{"image/axial": (rows, columns) in [0, 1], ...}`` for one window.

    Args:
        image: ``(x, y, z, channels)``.
        label: ``(x, y, z, 1)`` or None.
        output: the network's ``(x', y', z', k)`` output, or None.
    """
    classes = output.shape[-1] if output is not None and output.ndim == 4 else 1
    volumes = {"image": _unit(image[..., 0])}
    if label is not None and label.ndim == 4:
        volumes["label"] = _unit(label[..., 0], classes - 1 if classes > 1 else None)
    if output is not None and output.ndim == 4:
        volumes["prediction"] = (_unit(np.argmax(output, axis=-1), classes - 1) if classes > 1
                                 else _unit(output[..., 0]))
    return {f"{kind}/{view}": cut for kind, volume in volumes.items()
            for view, cut in central_slices(volume).items()}


class Summaries:
    """TensorBoard writers for one run.

    Args:
        logs: ``<model_dir>/logs``.
        tf: the TensorFlow module.
    """

    def __init__(self, logs: Path, tf: Any) -> None:
        self.tf = tf
        self.writers = {name: tf.summary.create_file_writer(str(Path(logs) / name))
                        for name in ("training", "validation")}

    def scalars(self, run: str, iteration: int, values: Mapping[str, float]) -> None:
        """Write ``values`` (name -> number) to ``run`` at ``iteration``."""
        with self.writers[run].as_default():
            for name, value in values.items():
                self.tf.summary.scalar(name, float(value), step=iteration)

    def images(self, iteration: int, batch: Mapping[str, Any], outputs: Any) -> None:
        """Central slices of the first window of ``batch`` and of its ``outputs``."""
        image = np.asarray(batch["image"][0])
        if image.ndim != 4:
            return
        label = np.asarray(batch["label"][0]) if "label" in batch else None
        output = np.asarray(outputs[0], dtype=np.float32) if outputs is not None else None
        with self.writers["training"].as_default():
            for name, picture in window_images(image, label, output).items():
                self.tf.summary.image(name, picture[None, :, :, None], step=iteration)

    def flush(self) -> None:
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()

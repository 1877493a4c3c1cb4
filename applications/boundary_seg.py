"""Segmentation with an extra output channel: the label boundary, and a loss term for it.

A worked example of subclassing :class:`~niftykit.application.segmentation.SegmentationApplication`
(``configs/example_boundary_seg.yaml``; ``docs/writing_an_application.md``). The
network gets one output channel more than there are classes. Channels ``0..K-1``
are the segmentation logits, as before; channel ``K`` is the logit of "this voxel
lies on a label boundary", a voxel whose 3×3×3 neighbourhood holds another label
(the morphological gradient of the label map), derived from each label window on
the fly, so no extra input files are needed. The loss is the configured
segmentation loss plus ``boundary_weight`` × the binary cross-entropy of the
boundary channel, an auxiliary contour task in the spirit of DCAN (Chen et al.,
"DCAN: deep contour-aware networks for accurate gland segmentation", CVPR 2016,
arXiv:1604.02677).

Three hooks change; everything else (data, preprocessing, sampling, evaluation)
is the parent's:

* :meth:`build_network` - ``network.name`` built with ``K + 1`` outputs;
* :meth:`loss` - the parent's loss on channels ``0..K-1`` plus the boundary term;
* :meth:`infer_subject` - the parent writes the label map from channels
  ``0..K-1``; the boundary probability is written beside it on the same grid,
  ``<save_seg_dir>/<id><output_postfix>_boundary.nii.gz`` (float32).

Setting: ``network.params.boundary_weight`` (default 1.0, at least 0). It is the
application's, not the network's: it is taken out of ``network.params`` before
the network is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np
from keras import ops

from niftykit.application.base import PredictFn
from niftykit.application.segmentation import SegmentationApplication
from niftykit.errors import ConfigError, ImageError
from niftykit.io import Subject, write_image
from niftykit.sampler import GridAggregator, GridSampler, flip_tta, resize_to

__all__ = ["BoundarySegmentationApplication", "boundary_map"]

#: ``network.params`` keys read by this application (and not passed to the network)
APP_PARAMS = ("boundary_weight",)


def boundary_map(labels: Any) -> Any:
    """Voxels whose 3×3×3 neighbourhood (inside the window) holds another label.

    Args:
        labels: class indices ``(batch, x, y, z, 1)``, any number type.

    Returns:
        ``(batch, x, y, z, 1)`` float32, 1 on a boundary and 0 elsewhere.
    """
    labels = ops.cast(labels, "float32")
    highest = ops.max_pool(labels, 3, strides=1, padding="same")
    lowest = -ops.max_pool(-labels, 3, strides=1, padding="same")
    return ops.cast(ops.not_equal(highest, lowest), "float32")


def _crop_to(values: Any, outputs: Any) -> Any:
    """``values`` ``(batch, x, y, z, c)`` centre-cropped to the spatial size of ``outputs``
    (smaller for a network with valid convolutions)."""
    have, want = values.shape[1:4], outputs.shape[1:4]
    starts = [(int(h) - int(w)) // 2 for h, w in zip(have, want)]
    return values[:, starts[0]:starts[0] + int(want[0]), starts[1]:starts[1] + int(want[1]),
                  starts[2]:starts[2] + int(want[2])]


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


class BoundarySegmentationApplication(SegmentationApplication):
    """Segmentation plus a boundary channel (config section ``segmentation``).

    Args:
        config: the loaded config; ``network.params.boundary_weight`` weighs the
            boundary term of the loss.

    Raises:
        ConfigError: ``boundary_weight`` is not a number of at least 0.
    """

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        params = dict(config.network.params or {})
        weight = params.pop("boundary_weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ConfigError(f"{config.source}: [network] params: boundary_weight: expected a "
                              f"number of at least 0, got {weight!r}")
        self.boundary_weight = float(weight)
        #: ``network.params`` without this application's own keys: the network's arguments
        self.network_params = params

    # -- model --------------------------------------------------------------------
    def build_network(self) -> Any:
        """``network.name`` with ``num_classes + 1`` output channels (the last: boundary)."""
        window = self.training_window()
        return self.instantiate_network(self.num_classes + 1, 2 if window[2] == 1 else 3,
                                        params=self.network_params)

    def loss(self, outputs: Any, batch: Mapping[str, Any]) -> Any:
        """``training.loss_type`` on the class channels + ``boundary_weight`` × the binary
        cross-entropy of the boundary channel against :func:`boundary_map` of the labels."""
        classes = self.num_classes
        segmentation = super().loss(outputs[..., :classes], batch)
        target = _crop_to(boundary_map(batch["label"]), outputs)
        logits = ops.cast(outputs[..., classes:], "float32")
        boundary = ops.mean(ops.binary_crossentropy(target, logits, from_logits=True))
        return segmentation + self.boundary_weight * boundary

    # -- inference ----------------------------------------------------------------
    def boundary_path(self, subject: Subject) -> Path:
        """``<save_seg_dir>/<id><output_postfix>_boundary.nii.gz``."""
        path = self.output_path(subject)
        return path.with_name(path.name[:-len(".nii.gz")] + "_boundary.nii.gz")

    def infer_subject(self, subject: Subject, predict: PredictFn, *, overwrite: bool,
                      progress: Optional[Callable[[int, int], None]] = None) -> Path:
        """The label map (the parent's inference on the class channels), then the boundary
        probability on the same grid; returns the label map, which evaluation scores."""
        classes, extra = self.num_classes, self.boundary_path(subject)
        if extra.exists() and not overwrite:
            raise ImageError(f"{extra} exists; pass --overwrite to replace it")
        labels = super().infer_subject(subject, lambda w: predict(w)[..., :classes],
                                       overwrite=overwrite, progress=progress)
        prepared = self.preprocess(subject, with_label=False)
        boundary = self._boundary(prepared.volumes["image"],
                                  lambda w: _sigmoid(predict(w)[..., classes:]))
        array = self.preprocessor.restore(boundary, prepared.geometry, labels=False)
        write_image(array.astype(np.float32, copy=False), prepared.source.affine, extra,
                    overwrite=overwrite, xform_codes=prepared.source.xform_codes)
        return labels

    def _boundary(self, volume: np.ndarray, predict: PredictFn) -> np.ndarray:
        """Boundary probabilities ``(x, y, z, 1)`` over a preprocessed volume: the same
        windows, blending and test-time flips as the label map (a second pass)."""
        inference = self.config.inference
        if inference.tta == "flip":
            predict = flip_tta(predict)
        if self.config.network.window_sampling == "resize":
            zoomed = resize_to(volume, self.training_window(), self.volume_orders()["image"])
            return resize_to(predict(zoomed[None])[0], volume.shape[:3], 1)
        window = self.inference_window(volume.shape[:3])
        sampler = GridSampler(volume, window, self.inference_border(window),
                              overlap=inference.overlap)
        aggregator = GridAggregator(sampler, 1, mode=inference.aggregation,
                                    output="probabilities", fill_constant=inference.fill_constant)
        for windows, locations in sampler.batches(self.config.network.batch_size):
            aggregator.add(predict(windows), locations)
        return aggregator.result()

"""A Keras application (ImageNet architecture) as the encoder of a 2-D classifier.

Transfer from natural images to medical images: Bar et al., "Chest pathology detection
using deep learning with non-medical training", ISBI 2015; Ciompi et al., "Automatic
classification of pulmonary peri-fissural nodules in computed tomography using an
ensemble of 2D views and a convolutional neural network out-of-the-box", MedIA 26(1),
2015; Shin et al., "Deep convolutional neural networks for computer-aided detection:
CNN architectures, dataset characteristics and transfer learning", IEEE TMI 35(5), 2016.

Any backbone of ``keras.applications`` (``ResNet50``, ``DenseNet121``, ``EfficientNetB0``,
``MobileNetV2``, ``VGG16``...) is built without its top and **without weights**
(``weights=None``: nothing is downloaded, ever); ``weights_file`` then loads a local
file into it: a ``.weights.h5`` written by ``backbone.save_weights`` or Keras' own
``*_notop.h5`` ImageNet file, fetched once by the user. Before the backbone:

* the window's grey levels are mapped from ``input_range`` to 0-255;
* a channel adapter makes 3 channels: ``repeat`` copies a single channel (3 channels pass
  as they are), ``conv`` is a learnable 1×1 convolution from any number of channels,
  initialised to their mean (so it starts as ``repeat``);
* the backbone's own ``preprocess_input`` scales them as in its ImageNet training
  (caffe, tf or torch modes; identity for the EfficientNets and ConvNeXts, which scale
  inside).

After it: global average pooling, optional dropout, ``Dense(num_classes)`` logits.
``freeze_backbone`` keeps the ImageNet weights fixed (and its batch norms in inference
mode); the adapter and the head still train. Variable paths are
``network/<backbone layer>/...``, ``network/channel_adapter/...``, ``network/head_*/...``,
so ``training.vars_to_freeze: '^network/(?!head_|channel_adapter)'`` freezes the same.

Shapes: input ``(batch, x, y, 1, channels)`` (niftykit's 2-D windows) or
``(batch, x, y, channels)``; output ``(batch, num_classes)`` float32 logits.
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import keras
from keras import ops

from niftykit.errors import ConfigError
from niftykit.network.base import BaseNet

__all__ = ["KerasBackbone", "backbone_names"]

ADAPTERS = ("repeat", "conv")
#: smallest input side the backbones accept, where it is not 32
MINIMUM_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}


def backbone_names() -> Sequence[str]:
    """The architectures of ``keras.applications`` (``ResNet50``, ``MobileNetV2``...)."""
    return sorted(n for n in dir(keras.applications)
                  if n[:1].isupper() and callable(getattr(keras.applications, n)))


def _backbone_factory(name: str) -> Callable[..., Any]:
    if name not in backbone_names():
        close = difflib.get_close_matches(name, backbone_names(), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else \
            f"available: {', '.join(backbone_names())}"
        raise ValueError(f"unknown backbone '{name}' (keras.applications); {hint}")
    return getattr(keras.applications, name)


@keras.saving.register_keras_serializable(package="niftykit")
class KerasBackbone(BaseNet):
    """A ``keras.applications`` backbone under a pooled linear head, for 2-D windows.

    Args:
        num_classes: logits out.
        backbone: a ``keras.applications`` name (``MobileNetV2``, ``ResNet50``...).
        backbone_args: more arguments of that constructor, e.g. ``{alpha: 0.35}``.
        weights_file: a local weights file of the backbone without its top (``.weights.h5``
            or Keras' ``*_notop.h5``), relative to the working directory; None: random
            initialisation.
        channel_adapter: ``repeat`` (1 or 3 channels) or ``conv`` (learnable 1×1, any).
        input_range: the window intensities ``(low, high)`` mapped to 0-255 for the
            backbone's ``preprocess_input`` ([0, 1] after ``ct_window``; about [-3, 3]
            after whitening).
        freeze_backbone: do not train the backbone (batch norms in inference mode).
        dropout: dropout rate before the logits (0: none).
        **kwargs: the common arguments of :class:`~niftykit.network.base.BaseNet`;
            ``spatial_rank`` must be 2.

    Raises:
        ValueError: an unknown backbone or adapter, or ``spatial_rank`` 3.
        ConfigError: ``weights_file`` does not exist (here) or does not fit (at build).
    """

    output_kind = "vector"

    def __init__(self, num_classes: int, backbone: str = "MobileNetV2",
                 backbone_args: Optional[Mapping[str, Any]] = None,
                 weights_file: Optional[str] = None, channel_adapter: str = "repeat",
                 input_range: Sequence[float] = (0.0, 1.0), freeze_backbone: bool = False,
                 dropout: float = 0.0, **kwargs: Any) -> None:
        kwargs.setdefault("spatial_rank", 2)
        super().__init__(num_classes, **kwargs)
        if self.spatial_rank != 2:
            raise ValueError(f"{backbone} is a 2-D backbone: give 2-D windows ([x, y] or "
                             "[x, y, 1]), or multiview / 2-D slices")
        _backbone_factory(backbone)
        if channel_adapter not in ADAPTERS:
            raise ValueError(f"channel_adapter '{channel_adapter}': use {' or '.join(ADAPTERS)}")
        self.backbone = backbone
        self.backbone_args = dict(backbone_args or {})
        self.weights_file = None if weights_file in (None, "") else str(weights_file)
        self.channel_adapter = channel_adapter
        self.input_range = [float(v) for v in input_range]
        self.freeze_backbone = bool(freeze_backbone)
        self.dropout = float(dropout)
        if len(self.input_range) != 2 or self.input_range[1] <= self.input_range[0]:
            raise ValueError(f"input_range must be [low, high] with low < high, got {input_range}")
        if self.weights_file is not None and not Path(self.weights_file).is_file():
            raise ConfigError(
                f"[network] params: weights_file {Path(self.weights_file).resolve()} does not "
                f"exist: give a local weights file of {backbone} without its top (niftykit "
                "never downloads weights), or leave weights_file out to start from random ones")
        module = importlib.import_module(_backbone_factory(backbone).__module__)
        self._preprocess = getattr(module, "preprocess_input", lambda x: x)

    # -- the window contract -----------------------------------------------------------
    @classmethod
    def window_minimum(cls, params: Mapping[str, Any]) -> int:
        """32 pixels (75 for the Inceptions, 71 for Xception): five halvings."""
        return MINIMUM_SIZE.get(params.get("backbone", "MobileNetV2"), 32)

    # -- layers --------------------------------------------------------------------------
    def build(self, input_shape: Any) -> None:
        """The adapter, the backbone (and its weights_file) and the head, in this
        model's name scope so that their paths start with ``network/``."""
        channels = int(input_shape[-1])
        if self.channel_adapter == "repeat" and channels not in (1, 3):
            raise ValueError(f"channel_adapter repeat takes 1 or 3 channels, got {channels}: "
                             "use channel_adapter: conv")
        self.adapter = None
        if self.channel_adapter == "conv":
            self.adapter = keras.layers.Conv2D(
                3, 1, name="channel_adapter",
                kernel_initializer=keras.initializers.Constant(1.0 / channels))
            self.adapter.build((None, None, None, channels))
        self.encoder = _backbone_factory(self.backbone)(
            include_top=False, weights=None, input_shape=(None, None, 3), **self.backbone_args)
        self._load_weights()
        self.encoder.trainable = not self.freeze_backbone
        self.pool = keras.layers.GlobalAveragePooling2D(name="head_pool")
        self.drop = keras.layers.Dropout(self.dropout, name="head_dropout") if self.dropout else None
        self.logits = keras.layers.Dense(self.num_classes, name="head_logits", dtype="float32",
                                         **self.conv_kwargs())
        self.logits.build((None, int(self.encoder.output.shape[-1])))
        self.built = True

    def _load_weights(self) -> None:
        if self.weights_file is None:
            return
        problem = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self.encoder.load_weights(self.weights_file)
            except Exception as exc:  # noqa: BLE001 - Keras raises many kinds; all mean "does not fit"
                problem = str(exc)
        # Keras only warns about layers it skipped: a partial load is a mismatch too
        skipped = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        if problem or skipped:
            raise ConfigError(
                f"[network] params: weights_file {Path(self.weights_file).resolve()} does not fit "
                f"{self.backbone}({self.backbone_args or ''}) without its top: "
                f"{problem or skipped[0]}")

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        if len(x.shape) == 5:
            x = x[:, :, :, 0, :]  # (x, y, 1) windows
        low, high = self.input_range
        x = (x - low) * (255.0 / (high - low))
        if self.adapter is not None:
            x = self.adapter(x)
        elif x.shape[-1] == 1:
            x = ops.repeat(x, 3, axis=-1)
        x = self.pool(self.encoder(self._preprocess(x), training=training))
        if self.drop is not None:
            x = self.drop(x, training=training)
        return self.logits(x)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(backbone=self.backbone, backbone_args=self.backbone_args,
                      weights_file=self.weights_file, channel_adapter=self.channel_adapter,
                      input_range=self.input_range, freeze_backbone=self.freeze_backbone,
                      dropout=self.dropout)
        return config

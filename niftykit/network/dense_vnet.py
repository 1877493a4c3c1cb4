"""Dense V-network for multi-organ segmentation (Gibson et al. 2018).

Gibson et al., "Automatic multi-organ segmentation on abdominal CT with dense
V-networks", IEEE TMI 37(8):1822-1834, 2018 (doi:10.1109/TMI.2018.2806309,
PMC6076994). Where the numbers come from: the paper's abstract was checked, but
its body (architecture figure, methods text) could not be read from the sources
available here. The hyper-parameters below were checked against the first
author's own implementation (E. Gibson's original ``niftynet/network/dense_vnet.py``
in NifTK/NiftyNet: ``prior_size 12, p_channels_selected .5, n_dense_channels
(4, 8, 16), n_seg_channels (12, 24, 24), n_input_channels (24, 24, 24),
dilation_rates ([1]*5, [1]*10, [1]*10)``) and the later NiftyNet defaults.
Where NiftyNet's later release differs, its value is noted. Network for a
``144³ × 1`` window (the model zoo's), ``k³`` kernels, ``→`` = conv, norm, ReLU:

====================================  ===========================================
stage                                 output
====================================  ===========================================
input avg-pool 3, stride 2 + norm      72³ × 1   (``use_pooled_input``)
initial conv 5³, stride 2              72³ × 24  (``n_initial_conv_channels``)
dense feature stack 1: 5 × (3³ → 4)    72³ × (25 + 5·4 = 45)
  skip conv 3³ → 12; down 3³/2 → 24    72³ × 12; 36³ × 24
dense feature stack 2: 10 × (3³ → 8)   36³ × (24 + 80 = 104); skip → 24; down → 24
dense feature stack 3: 10 × (3³ → 16)  18³ × (24 + 160 = 184); skip → 24
skips linearly up-sampled, concat      72³ × (1 + 12 + 24 + 24 = 61)
segmentation conv 3³ (bias, no norm)   72³ × 9 logits
+ log spatial prior (12³ × 9, linear)  72³ × 9
linear up-sampling                     144³ × 9 (float32)
====================================  ===========================================

* **Dense feature stacks**: each layer's 3³ convolution sees the concatenation of
  the stack's input and all earlier layer outputs (DenseNet), conv → norm → ReLU
  in that order, as in the author's code. ``n_dense_channels`` = growth rates,
  ``len(dilation_rates[i])`` = layers. The author's code fixes dilation to 1
  ("not yet supported"), so do the defaults here; the TMI text could not be
  checked for other values (its MICCAI 2017 predecessor was a "dense dilated"
  network). Any rate works here. ``use_dense_connections=False`` gives a plain
  chain: each layer sees only the previous one, and the stack passes on its last
  layer alone.
* **V-network**: strided convolutions (5³ at the input, 3³ between stacks); the
  skip convolution of every stack is linearly up-sampled to the first stack's
  resolution and concatenated. NiftyNet also average-pools the input and
  concatenates it both to the first stack's input and to the skips, and so
  does the author's code. That is on by default here; ``use_pooled_input`` turns it off.
* **Batch-wise spatial dropout** (``use_bdo``, ``bdo_keep_prob`` 0.5 =
  ``p_channels_selected``): in training, each dense layer except the last of its
  stack keeps a random ``round(keep · growth)`` of its output channels, the same
  channels for the whole batch, rescaled by ``growth / kept`` (inverted dropout, so
  inference is the identity). Only the kept channels are computed: the kernel is
  gathered on its output axis, and later layers gather their kernels' input axis
  on the channels actually present. Batch and instance norm update their statistics
  on the kept channels only. For group norm and PReLU, which mix or own per-channel
  state, the full layer is computed and masked instead. The keep fraction and
  the undropped last layer follow the author's code; the rescaling is niftykit's.
  Skip and down convolutions are never dropped (NiftyNet gave them the config's
  ``keep_prob``, 1 by default). NiftyNet default: off.
* **Spatial prior** (``use_prior``, ``prior_size`` 12 per the author's code,
  NiftyNet later 24): a learned non-negative ``prior_size³ × num_classes`` map,
  initialised to 1, linearly resized to the logits' grid; its log is added to the
  logits. NiftyNet's prior has a single channel, which shifts every class's
  logit equally and so does not change the softmax. Here each class has its own
  channel.
* **Memory-efficient dense connections** (``memory_efficient``, niftykit's, off by
  default): in training, each concatenation + convolution is wrapped in
  ``keras.remat`` (``tf.recompute_grad``). The concatenated stack is rebuilt in the
  backward pass rather than stored once per layer, so stored activations grow
  linearly with depth, not quadratically. Norm and activation stay outside, so BN
  statistics are updated once.
* ``use_coords`` (niftykit's; NiftyNet raised NotImplementedError) appends
  ``spatial_rank`` coordinate channels in [-1, 1] to the input.

Parameters for the paper configuration (1 input channel, 9 classes): the paper's
own count could not be checked, so it was derived by hand from the table
above. Convolutions: 3,000 (initial) + 17,820 + 129,600 + 414,720 (stacks) +
14,580 + 67,392 + 119,232 (skips) + 29,160 + 67,392 (downs) + 14,832 (segmentation,
with bias) = 877,728. Batch-norm scales and offsets: 786. Prior: 12³ · 9 = 15,552.
That gives **894,066 trainable** parameters plus 786 moving statistics (894,852 in
all). ``tests/network/test_dense_vnet.py`` checks this.

Mixed precision: the logits, the prior and the resizing are float32. A stack
convolution on a grid smaller than its kernel (tiny windows only) runs in float32:
TensorFlow's bfloat16 Conv3D filter gradient is wrong there (NaN or ~1e35 on CPU).

Shapes: input ``(batch, x, y, z, channels)`` with x, y, z divisible by
``2 ** len(n_dense_channels)``; output ``(batch, x, y, z, num_classes)`` float32
logits. With ``spatial_rank=2`` kernels, strides and the prior are flat along z,
for windows ``(x, y, 1)``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import keras
from keras import ops

from niftykit.network.base import BaseNet
from niftykit.network.dense_blocks import DenseFeatureStack, SpatialPrior, linear_resize
from niftykit.network.layers import activation_layer, norm_layer

__all__ = ["DenseVNet"]

_DEFAULT_DENSE = (4, 8, 16)


@keras.saving.register_keras_serializable(package="niftykit")
class DenseVNet(BaseNet):
    """Dense V-network (Gibson et al., IEEE TMI 2018); defaults = the paper's network.

    Args:
        num_classes: output channels (9 in the paper: 8 organs and background).
        n_initial_conv_channels: channels of the strided 5³ input convolution (24).
        initial_kernel_size: its kernel size (5).
        n_dense_channels: growth rate of each dense feature stack ((4, 8, 16)).
        n_seg_channels: channels of each stack's skip convolution ((12, 24, 24)).
        n_down_channels: channels of the strided convolution after each stack but the
            last ((24, 24, None); a trailing None is optional).
        dilation_rates: one list per stack, one rate per layer
            ([[1]*5, [1]*10, [1]*10]: 5, 10, 10 layers).
        kernel_size: kernel of the stack, skip and down convolutions (3).
        seg_kernel_size: kernel of the final segmentation convolution (3).
        prior_size: side of the learned spatial prior (12; NiftyNet 24).
        use_prior: add the log spatial prior to the logits (True; NiftyNet False).
        use_bdo: batch-wise spatial dropout in training (True; NiftyNet False).
        bdo_keep_prob: fraction of each dense layer's channels kept (0.5).
        use_coords: append coordinate channels to the input (False).
        use_dense_connections: DenseNet connections in the stacks (True).
        use_pooled_input: concatenate the average-pooled input (True, as NiftyNet).
        memory_efficient: recompute concatenations in the backward pass (False).
        norm: ``batch``, ``instance``, ``group`` or ``none`` ("batch").
        **kwargs: the common arguments of :class:`~niftykit.network.base.BaseNet`.

    Raises:
        ValueError: if the per-stack lists disagree in length or a value is out of range.
    """

    #: ``call`` resizes to the input's static grid (skip maps, prior, output) and builds
    #: coordinate channels from it: one spatial shape per traced function.
    fixed_window = True

    def __init__(self, num_classes: int, n_initial_conv_channels: int = 24,
                 initial_kernel_size: int = 5,
                 n_dense_channels: Sequence[int] = _DEFAULT_DENSE,
                 n_seg_channels: Sequence[int] = (12, 24, 24),
                 n_down_channels: Sequence[Optional[int]] = (24, 24, None),
                 dilation_rates: Sequence[Sequence[int]] = ((1,) * 5, (1,) * 10, (1,) * 10),
                 kernel_size: int = 3, seg_kernel_size: int = 3, prior_size: int = 12,
                 use_prior: bool = True, use_bdo: bool = True, bdo_keep_prob: float = 0.5,
                 use_coords: bool = False, use_dense_connections: bool = True,
                 use_pooled_input: bool = True, memory_efficient: bool = False,
                 norm: str = "batch", **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.n_initial_conv_channels = int(n_initial_conv_channels)
        self.initial_kernel_size = int(initial_kernel_size)
        self.n_dense_channels = [int(c) for c in n_dense_channels]
        self.n_seg_channels = [int(c) for c in n_seg_channels]
        self.dilation_rates = [[int(d) for d in rates] for rates in dilation_rates]
        self.n_down_channels = self._down_channels(n_down_channels)
        self.kernel_size, self.seg_kernel_size = int(kernel_size), int(seg_kernel_size)
        self.prior_size, self.use_prior = int(prior_size), bool(use_prior)
        self.use_bdo, self.bdo_keep_prob = bool(use_bdo), float(bdo_keep_prob)
        self.use_coords = bool(use_coords)
        self.use_dense_connections = bool(use_dense_connections)
        self.use_pooled_input = bool(use_pooled_input)
        self.memory_efficient = bool(memory_efficient)
        self.norm = norm
        self._check()
        self._build_layers()

    def _down_channels(self, channels: Sequence[Optional[int]]) -> List[Optional[int]]:
        channels = list(channels)
        n = len(self.n_dense_channels)
        if len(channels) == n and channels[-1] is None:
            channels = channels[:-1]
        if len(channels) != n - 1 or any(c is None for c in channels):
            raise ValueError(f"n_down_channels needs {n - 1} channel counts (one per stack but the "
                             f"last, optionally followed by None), got {channels}")
        return [int(c) for c in channels] + [None]

    def _check(self) -> None:
        n = len(self.n_dense_channels)
        if n < 1:
            raise ValueError("n_dense_channels needs at least one dense feature stack")
        for key in ("n_seg_channels", "dilation_rates"):
            if len(getattr(self, key)) != n:
                raise ValueError(f"{key} needs one entry per dense feature stack ({n}, the "
                                 f"length of n_dense_channels), got {getattr(self, key)}")
        rates = self.dilation_rates
        if any(len(r) < 1 for r in rates) or any(d < 1 for r in rates for d in r):
            raise ValueError(f"dilation_rates needs at least one rate >= 1 per stack, got {rates}")
        if not 0.0 < self.bdo_keep_prob <= 1.0:
            raise ValueError(f"bdo_keep_prob must be in (0, 1], got {self.bdo_keep_prob}")
        if self.memory_efficient and not hasattr(keras, "remat"):
            raise ValueError(f"memory_efficient needs keras.remat, which Keras {keras.__version__} "
                             "lacks: upgrade Keras or set memory_efficient: false")

    @classmethod
    def window_divisor(cls, params: Mapping[str, Any]) -> int:
        """One stride-2 convolution at the input and one between stacks: 8 for three stacks."""
        return 2 ** len(cls.setting(params, "n_dense_channels"))

    def _build_layers(self) -> None:
        conv_kwargs = self.conv_kwargs(bias=True)
        has_norm = self.norm not in (None, "none")
        self.initial_conv = keras.layers.Conv3D(
            self.n_initial_conv_channels, self.kernel(self.initial_kernel_size),
            strides=self.kernel(2), padding="same", use_bias=not has_norm, name="initial_conv",
            **self.conv_kwargs(bias=not has_norm))
        self.initial_norm = norm_layer(self.norm, self.n_initial_conv_channels, "initial_norm")
        self.initial_act = activation_layer(self.activation, "initial_act")
        if self.use_pooled_input:
            self.input_pool = keras.layers.AveragePooling3D(self.kernel(3), strides=self.kernel(2),
                                                            padding="same", name="input_pool")
            self.input_norm = norm_layer(self.norm, 1, "input_norm")
        per_stack = zip(self.n_dense_channels, self.dilation_rates, self.n_seg_channels,
                        self.n_down_channels)
        self.stacks = [
            DenseFeatureStack(g, rates, seg, down, self.kernel(self.kernel_size), self.norm,
                               self.activation, self.use_dense_connections, self.use_bdo,
                               self.bdo_keep_prob, self.memory_efficient, conv_kwargs,
                               name=f"stack{i}")
            for i, (g, rates, seg, down) in enumerate(per_stack)]
        self.concat = keras.layers.Concatenate(axis=-1, name="skip_concat")
        self.seg_conv = keras.layers.Conv3D(self.num_classes, self.kernel(self.seg_kernel_size),
                                            padding="same", name="seg_conv", dtype="float32",
                                            **conv_kwargs)
        if self.use_prior:
            depth = self.prior_size if self.spatial_rank == 3 else 1
            self.prior = SpatialPrior((self.prior_size, self.prior_size, depth, self.num_classes),
                                       name="spatial_prior", dtype="float32")

    def _coordinates(self, x: Any) -> Any:
        """``spatial_rank`` channels of voxel-centre coordinates in [-1, 1]."""
        size = x.shape[1:4]
        axes = [ops.linspace(-1.0, 1.0, n) if n > 1 else ops.zeros((1,)) for n in size]
        grids = ops.meshgrid(*axes, indexing="ij")[:self.spatial_rank]
        coords = ops.expand_dims(ops.stack(grids, axis=-1), 0)
        coords = ops.broadcast_to(coords, (ops.shape(x)[0], *size, self.spatial_rank))
        return ops.cast(coords, x.dtype)

    @staticmethod
    def _apply(norm: Any, x: Any, training: Optional[bool]) -> Any:
        return x if norm is None else norm(x, training=training)

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        x = inputs
        if self.use_coords:
            x = ops.concatenate([x, self._coordinates(x)], axis=-1)
        features = self.initial_act(self._apply(self.initial_norm, self.initial_conv(x), training))
        maps = []
        if self.use_pooled_input:
            pooled = self._apply(self.input_norm, self.input_pool(x), training)
            features = ops.concatenate([pooled, ops.cast(features, pooled.dtype)], axis=-1)
            maps.append(pooled)
        grid = features.shape[1:4]
        for stack in self.stacks:
            out = stack(features, training=training)
            maps.append(linear_resize(out[0], grid))
            features = out[-1]
        logits = self.seg_conv(self.concat(maps) if len(maps) > 1 else maps[0])
        if self.use_prior:
            logits = self.prior(logits)
        return linear_resize(ops.cast(logits, "float32"), inputs.shape[1:4])

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            n_initial_conv_channels=self.n_initial_conv_channels,
            initial_kernel_size=self.initial_kernel_size,
            n_dense_channels=list(self.n_dense_channels), n_seg_channels=list(self.n_seg_channels),
            n_down_channels=list(self.n_down_channels),
            dilation_rates=[list(r) for r in self.dilation_rates],
            kernel_size=self.kernel_size, seg_kernel_size=self.seg_kernel_size,
            prior_size=self.prior_size, use_prior=self.use_prior, use_bdo=self.use_bdo,
            bdo_keep_prob=self.bdo_keep_prob, use_coords=self.use_coords,
            use_dense_connections=self.use_dense_connections,
            use_pooled_input=self.use_pooled_input, memory_efficient=self.memory_efficient,
            norm=self.norm)
        return config

"""2-D U-Net of Ronneberger et al.

Ronneberger, Fischer and Brox, "U-Net: Convolutional Networks for Biomedical
Image Segmentation", MICCAI 2015 (arXiv:1505.04597): per level two unpadded
3×3 convolutions and ReLU, 2×2 max-pooling, 64 filters doubling to 1024; in
the expanding path 2×2 up-convolutions that halve the channels, concatenation
with the centre-cropped contracting features (crop-concat), two 3×3
convolutions, and a 1×1 classifier. A 572×572 tile gives a 388×388 output.

This is :class:`~niftykit.network.unet.UNet3D` with the paper's defaults and
the 2-D kernels ``(k, k, 1)``. NiftyNet's ``unet_2d`` had the same layout
with batch normalisation; the paper has none (``norm="none"`` here, set
``norm="batch"`` for NiftyNet's).

Shapes: input ``(batch, x, y, 1, channels)`` (2-D windows stored as
``(x, y, 1)``); output ``(batch, x', y', 1, num_classes)`` float32 logits with
``x' = output_size(x)`` (388 for 572).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import keras

from niftykit.network.unet import UNet3D

__all__ = ["UNet2D"]


@keras.saving.register_keras_serializable(package="niftykit")
class UNet2D(UNet3D):
    """2-D U-Net (Ronneberger 2015), valid convolutions by default.

    Args:
        num_classes: output channels.
        n_features: filters per level, shallowest first (paper: 64 ... 1024).
        n_convs: convolutions per level and per path (paper: 2).
        kernel_size: in-plane kernel size (paper: 3).
        norm: ``none`` (paper), ``batch`` (NiftyNet), ``instance`` or ``group``.
        padding: ``valid`` (paper) or ``same``.
        dropout: dropout rate at the end of the contracting path (the paper
            used dropout there without giving the rate; 0 leaves it out).
        spatial_rank: must be 2.
        **kwargs: the other common arguments of :class:`~niftykit.network.base.BaseNet`.

    Raises:
        ValueError: if ``spatial_rank`` is not 2, or (when called) if the
            window is not 2-D.
    """

    def __init__(self, num_classes: int,
                 n_features: Sequence[int] = (64, 128, 256, 512, 1024), n_convs: int = 2,
                 kernel_size: int = 3, norm: str = "none", padding: str = "valid",
                 dropout: float = 0.0, spatial_rank: int = 2, **kwargs: Any) -> None:
        if spatial_rank != 2:
            raise ValueError(f"unet_2d takes 2-D windows (x, y, 1) only: spatial_rank must be 2, "
                             f"got {spatial_rank}; use 'unet' for 3-D windows")
        super().__init__(num_classes, n_features=n_features, n_convs=n_convs,
                         kernel_size=kernel_size, norm=norm, padding=padding, dropout=dropout,
                         spatial_rank=2, **kwargs)

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        depth = inputs.shape[3]
        if depth is not None and depth != 1:
            raise ValueError(f"unet_2d takes 2-D windows (x, y, 1); got z={depth} "
                             f"(input shape {tuple(inputs.shape)})")
        return super().call(inputs, training=training)

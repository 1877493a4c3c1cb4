"""What every niftykit network takes from the config, in one place.

:class:`BaseNet` holds the arguments that NiftyNet passed to every network
(``num_classes``, activation, initialisers, regularisation) plus the window's
spatial rank, builds convolution keyword arguments from them and returns
them in ``get_config``. Subclasses add their own architecture parameters.
"""

from __future__ import annotations

import inspect

from typing import Any, Dict, Mapping, Optional

import keras

from niftykit.network.layers import initializer, regularizer

__all__ = ["BaseNet"]


class BaseNet(keras.Model):
    """Base of the niftykit networks (channels-last, logits out).

    Args:
        num_classes: output channels.
        activation: NiftyNet ``activation_function`` name.
        spatial_rank: 3, or 2 for windows of shape ``(x, y, 1)``.
        weight_initializer, weight_initializer_args: NiftyNet initialiser name and arguments.
        bias_initializer, bias_initializer_args: the same for biases.
        decay, reg_type: weight regularisation (``L1``/``L2`` × decay); 0 turns it off.
    """

    def __init__(self, num_classes: int, activation: str = "relu", spatial_rank: int = 3,
                 weight_initializer: str = "he_normal",
                 weight_initializer_args: Optional[Mapping[str, Any]] = None,
                 bias_initializer: str = "zeros",
                 bias_initializer_args: Optional[Mapping[str, Any]] = None,
                 decay: float = 0.0, reg_type: str = "L2", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if spatial_rank not in (2, 3):
            raise ValueError(f"spatial_rank must be 2 or 3, got {spatial_rank}")
        self.num_classes = int(num_classes)
        self.activation = activation
        self.spatial_rank = int(spatial_rank)
        self.weight_initializer = weight_initializer
        self.weight_initializer_args = dict(weight_initializer_args or {})
        self.bias_initializer = bias_initializer
        self.bias_initializer_args = dict(bias_initializer_args or {})
        self.decay = float(decay)
        self.reg_type = reg_type

    def kernel(self, size: int) -> tuple:
        """A cubic kernel (or stride), flat along z for 2-D windows."""
        return (size, size, size if self.spatial_rank == 3 else 1)

    def conv_kwargs(self, bias: bool = True) -> Dict[str, Any]:
        """Initialiser and regulariser keyword arguments for a Keras convolution."""
        kwargs: Dict[str, Any] = dict(
            kernel_initializer=initializer(self.weight_initializer, self.weight_initializer_args),
            kernel_regularizer=regularizer(self.reg_type, self.decay))
        if bias:
            kwargs["bias_initializer"] = initializer(self.bias_initializer, self.bias_initializer_args)
        return kwargs

    # -- the window contract ---------------------------------------------------------
    #: ``"voxels"``: one output per voxel (segmentation, voxel-wise regression);
    #: ``"vector"``: one output vector per window (classification, per-image regression).
    output_kind = "voxels"
    #: True when the network is built for one spatial window shape (static sizes inside
    #: ``call``: resizes to the input's grid, coordinate channels); its SavedModel then
    #: serves that window shape only, and inference traces it per window shape.
    fixed_window = False

    @classmethod
    def setting(cls, params: Mapping[str, Any], key: str) -> Any:
        """``params[key]``, or the constructor's default for it (the window rules read the
        network's settings without repeating its defaults)."""
        if key in params:
            return params[key]
        return inspect.signature(cls.__init__).parameters[key].default

    @classmethod
    def window_divisor(cls, params: Mapping[str, Any]) -> int:
        """Windows must be divisible by this along every axis longer than one voxel."""
        return 1

    @classmethod
    def window_minimum(cls, params: Mapping[str, Any]) -> int:
        """The smallest window size along an axis longer than one voxel."""
        return max(2, cls.window_divisor(params))

    @classmethod
    def output_size(cls, size: int, params: Mapping[str, Any]) -> Optional[int]:
        """Output size along one axis for an input window of ``size`` voxels, or None
        if the network cannot take that size.

        Same-padded networks return ``size``; valid-padded ones return less (the
        application then crops the labels to the output in training and sets the
        inference border so that the outputs tile the volume). Axes of one voxel
        (2-D windows) are never asked. Override this, or :meth:`window_divisor`
        and :meth:`window_minimum`, and :meth:`window_rule` to describe the rule.
        """
        if size < cls.window_minimum(params) or size % cls.window_divisor(params):
            return None
        return int(size)

    @classmethod
    def window_rule(cls, params: Mapping[str, Any]) -> str:
        """The accepted sizes in words, for error messages."""
        divisor, minimum = cls.window_divisor(params), cls.window_minimum(params)
        rule = f"divisible by {divisor}" if divisor > 1 else "any size"
        return f"{rule}, at least {minimum}" if minimum > max(divisor, 2) else rule

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            num_classes=self.num_classes, activation=self.activation,
            spatial_rank=self.spatial_rank, weight_initializer=self.weight_initializer,
            weight_initializer_args=self.weight_initializer_args,
            bias_initializer=self.bias_initializer, bias_initializer_args=self.bias_initializer_args,
            decay=self.decay, reg_type=self.reg_type)
        return config

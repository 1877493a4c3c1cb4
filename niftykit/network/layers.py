"""Small building blocks shared by the networks: activation, normalisation,
initialiser and regulariser lookup by NiftyNet's names."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import keras

__all__ = ["activation_layer", "norm_layer", "initializer", "regularizer", "ACTIVATIONS"]

ACTIVATIONS = ("relu", "relu6", "elu", "selu", "prelu", "leakyrelu", "softplus",
               "softsign", "sigmoid", "tanh")
_INITIALIZERS = {
    "constant": "Constant", "zeros": "Zeros", "ones": "Ones", "orthogonal": "Orthogonal",
    "variance_scaling": "VarianceScaling", "glorot_normal": "GlorotNormal",
    "glorot_uniform": "GlorotUniform", "he_normal": "HeNormal", "he_uniform": "HeUniform",
}


def activation_layer(name: str, layer_name: str) -> keras.layers.Layer:
    """A Keras layer for NiftyNet's ``activation_function`` names."""
    key = name.lower()
    if key == "prelu":
        return keras.layers.PReLU(shared_axes=[1, 2, 3], name=layer_name)
    if key == "leakyrelu":
        return keras.layers.LeakyReLU(negative_slope=0.01, name=layer_name)
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}' (available: {', '.join(ACTIVATIONS)})")
    return keras.layers.Activation(key, name=layer_name)


def norm_layer(kind: Optional[str], channels: int, layer_name: str) -> Optional[keras.layers.Layer]:
    """Batch, instance or group normalisation over channels-last features, or None."""
    if kind in (None, "none"):
        return None
    if kind == "batch":
        return keras.layers.BatchNormalization(name=layer_name)
    if kind == "instance":
        return keras.layers.GroupNormalization(groups=-1, name=layer_name)
    if kind == "group":
        return keras.layers.GroupNormalization(groups=min(8, channels), name=layer_name)
    raise ValueError(f"unknown normalisation '{kind}' (batch, instance, group, none)")


def initializer(spec: Union[str, Mapping[str, Any]], args: Optional[Mapping[str, Any]] = None):
    """Keras initialiser from a NiftyNet name (``he_normal``...) and its arguments."""
    if not isinstance(spec, str):
        return keras.initializers.get(dict(spec))
    key = spec.lower()
    if key == "uniform_scaling":
        return keras.initializers.VarianceScaling(distribution="uniform", **dict(args or {}))
    class_name = _INITIALIZERS.get(key, spec)
    return keras.initializers.get({"class_name": class_name, "config": dict(args or {})})


def regularizer(reg_type: str, decay: float):
    """L1 or L2 weight regulariser (NiftyNet ``reg_type`` and ``decay``), None if decay is 0."""
    if not decay:
        return None
    if reg_type.upper() == "L1":
        return keras.regularizers.L1(decay)
    return keras.regularizers.L2(decay)

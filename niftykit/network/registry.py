"""The network registry and the window contract every network declares.

A network class accepts windows whose spatial size is divisible by
``cls.window_divisor(params)`` along every axis longer than one voxel (a
U-Net with three poolings needs multiples of 8). The config validator asks
:func:`window_error` before anything is built, so a window the network cannot
take is a config error naming the nearest sizes that would work (NiftyNet
issues #93 and #358 were users lost on exactly this).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from niftykit.registry import Registry

__all__ = ["NETWORKS", "window_error", "window_output", "nearest_valid", "nearest_multiples"]

NETWORKS = Registry(
    "network",
    planned=["scalenet", "holisticnet", "vae", "simple_gan", "simulator_gan"],
)
for _name, _entry in (
        ("toynet", "niftykit.network.toynet:ToyNet"),
        ("unet", "niftykit.network.unet:UNet3D"),
        ("unet_2d", "niftykit.network.unet_2d:UNet2D"),
        ("nonewnet", "niftykit.network.nonewnet:NoNewNet"),
        ("vnet", "niftykit.network.vnet:VNet"),
        ("highres3dnet", "niftykit.network.highres3dnet:HighRes3DNet"),
        ("highres3dnet_small", "niftykit.network.highres3dnet:HighRes3DNetSmall"),
        ("highres3dnet_large", "niftykit.network.highres3dnet:HighRes3DNetLarge"),
        ("dense_vnet", "niftykit.network.dense_vnet:DenseVNet"),
        ("deepmedic", "niftykit.network.deepmedic:DeepMedic"),
        ("resnet", "niftykit.network.resnet:ResNet"),
        ("se_resnet", "niftykit.network.resnet:SEResNet"),
        ("regression_head", "niftykit.network.heads:RegressionHead"),
        ("resunet", "niftykit.network.resunet:ResUNet"),
        ("keras_backbone", "niftykit.network.backbone:KerasBackbone")):
    NETWORKS.register(_name, _entry)


def nearest_multiples(size: int, divisor: int) -> Sequence[int]:
    """The multiples of ``divisor`` just below and above ``size`` (positive only)."""
    low = (size // divisor) * divisor
    return [s for s in (low, low + divisor) if s > 0]


def _accepts(network_class: Any, size: int, params: Mapping[str, Any]) -> bool:
    output_of = getattr(network_class, "output_size", None)
    if output_of is not None:
        out = output_of(size, params)
        return out is not None and out >= 1
    divisor_of = getattr(network_class, "window_divisor", None)
    return divisor_of is None or size % int(divisor_of(params)) == 0


def nearest_valid(network_class: Any, size: int, params: Optional[Mapping[str, Any]] = None,
                  search: int = 1024) -> Sequence[int]:
    """The accepted window sizes nearest to ``size``: the largest below and the smallest above."""
    params = dict(params or {})
    below = next((s for s in range(size - 1, 1, -1) if _accepts(network_class, s, params)), None)
    above = next((s for s in range(size + 1, size + search) if _accepts(network_class, s, params)),
                 None)
    return [s for s in (below, above) if s is not None]


def window_error(network_class: Any, window: Sequence[int],
                 params: Optional[Mapping[str, Any]] = None) -> Optional[str]:
    """Why ``network_class`` cannot take ``window`` (x, y, z), or None if it can.

    Axes of one voxel (2-D windows) are not checked. The message gives the
    rule (:meth:`BaseNet.window_rule`) and, per bad axis, the nearest sizes
    that would work.
    """
    params = dict(params or {})
    bad = [(axis, size) for axis, size in zip("xyz", window)
           if size > 1 and not _accepts(network_class, size, params)]
    if not bad:
        return None
    rule_of = getattr(network_class, "window_rule", None)
    rule = rule_of(params) if rule_of is not None else "other sizes"
    nearest = {axis: nearest_valid(network_class, size, params) for axis, size in bad}
    fixed = [nearest[axis][-1] if (axis, size) in bad and nearest[axis] else size
             for axis, size in zip("xyz", window)]
    details = ", ".join(f"{axis}={size} (try {' or '.join(map(str, nearest[axis])) or 'none'})"
                        for axis, size in bad)
    return f"the network needs window sizes {rule}: {details}; e.g. {list(fixed)}"


def window_output(network_class: Any, window: Sequence[int],
                  params: Optional[Mapping[str, Any]] = None) -> tuple:
    """The network's spatial output shape for an accepted ``window`` (x, y, z)."""
    params = dict(params or {})
    output_of = getattr(network_class, "output_size", None)
    if output_of is None:
        return tuple(int(s) for s in window)
    return tuple(int(s) if s <= 1 else int(output_of(int(s), params)) for s in window)

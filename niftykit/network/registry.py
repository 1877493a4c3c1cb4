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

__all__ = ["NETWORKS", "window_error", "nearest_multiples"]

NETWORKS = Registry(
    "network",
    planned=["unet_2d", "nonewnet", "vnet", "highres3dnet", "highres3dnet_small",
             "highres3dnet_large", "dense_vnet", "deepmedic", "scalenet", "holisticnet",
             "resnet", "se_resnet", "vae", "simple_gan", "simulator_gan"],
)
NETWORKS.register("toynet", "niftykit.network.toynet:ToyNet")
NETWORKS.register("unet", "niftykit.network.unet:UNet3D")


def nearest_multiples(size: int, divisor: int) -> Sequence[int]:
    """The multiples of ``divisor`` just below and above ``size`` (positive only)."""
    low = (size // divisor) * divisor
    return [s for s in (low, low + divisor) if s > 0]


def window_error(network_class: Any, window: Sequence[int],
                 params: Optional[Mapping[str, Any]] = None) -> Optional[str]:
    """Why ``network_class`` cannot take ``window`` (x, y, z), or None if it can."""
    divisor_of = getattr(network_class, "window_divisor", None)
    if divisor_of is None:
        return None
    divisor = int(divisor_of(dict(params or {})))
    bad = [(axis, size) for axis, size in zip("xyz", window) if size > 1 and size % divisor]
    if not bad:
        return None
    fixed = [nearest_multiples(size, divisor)[-1] if size > 1 and size % divisor else size
             for size in window]
    details = ", ".join(f"{axis}={size} (try {' or '.join(map(str, nearest_multiples(size, divisor)))})"
                        for axis, size in bad)
    return (f"the network needs window sizes divisible by {divisor}: {details}; "
            f"e.g. {list(fixed)}")

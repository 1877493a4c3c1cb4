"""Keras 3 networks (channels-last), registered by name.

``NETWORKS.get("unet")`` returns the class; importing this package does not
import Keras, only looking a network up does.
"""

from niftykit.network.registry import NETWORKS, nearest_valid, window_error, window_output

__all__ = ["NETWORKS", "nearest_valid", "window_error", "window_output"]

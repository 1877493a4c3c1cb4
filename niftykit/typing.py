"""Type aliases shared across niftykit."""

from __future__ import annotations

import os
from typing import Tuple, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]
#: A spatial size or index along (x, y, z), in voxels.
Shape3 = Tuple[int, int, int]
#: An (x, y, z) spacing in mm.
Spacing3 = Tuple[float, float, float]
Array = np.ndarray

__all__ = ["PathLike", "Shape3", "Spacing3", "Array"]

"""Generated data sets for demos and tests (no downloads)."""

from niftykit.data.shapes import make_shapes

__all__ = ["make_shapes"]

"""Window samplers and output aggregators (numpy only).

``pipeline.py`` is the one bridge to ``tf.data``; everything else here is
numpy and imports no TensorFlow.
"""

from niftykit.sampler.aggregator import GridAggregator
from niftykit.sampler.grid import GridSampler
from niftykit.sampler.uniform import UniformSampler, resolve_window

__all__ = ["UniformSampler", "resolve_window", "GridSampler", "GridAggregator"]

"""Window samplers and output aggregators (numpy only).

``pipeline.py`` is the one bridge to ``tf.data``; everything else here is
numpy and imports no TensorFlow.
"""

from niftykit.sampler.aggregator import GridAggregator, gaussian_importance_map, label_dtype
from niftykit.sampler.balanced import BalancedSampler
from niftykit.sampler.grid import GridSampler
from niftykit.sampler.multiscale import MultiScaleGridSampler, MultiScaleSampler, area_resize
from niftykit.sampler.multiview import MultiViewSampler, cut_views
from niftykit.sampler.resize import ResizeAggregator, ResizeSampler, resize_to
from niftykit.sampler.tta import flip_tta
from niftykit.sampler.uniform import UniformSampler
from niftykit.sampler.vector import VectorAggregator
from niftykit.sampler.weighted import WeightedSampler
from niftykit.sampler.window import WindowSampler, cut_window, resolve_window

__all__ = [
    "WindowSampler", "cut_window", "resolve_window",
    "UniformSampler", "WeightedSampler", "BalancedSampler", "ResizeSampler",
    "GridSampler", "GridAggregator", "gaussian_importance_map", "label_dtype",
    "ResizeAggregator", "resize_to", "VectorAggregator", "flip_tta",
    "MultiViewSampler", "cut_views", "MultiScaleSampler", "MultiScaleGridSampler", "area_resize",
]

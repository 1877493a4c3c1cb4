"""Evaluation metrics on numpy arrays and the evaluator that writes CSV (no TensorFlow).

Overlap metrics (:mod:`~niftykit.evaluation.metrics`), surface distances in mm
(:mod:`~niftykit.evaluation.surface`), regression
(:mod:`~niftykit.evaluation.regression`) and classification
(:mod:`~niftykit.evaluation.classification`) metrics, and the segmentation
evaluator (:mod:`~niftykit.evaluation.evaluator`).
"""

from niftykit.evaluation.classification import classification_accuracy, confusion_matrix, roc_auc
from niftykit.evaluation.evaluator import (
    ALIASES,
    METRICS,
    UNITS,
    evaluate_segmentations,
    resolve_metrics,
    summarise,
    summarise_metrics,
)
from niftykit.evaluation.metrics import (
    Counts,
    accuracy,
    confusion_counts,
    dice,
    dice_per_label,
    jaccard,
    overlap_metrics,
    precision,
    sensitivity,
    specificity,
    vol_diff,
)
from niftykit.evaluation.regression import mae, mse, r2, rmse
from niftykit.evaluation.surface import (
    average_distance,
    hausdorff,
    hausdorff95,
    surface_dice,
    surface_distances,
    surface_mask,
    surface_metrics,
)

__all__ = [
    # overlap
    "Counts", "confusion_counts", "overlap_metrics", "dice", "jaccard", "sensitivity",
    "specificity", "precision", "accuracy", "vol_diff", "dice_per_label",
    # surface distances (mm)
    "surface_mask", "surface_distances", "surface_metrics", "hausdorff", "hausdorff95",
    "average_distance", "surface_dice",
    # regression and classification
    "mse", "rmse", "mae", "r2", "classification_accuracy", "confusion_matrix", "roc_auc",
    # evaluator
    "METRICS", "ALIASES", "UNITS", "resolve_metrics", "evaluate_segmentations",
    "summarise", "summarise_metrics",
]

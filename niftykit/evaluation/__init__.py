"""Evaluation metrics on numpy label volumes and the evaluator that writes CSV."""

from niftykit.evaluation.evaluator import evaluate_segmentations, summarise
from niftykit.evaluation.metrics import dice_per_label

__all__ = ["dice_per_label", "evaluate_segmentations", "summarise"]

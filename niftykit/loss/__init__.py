"""Losses by NiftyNet's ``loss_type`` names (or any ``package.module:function``).

Segmentation (:mod:`~niftykit.loss.segmentation`, :mod:`~niftykit.loss.generalised_dice`,
:mod:`~niftykit.loss.asymmetric`), regression (:mod:`~niftykit.loss.regression`) and
classification (:mod:`~niftykit.loss.classification`) losses; ``LOSSES.get(name)``.
"""

from niftykit.loss.registry import LOSSES

__all__ = ["LOSSES"]

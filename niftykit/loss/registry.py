"""The loss registry: NiftyNet's ``loss_type`` names → loss functions.

Every segmentation loss has the signature ``loss(logits, labels) -> scalar``
with ``logits`` of shape ``(batch, x, y, z, num_classes)`` and integer
``labels`` of shape ``(batch, x, y, z, 1)``.
"""

from niftykit.registry import Registry

__all__ = ["LOSSES"]

LOSSES = Registry(
    "loss",
    planned=["CrossEntropy_Dense", "Dice_Dense", "Dice_Dense_NS", "Tversky", "GDSC", "WGDL",
             "SensSpec", "VolEnforcement", "L1Loss", "L2Loss", "RMSE", "MAE", "Huber", "SmoothL1",
             "Cosine", "VariationalLowerBound"],
)
LOSSES.register("Dice", "niftykit.loss.segmentation:dice")
LOSSES.register("Dice_NS", "niftykit.loss.segmentation:dice_nosquare")
LOSSES.register("CrossEntropy", "niftykit.loss.segmentation:cross_entropy")
LOSSES.register("DicePlusXEnt", "niftykit.loss.segmentation:dice_plus_xent")

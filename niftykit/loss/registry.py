"""The loss registry: NiftyNet's ``loss_type`` names → loss functions.

One name space for every kind of loss:

* segmentation ``loss(logits, labels, weights=None) -> scalar`` with ``logits``
  ``(batch, x, y, z, num_classes)``, integer ``labels`` ``(batch, x, y, z, 1)``
  (one-hot ``(batch, x, y, z, num_classes)`` for the ``*_Dense`` names) and optional
  voxel ``weights`` ``(batch, x, y, z, 1)``;
* classification: ``CrossEntropy`` also takes ``(batch, num_classes)`` logits with
  ``(batch,)`` or ``(batch, 1)`` labels (NiftyNet used the same name for both);
* regression ``loss(prediction, target, weights=None) -> scalar`` with
  ``(batch, ..., channels)`` float arrays.

``GDSC`` is NiftyNet's default ``type_weight = Square``; ``GDSC_Simple`` and
``GDSC_Uniform`` select the other weightings. ``DiceHinge`` and ``Focal`` are not
NiftyNet ``loss_type`` names (NiftyNet reached the former through the model zoo path
``dense_vnet_abdominal_ct.dice_hinge.dice``).
"""

from niftykit.registry import Registry

__all__ = ["LOSSES"]

LOSSES = Registry("loss", planned=["VolEnforcement", "VariationalLowerBound"])

_ENTRIES = {
    "Dice": "segmentation:dice",
    "Dice_NS": "segmentation:dice_nosquare",
    "Dice_Dense": "segmentation:dice_dense",
    "Dice_Dense_NS": "segmentation:dice_dense_nosquare",
    "DiceHinge": "segmentation:dice_hinge",
    "CrossEntropy": "segmentation:cross_entropy",
    "CrossEntropy_Dense": "segmentation:cross_entropy_dense",
    "DicePlusXEnt": "segmentation:dice_plus_xent",
    "Focal": "segmentation:focal",
    "GDSC": "generalised_dice:generalised_dice",
    "GDSC_Simple": "generalised_dice:generalised_dice_simple",
    "GDSC_Uniform": "generalised_dice:generalised_dice_uniform",
    "WGDL": "generalised_dice:generalised_wasserstein_dice",
    "Tversky": "asymmetric:tversky",
    "SensSpec": "asymmetric:sensitivity_specificity",
    "L1Loss": "regression:l1_loss",
    "MAE": "regression:l1_loss",
    "L2Loss": "regression:l2_loss",
    "RMSE": "regression:rmse_loss",
    "Huber": "regression:huber_loss",
    "SmoothL1": "regression:smooth_l1_loss",
    "Cosine": "regression:cosine_loss",
}
for _name, _entry in _ENTRIES.items():
    LOSSES.register(_name, f"niftykit.loss.{_entry}")

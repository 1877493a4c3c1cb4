"""Losses by NiftyNet's ``loss_type`` names (or any ``package.module:function``)."""

from niftykit.loss.registry import LOSSES

__all__ = ["LOSSES"]

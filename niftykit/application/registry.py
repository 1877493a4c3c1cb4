"""The application registry (config key ``application``)."""

from niftykit.registry import Registry

__all__ = ["APPLICATIONS"]

APPLICATIONS = Registry(
    "application", planned=["classification", "regression", "autoencoder", "gan", "registration"])
APPLICATIONS.register("segmentation", "niftykit.application.segmentation:SegmentationApplication")

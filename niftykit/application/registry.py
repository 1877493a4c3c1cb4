"""The application registry (config key ``application``)."""

from niftykit.registry import Registry

__all__ = ["APPLICATIONS"]

APPLICATIONS = Registry("application", planned=["autoencoder", "gan", "registration"])
APPLICATIONS.register("segmentation", "niftykit.application.segmentation:SegmentationApplication")
APPLICATIONS.register("cascade", "niftykit.application.cascade:CascadeApplication")
APPLICATIONS.register("classification",
                      "niftykit.application.classification:ClassificationApplication")
APPLICATIONS.register("regression", "niftykit.application.regression:RegressionApplication")

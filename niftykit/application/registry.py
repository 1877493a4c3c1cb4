"""The application registry (config key ``application``)."""

from typing import Any

from niftykit.errors import ConfigError
from niftykit.registry import Registry

__all__ = ["APPLICATIONS", "make_application"]

APPLICATIONS = Registry("application", planned=["autoencoder", "gan", "registration"])
APPLICATIONS.register("segmentation", "niftykit.application.segmentation:SegmentationApplication")
APPLICATIONS.register("cascade", "niftykit.application.cascade:CascadeApplication")
APPLICATIONS.register("classification",
                      "niftykit.application.classification:ClassificationApplication")
APPLICATIONS.register("regression", "niftykit.application.regression:RegressionApplication")


def make_application(config: Any) -> Any:
    """The application ``config.application`` names, made for ``config``.

    Raises:
        ConfigError: the name is unknown, or not a ``BaseApplication`` subclass.
    """
    from niftykit.application.base import BaseApplication
    cls = APPLICATIONS.get(config.application)
    if not (isinstance(cls, type) and issubclass(cls, BaseApplication)):
        raise ConfigError(f"{config.source}: application '{config.application}' is not a "
                          "niftykit.application.BaseApplication subclass")
    return cls(config)

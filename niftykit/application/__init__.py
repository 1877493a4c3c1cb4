"""Applications decide what a task is: its inputs, sampler, network, loss and outputs.

``APPLICATIONS.get("segmentation")`` returns the class (also ``classification``
and ``regression``); a config's ``application: package.module:Class`` plugs in
a user's own subclass of :class:`~niftykit.application.base.BaseApplication`.
"""

from niftykit.application.base import BaseApplication
from niftykit.application.classification import ClassificationApplication
from niftykit.application.registry import APPLICATIONS, make_application
from niftykit.application.regression import RegressionApplication

__all__ = ["APPLICATIONS", "BaseApplication", "ClassificationApplication",
           "RegressionApplication", "make_application"]

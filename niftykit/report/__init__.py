"""Reports of training runs and cross-validations: an HTML page with PNG figures.

``niftykit report -c CONFIG [--crossval DIR]`` (:func:`write_report`). matplotlib is
imported only when a figure is drawn, so importing this package stays light.
"""

from niftykit.report.build import write_report
from niftykit.report.names import ABDOMINAL_ORGANS, GIBSON_2018_DICE, label_names

__all__ = ["write_report", "ABDOMINAL_ORGANS", "GIBSON_2018_DICE", "label_names"]

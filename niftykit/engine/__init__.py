"""The engine runs applications: training loop, checkpoints, inference, evaluation.

Importing this package does not import TensorFlow; the functions do, through
:func:`niftykit.engine.runtime.import_tensorflow`.
"""

from niftykit.engine.evaluation import evaluate
from niftykit.engine.export import export
from niftykit.engine.inference import infer
from niftykit.engine.trainer import train

__all__ = ["train", "infer", "evaluate", "export"]

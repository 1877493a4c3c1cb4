"""Typed configs from niftykit YAML or NiftyNet INI files.

``load_config("configs/abdominal_seg.yaml", ["training.lr=0.001"])`` returns a
:class:`Config` of section dataclasses carrying NiftyNet's parameter names and
defaults. Every error is one line naming the file, the section and the key.
"""

from niftykit.config.apps import (AutoencoderConfig, ClassificationConfig, GANConfig,
                                  RegistrationConfig, RegressionConfig, SegmentationConfig)
from niftykit.config.convert import convert_ini
from niftykit.config.dump import config_to_yaml
from niftykit.config.load import load_config
from niftykit.config.schema import Config
from niftykit.config.sections import (EvaluationConfig, InferenceConfig, InputConfig,
                                      NetworkConfig, SystemConfig, TrainingConfig)
from niftykit.config.support import check_supported

__all__ = [
    "Config", "load_config", "config_to_yaml", "convert_ini", "check_supported",
    "InputConfig", "SystemConfig", "NetworkConfig", "TrainingConfig", "InferenceConfig",
    "EvaluationConfig", "SegmentationConfig", "ClassificationConfig", "RegressionConfig",
    "AutoencoderConfig", "GANConfig", "RegistrationConfig",
]

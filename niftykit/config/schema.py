"""The whole config: :class:`Config` and the layout of its sections.

A config has an ``application``, named input sections (``inputs``), the five
NiftyNet system sections and exactly one application section (the others are
None). This module also answers "in which section does this key live?".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from niftykit.config.apps import (APP_SECTIONS, AutoencoderConfig, CascadeConfig,
                                  ClassificationConfig, GANConfig, RegistrationConfig,
                                  RegressionConfig, SegmentationConfig)
from niftykit.config.sections import (EvaluationConfig, InferenceConfig, InputConfig,
                                      NetworkConfig, SystemConfig, TrainingConfig)
from niftykit.config.spec import field_specs

__all__ = ["Config", "FIXED_SECTIONS", "APP_SECTIONS", "INPUTS", "sections_with_key"]

#: The system sections, in file order.
FIXED_SECTIONS: dict[str, type] = {
    "system": SystemConfig, "network": NetworkConfig, "training": TrainingConfig,
    "inference": InferenceConfig, "evaluation": EvaluationConfig,
}
#: The pseudo-section name of input sections.
INPUTS = "inputs"


@dataclass
class Config:
    """A fully typed niftykit config; every key holds a value (defaults filled in).

    Attributes:
        application: ``segmentation`` … ``registration``, or a dotted
            ``package.module:Class`` of a user application.
        inputs: Input sections by name (the user's case kept, e.g. ``T1``).
        system, network, training, inference, evaluation: System sections.
        segmentation, cascade, classification, regression, autoencoder, gan,
            registration: Application sections; only the active one is set.
        source: The config file it was loaded from (not part of equality).
    """

    application: str = "segmentation"
    inputs: dict[str, InputConfig] = field(default_factory=dict)
    system: SystemConfig = field(default_factory=SystemConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    segmentation: SegmentationConfig | None = None
    cascade: CascadeConfig | None = None
    classification: ClassificationConfig | None = None
    regression: RegressionConfig | None = None
    autoencoder: AutoencoderConfig | None = None
    gan: GANConfig | None = None
    registration: RegistrationConfig | None = None
    source: Path | None = field(default=None, compare=False)

    def to_yaml(self) -> str:
        """The resolved config as niftykit YAML (``niftykit config show``)."""
        from niftykit.config.dump import config_to_yaml
        return config_to_yaml(self)

    @property
    def task_section(self) -> str:
        """The name of the active application section, e.g. ``segmentation``.

        Raises:
            ValueError: If no application section is set.
        """
        for name in APP_SECTIONS:
            if getattr(self, name) is not None:
                return name
        raise ValueError("this Config has no application section set")

    @property
    def task(self) -> Any:
        """The active application section object, e.g. a :class:`SegmentationConfig`."""
        return getattr(self, self.task_section)


def sections_with_key(key: str) -> list[str]:
    """Return the sections that define ``key`` (``inputs`` for input sections).

    Args:
        key: A config key such as ``queue_length``.

    Returns:
        Section names in file order: system sections, application sections,
        then ``inputs``.
    """
    classes = {**FIXED_SECTIONS, **APP_SECTIONS, INPUTS: InputConfig}
    return [name for name, cls in classes.items() if key in field_specs(cls)]

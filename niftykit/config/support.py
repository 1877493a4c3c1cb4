"""What niftykit can run yet: :func:`check_supported`.

The table itself lives in the section dataclasses: each field's ``support``
marker (see :mod:`niftykit.config.spec`). Flip a marker there when a feature
lands.
"""

from __future__ import annotations

from typing import Any, Iterator

import niftykit
from niftykit.config.apps import is_dotted
from niftykit.config.dump import plain
from niftykit.config.location import display_path, message
from niftykit.config.schema import FIXED_SECTIONS, Config
from niftykit.config.spec import FieldSpec, field_specs
from niftykit.errors import NotSupportedError

__all__ = ["check_supported", "SUPPORTED_APPLICATIONS"]

SUPPORTED_APPLICATIONS = ("segmentation", "cascade", "classification", "regression")
VERSION = ".".join(niftykit.__version__.split(".")[:2])


def _sections(config: Config) -> Iterator[tuple[str, Any]]:
    for name in FIXED_SECTIONS:
        yield name, getattr(config, name)
    # the support markers of [autoencoder], [gan] and [registration] describe niftykit's own
    # (future) applications; under a user application only its class reads that section
    if config.task_section in SUPPORTED_APPLICATIONS or not is_dotted(config.application):
        yield config.task_section, config.task
    for name, section in config.inputs.items():
        yield f"inputs.{name}", section


def is_supported(spec: FieldSpec, value: Any) -> bool:
    """Return True if niftykit can run ``value`` for the key of ``spec``."""
    if spec.support is True:
        return True
    if spec.support is False:
        return value == spec.default
    if isinstance(value, tuple):
        return all(item in spec.support for item in value)
    return value in spec.support


def _describe(spec: FieldSpec) -> str:
    if isinstance(spec.support, tuple):
        return ", ".join(str(item) for item in spec.support)
    value = plain(spec.default)
    return "unset" if value is None else str(value)


def check_supported(config: Config) -> None:
    """Raise :class:`NotSupportedError` for the first setting niftykit cannot run yet.

    Every NiftyNet key loads and is validated; this check is what the engine
    runs before training or inference.

    Args:
        config: A loaded config.

    Raises:
        NotSupportedError: Naming file, section and key, and what is supported,
            e.g. ``cfg.yaml: [network] whitening: not supported yet in niftykit
            0.1 (supported: False)``.
    """
    origin = display_path(config.source) if config.source else "config"
    application = config.application
    if application not in SUPPORTED_APPLICATIONS and not is_dotted(application):
        raise NotSupportedError(message(
            origin, None, "application", f"'{application}' is not supported yet in niftykit "
            f"{VERSION} (supported: {', '.join(SUPPORTED_APPLICATIONS)}, or a user application "
            f"package.module:Class)"))
    for label, section in _sections(config):
        for key, spec in field_specs(type(section)).items():
            if not is_supported(spec, getattr(section, key)):
                raise NotSupportedError(message(
                    origin, label, key,
                    f"not supported yet in niftykit {VERSION} (supported: {_describe(spec)})"))

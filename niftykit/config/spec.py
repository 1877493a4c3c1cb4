"""Field specs: the kind, NiftyNet default and niftykit support of each config key.

A section is a dataclass whose fields are declared with :func:`option`; the
spec lives in the field's metadata, so the dataclass is the single table of
keys, defaults, types, ranges and support.

Support markers:
    True: niftykit runs every valid value.
    False: only the NiftyNet default is supported yet.
    tuple: only these values (for a list-valued key: only these items).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Union

from niftykit.config.values import Kind

__all__ = ["Support", "FieldSpec", "option", "field_specs"]

Support = Union[bool, tuple]


@dataclass(frozen=True)
class FieldSpec:
    """What one config key accepts.

    Attributes:
        name: The key, NiftyNet's parameter name.
        kind: Coerces and checks raw values.
        default: NiftyNet's default (niftykit's for niftykit keys).
        support: What niftykit can run yet (see module docstring).
        required: If set, the key must be given; the text explains what it is.
    """

    name: str
    kind: Kind
    default: Any
    support: Support = False
    required: str | None = None


def option(default: Any, kind: Kind, support: Support = False,
           required: str | None = None) -> Any:
    """Declare a dataclass field with its spec.

    Args:
        default: The default value (copied for each instance if mutable).
        kind: The value kind.
        support: The support marker.
        required: Why the key must be given, or None.

    Returns:
        A :func:`dataclasses.field`.
    """
    meta = {"kind": kind, "support": support, "required": required}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@lru_cache(maxsize=None)
def field_specs(cls: type) -> dict[str, FieldSpec]:
    """Return the specs of a section dataclass, in declaration order.

    Args:
        cls: A section dataclass declared with :func:`option`.
    """
    specs = {}
    for field in dataclasses.fields(cls):
        if "kind" not in field.metadata:
            continue
        if field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = field.default
        specs[field.name] = FieldSpec(field.name, field.metadata["kind"], default,
                                      field.metadata["support"], field.metadata["required"])
    return specs

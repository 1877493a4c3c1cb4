"""Read a NiftyNet INI config into a :class:`RawConfig`.

``[SYSTEM]``, ``[NETWORK]``, ``[TRAINING]``, ``[INFERENCE]`` and
``[EVALUATION]`` are system sections, exactly one of ``[SEGMENTATION]`` …
``[REGISTRATION]`` names the application, and every other section is an input
source. A key that belongs to another section was silently ignored by
NiftyNet; niftykit ignores it too, but logs one warning per key.
"""

from __future__ import annotations

import configparser
import logging
from pathlib import Path

from niftykit.config.build import misplaced_message
from niftykit.config.raw import INI, RawConfig, RawSection, RawValue
from niftykit.config.schema import APP_SECTIONS, FIXED_SECTIONS, INPUTS, InputConfig
from niftykit.config.sequences import InputRefs, split_items
from niftykit.config.spec import field_specs
from niftykit.config.suggest import closest

__all__ = ["read_ini", "clean_value"]

_LOG = logging.getLogger("niftykit")
_KNOWN = {name.upper(): name for name in (*FIXED_SECTIONS, *APP_SECTIONS)}


def clean_value(text: str) -> str:
    """Strip spaces and one pair of surrounding quotes (``cuda_devices=""`` → "")."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _parse(raw: RawConfig) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(raw.path, encoding="utf-8") as stream:
            parser.read_file(stream)
    except configparser.DuplicateOptionError as error:
        raise raw.error(error.section, error.option, f"given twice (line {error.lineno})",
                        is_input=True) from None
    except configparser.DuplicateSectionError as error:
        raise raw.file_error(f"[{error.section}]: section given twice (line {error.lineno})") \
            from None
    except configparser.MissingSectionHeaderError as error:
        raise raw.file_error(f"line {error.lineno}: expected a [SECTION] header before "
                             f"{error.line.strip()!r}") from None
    except configparser.ParsingError as error:
        lineno = error.errors[0][0]
        line = raw.path.read_text(encoding="utf-8").splitlines()[lineno - 1].strip()
        raise raw.file_error(f"line {lineno}: cannot read {line!r}; expected key = value") \
            from None
    if parser.defaults():
        raise raw.file_error("[DEFAULT]: not supported; put each key in its own section")
    return parser


def _application_section(raw: RawConfig, found: list[str]) -> str:
    if len(found) > 1:
        listed = ", ".join(f"[{name}]" for name in found)
        raise raw.file_error(f"{listed}: more than one application section; keep only the one "
                             f"for your application")
    if not found:
        expected = ", ".join(f"[{name.upper()}]" for name in APP_SECTIONS)
        raise raw.file_error(f"no application section; add one of {expected} naming the input "
                             f"sections, e.g. [SEGMENTATION] image = T1")
    return found[0]


def _referenced(parser: configparser.ConfigParser, app_label: str) -> set[str]:
    specs = field_specs(APP_SECTIONS[app_label.strip().lower()])
    names: set[str] = set()
    for key, text in parser.items(app_label):
        if key in specs and isinstance(specs[key].kind, InputRefs):
            names.update(str(item) for item in split_items(clean_value(text)))
    return names


def _check_typo(raw: RawConfig, label: str, referenced: set[str]) -> None:
    if label in referenced:
        return
    match = closest(label.strip().upper(), _KNOWN, max_distance=2)
    if match is not None:
        raise raw.file_error(f"[{label}]: unknown section; did you mean [{match}]?")


def _values(raw: RawConfig, parser: configparser.ConfigParser, label: str, current: str,
            task: str, ignored: list[str]) -> RawSection:
    cls = InputConfig if current == INPUTS else {**FIXED_SECTIONS, **APP_SECTIONS}[current]
    section = RawSection(label)
    for key, text in parser.items(label):
        misplaced = None if key in field_specs(cls) else misplaced_message(raw, key, current, task)
        if misplaced:
            ignored.append(f"[{label}] {key}: {misplaced}")
            _LOG.warning("%s: [%s] %s: %s; ignored, as NiftyNet did", raw.origin, label, key,
                         misplaced)
            continue
        section.values[key] = RawValue(clean_value(text), raw.origin)
    return section


def read_ini(path: Path, origin: str) -> tuple[RawConfig, list[str]]:
    """Read a NiftyNet INI file.

    Args:
        path: The absolute path of an existing file.
        origin: The file as shown in messages.

    Returns:
        The raw config (values as cleaned strings), and one line per key that
        was ignored because it sat in the wrong section.

    Raises:
        ConfigError: For unreadable INI syntax, zero or several application
            sections, or a section name that looks like a misspelt system
            section (``[TRAINIG]``).
    """
    raw = RawConfig(path=path, origin=origin, style=INI)
    parser = _parse(raw)
    found = [label for label in parser.sections() if _KNOWN.get(label.strip().upper(), "")
             in APP_SECTIONS]
    referenced = _referenced(parser, found[0]) if len(found) == 1 else set()
    for label in parser.sections():
        if label.strip().upper() not in _KNOWN:
            _check_typo(raw, label, referenced)
    task = _application_section(raw, found).strip().lower()
    ignored: list[str] = []
    for label in parser.sections():
        known = _KNOWN.get(label.strip().upper())
        if known is None:
            raw.inputs[label] = _values(raw, parser, label, INPUTS, task, ignored)
        elif known in raw.sections:
            raise raw.file_error(f"[{label}]: section given twice (also as "
                                 f"[{raw.sections[known].label}])")
        else:
            raw.sections[known] = _values(raw, parser, label, known, task, ignored)
    return raw, ignored

"""Where a config value came from, for error messages.

Every message has the shape ``<file>: [<section>] <key>: <what>``; for a
command-line override the file part is ``command line (<override>)``.
"""

from __future__ import annotations

import os
from pathlib import Path

from niftykit.errors import ConfigError

__all__ = ["display_path", "override_origin", "message", "config_error"]


def display_path(path: str | os.PathLike[str]) -> str:
    """Return ``path`` relative to the working directory if it lies inside it.

    Args:
        path: A file path.

    Returns:
        A short path for messages; absolute when outside the working directory.
    """
    absolute = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def override_origin(override: str) -> str:
    """Return the origin label of a command-line override such as ``lr=0.1``."""
    return f"command line ({override})"


def message(origin: str, section: str | None, key: str | None, what: str) -> str:
    """Format one error line.

    Args:
        origin: The file label or command-line label.
        section: The section as shown to the user (``training``, ``TRAINING``,
            ``inputs.T1``), or None.
        key: The key, or None.
        what: What is wrong and what would be right.

    Returns:
        ``"<origin>: [<section>] <key>: <what>"`` with absent parts left out.
    """
    where = origin
    if section is not None:
        where += f": [{section}]"
        if key is not None:
            where += f" {key}"
    elif key is not None:
        where += f": {key}"
    return f"{where}: {what}"


def config_error(origin: str, section: str | None, key: str | None, what: str) -> ConfigError:
    """Return a :class:`ConfigError` carrying :func:`message`'s line."""
    return ConfigError(message(origin, section, key, what))

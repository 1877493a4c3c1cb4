"""Errors a user can act on.

Every error that is the user's to fix (a bad config, a bad file, a bad value)
is a :class:`NiftykitError`. The command line prints its message as one line
on standard error and exits with status 2; ``--debug`` adds the traceback.
Anything else is a bug in niftykit and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["NiftykitError", "ConfigError", "ImageError", "DataError", "NotSupportedError"]


class NiftykitError(Exception):
    """A user error: the message names the file or key and what would be right."""


class ConfigError(NiftykitError):
    """A config file or override is wrong (unknown key, wrong type, out of range...)."""


class NotSupportedError(ConfigError):
    """A NiftyNet setting that niftykit does not implement yet."""


class ImageError(NiftykitError):
    """An image file is missing, unreadable, corrupt or inconsistent."""


class DataError(NiftykitError):
    """A data set is inconsistent (no subjects, missing sources, bad labels...)."""

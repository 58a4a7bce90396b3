"""The one base class of the mistakes a user can fix: every entry point shows them as one line."""

from __future__ import annotations


class UserError(Exception):
    """A setting, path or file the user gave cannot be used; the message says which and what to do.

    The CLI prints it as one line and exits with status 1; the Python API raises it; nothing catches it
    to fall back silently. Each module that can refuse input subclasses it (ConfigError, DataError, ...).
    """


class CheckpointError(UserError):
    """A checkpoint cannot be read or does not fit; the message says why."""

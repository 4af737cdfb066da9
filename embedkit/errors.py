"""Errors a user can fix. The CLI prints them as one line and exits with status 2.

Every such error derives from :class:`EmbedkitError` (audio, backbone, config, store, data, model and usage
errors), so the CLI catches one class and no low layer needs to know the others.
"""

from __future__ import annotations


class EmbedkitError(Exception):
    """Base of every error whose message tells the user what to do (printed as one line, exit 2)."""


class UsageError(EmbedkitError, ValueError):
    """Bad arguments or inputs (a missing folder, an unknown name); the message says what to do."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Every exception type that the CLI reports as a one-line error (exit 2) instead of a traceback."""
    return (EmbedkitError,)

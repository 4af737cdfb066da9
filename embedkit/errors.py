"""Errors a user can fix. The CLI prints them as one line and exits with status 2."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad arguments or inputs (a missing folder, an unknown name); the message says what to do."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Every exception type that the CLI reports as a one-line error (exit 2) instead of a traceback."""
    from embedkit.audio import AudioError
    from embedkit.backbones.base import BackboneError
    from embedkit.config import ConfigError
    from embedkit.store import StoreError

    extra: tuple[type[BaseException], ...] = ()
    try:
        from embedkit.birdclef import DataError

        extra = (DataError,)
    except ImportError:
        pass
    return (UsageError, ConfigError, BackboneError, StoreError, AudioError, *extra)

"""Names read from files stay inside their folder: relative, no ``..``, no link, no absolute path."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any


def check_relative(name: Any, field: str) -> str:
    """``name`` if it is a safe relative POSIX path (no ``..``, not absolute, no NUL); else ValueError."""
    if not isinstance(name, str) or not name or "\x00" in name or "\\" in name:
        raise ValueError(f"{field}: {name!r} is not a relative file name")
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or name.startswith("~"):
        raise ValueError(f"{field}: {name!r} leaves its folder (allowed: a relative path without '..')")
    return name


def inside(root: str | os.PathLike, name: str, what: str) -> Path:
    """``root / name`` when it stays inside ``root`` and is not a symlink; SchemaError naming ``what`` if not.

    Args:
        root: the folder the name is relative to.
        name: a name read from a manifest, an index or a table.
        what: the file and field it came from (for the message).
    """
    from embedkit.schemas.base import SchemaError

    try:
        check_relative(name, what)
    except ValueError as e:
        raise SchemaError(str(e)) from None
    base = Path(root).resolve()
    p = Path(root) / name
    if p.is_symlink():
        raise SchemaError(f"{what}: {name!r} is a symbolic link (allowed: a regular file inside {root})")
    real = p.resolve()
    if real != base and base not in real.parents:
        raise SchemaError(f"{what}: {name!r} resolves outside {root} (allowed: a path inside it)")
    return p

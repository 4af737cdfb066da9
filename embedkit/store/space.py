"""A full disk is one line naming the path and the bytes needed, wherever a write fails for lack of space.

Writers keep their temp-then-rename discipline (a failed write leaves the earlier version in place); this
module only recognises the failure (``OSError`` ENOSPC / EDQUOT, and safetensors' ``SafetensorError`` that
wraps the same OS error) and words it.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


def is_disk_full(e: BaseException) -> bool:
    """Whether ``e`` is a write that failed for lack of space (or quota)."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(e)
    return type(e).__name__ == "SafetensorError" and any(
        s in text for s in ("No space left", "StorageFull", "os error 28", "Disk quota")
    )


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes on the device holding ``path`` (its nearest existing parent), or None."""
    p = Path(path)
    for cand in (p, *p.parents):
        if cand.exists():
            try:
                return shutil.disk_usage(cand).free
            except OSError:
                return None
    return None


def folder_bytes(folder: str | os.PathLike) -> int:
    """Bytes of the regular files below ``folder`` (0 when it is gone)."""
    total = 0
    for root, _, names in os.walk(folder):
        for n in names:
            try:
                total += (Path(root) / n).stat().st_size
            except OSError:
                pass
    return total


def full_disk_message(path: str | os.PathLike, need: int | None, kept: str = "earlier files are kept") -> str:
    """One line: where the write failed, about how many bytes it needs, how many are free, what is kept."""
    free = free_bytes(path)
    needs = f"it needs about {need:,} bytes" if need else "it needs more space"
    has = f", {free:,} are free" if free is not None else ""
    return f"no space left to write {path}: {needs}{has}; free some space or write elsewhere ({kept})"


__all__ = ["folder_bytes", "free_bytes", "full_disk_message", "is_disk_full"]

"""Reading one version of a published folder while saves swap it, and the kept versions of a name.

A reader opens ``NAME`` once and reads every file through that open folder (:func:`read_pinned`, via
``/proc/self/fd``), so a save that swaps ``NAME`` meanwhile cannot mix two versions or remove files under it.
Where ``/proc`` is missing the folder's path is read, and a load that fails while ``NAME`` changed is tried
again (twice at most); a load is also retried when its pinned version was removed (a pruned kept version).
A reader that finds ``NAME`` missing while a save is between the two renames of the no-``renameat2`` fallback
waits for the save's lock and lets :func:`embedkit.store.atomic.recover` close the gap.

:func:`retry_on_change` is the same retry for readers of a folder whose writer replaces one index file and
then removes what the old one named (``embedkit.search.index.load_index``).

Kept versions (``.NAME.prev-*``, see :mod:`embedkit.store.atomic`) are listed by :func:`kept_versions` and
restored by :func:`rollback`, which publishes a copy of the kept version like any save (so the current one
becomes a kept version, atomically) and then removes the copied one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from embedkit.store.atomic import (
    entries,
    prune_versions,
    publish_dir,
    publish_lock,
    recover,
    staging_dir,
)

T = TypeVar("T")
_ATTEMPTS = 3


def _identity(final: Path) -> tuple[int, int, int, int] | None:
    """``(device, inode, mtime, size)`` of what ``final`` names now (follows a symlink); None when missing.

    A swap or an atomic replace (temp file renamed over it) changes the inode.
    """
    try:
        st = os.stat(final)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


def retry_on_change(watch: str | os.PathLike, load: Callable[[], T], errors: tuple[type, ...]) -> T:
    """``load()``, tried again (3 attempts in all) when it raises one of ``errors`` while ``watch`` changed.

    For readers of a folder whose writer replaces an index file (``watch``) and then removes what the old
    one named (the search index): a failure because of such a save is retried on the new version.
    """
    for attempt in range(_ATTEMPTS):
        before = _identity(Path(watch))
        try:
            return load()
        except errors:
            if attempt + 1 < _ATTEMPTS and _identity(Path(watch)) != before:
                continue
            raise
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def _pin(final: Path):
    """A path that reads the version ``final`` names now, whatever later swaps do (``/proc/self/fd``)."""
    try:
        fd = os.open(final, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        yield final
        return
    try:
        proc = Path(f"/proc/self/fd/{fd}")
        yield proc if proc.is_dir() else Path(os.path.realpath(final))
    finally:
        os.close(fd)


def _close_gap(final: Path) -> None:
    """``final`` is missing: wait for a running save's lock, then recover what a killed one left."""
    if os.path.lexists(final) or not (entries(final, "swap") or entries(final, "aside")):
        return
    with contextlib.suppress(OSError), publish_lock(final):  # a read-only folder: nothing to repair
        recover(final)


def read_pinned(final: str | os.PathLike, load: Callable[[Path], T], errors: tuple[type, ...]) -> T:
    """``load(folder)`` on one whole version of ``final``, retried when a concurrent save swapped it.

    Args:
        final: the published name (a folder, or a symlink of the earlier layout).
        load: reads the version at the path it is given (a pinned path, not ``final``).
        errors: exception types that mean "this version could not be read"; when one is raised and
            ``final`` names another version than at the start, the load is tried again.

    Returns:
        What ``load`` returned. The message of a final error names ``final``, not the pinned path.
    """
    final = Path(final)
    _close_gap(final)
    for attempt in range(_ATTEMPTS):
        before = _identity(final)
        with _pin(final) as real:
            try:
                return load(real)
            except errors as e:
                if attempt + 1 < _ATTEMPTS and _identity(final) != before:
                    continue
                if str(real) != str(final) and str(real) in str(e):
                    raise type(e)(str(e).replace(str(real), str(final))) from None
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def kept_versions(final: str | os.PathLike) -> list[Path]:
    """Kept earlier versions of ``final``, newest first (``.NAME.prev-*``; the earlier layout's ``.v-*``)."""
    final = Path(final)
    current = os.readlink(final) if final.is_symlink() else ""
    legacy = [p for p in entries(final, "v") if p.name != current and (p / "model.json").is_file()]
    legacy.sort(key=lambda p: p.lstat().st_mtime, reverse=True)  # converted to .prev- by the next save
    return [*entries(final, "prev")[::-1], *legacy]


def rollback(final: str | os.PathLike, to: str | None = None) -> tuple[Path, Path | None]:
    """Make the newest kept version (or the one named ``to``) current again; the current one is kept.

    Returns:
        ``(restored kept version, where the replaced current version is kept now)``.

    Raises:
        FileNotFoundError: ``final`` has no kept version (or none named ``to``).
    """
    final = Path(final)
    with publish_lock(final):
        recover(final)  # kept versions of the symlinked layout get their .prev- names first
    kept = entries(final, "prev")[::-1]
    if to is not None:
        kept = [p for p in kept if p.name == to or p.name == Path(to).name]
    if not kept:
        none = not os.path.lexists(final) and not entries(final, "prev")
        raise FileNotFoundError(f"{final}: {'no such model' if none else 'no kept version'}"
                                f"{' named ' + to if to else ''}")  # fmt: skip
    src = kept[0]
    staged = staging_dir(final)
    try:
        shutil.copytree(src, staged, dirs_exist_ok=True, copy_function=shutil.copy2)
        replaced = publish_dir(staged, final)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    shutil.rmtree(src, ignore_errors=True)  # now current; killed before this, it is kept twice
    prune_versions(final, keep=replaced)
    return src, replaced


__all__ = ["kept_versions", "read_pinned", "retry_on_change", "rollback"]

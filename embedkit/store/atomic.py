"""Atomic publishing of files and folders, and clean-up of what dead writers left.

A folder that readers open by name (a model) is published as a versioned hidden sibling plus a symlink:
``models/NAME -> .NAME.v-<stamp>-<pid>@<host>``. A new version is written and fsynced under its own hidden
name, then the symlink is replaced in one ``rename`` (:func:`publish_dir`), so at every instant ``NAME``
holds a complete old or a complete new version. The previous version is kept (one step of rollback); older
ones and the leftovers of writers that died go at the next publish (:func:`prune_versions`).

Temp names carry ``<pid>@<host>``: a leftover of this host is stale as soon as its pid is gone, one of
another host (a shared file system) only after :data:`STALE_VERSION_S`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

from embedkit.files import fsync_dir

#: age after which leftovers of other machines' saves (shared file systems) are removed
STALE_VERSION_S = 24 * 3600.0
_RENAME_EXCHANGE = 2


def host() -> str:
    """This machine's name, safe inside ``<pid>@<host>`` temp names."""
    return socket.gethostname().replace("-", "_").replace("@", "_") or "local"


def writer_tag() -> str:
    """``<pid>@<host>`` of this process."""
    return f"{os.getpid()}@{host()}"


def writer_gone(tag: str, mtime: float, min_age_s: float = STALE_VERSION_S) -> bool:
    """Whether the writer ``<pid>@<host>`` of a leftover with modification time ``mtime`` is gone."""
    pid_s, _, where = tag.partition("@")
    if where and where != host():
        return time.time() - mtime >= min_age_s
    try:
        os.kill(int(pid_s), 0)
    except (ValueError, ProcessLookupError):
        return True
    except PermissionError:
        return False
    return False


def fsync_tree(folder: Path) -> None:
    """Flush every file below ``folder`` to disk, then every directory, deepest first."""
    dirs = [folder]
    for root, dnames, fnames in os.walk(folder):
        for n in fnames:
            with open(os.path.join(root, n), "rb") as f:
                os.fsync(f.fileno())
        dirs += [Path(root) / d for d in dnames]
    for d in sorted(dirs, key=lambda p: -len(p.parts)):
        fsync_dir(d)


def staging_dir(final: Path) -> Path:
    """A new, empty hidden sibling of ``final`` to write its next version into."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    d = final.with_name(f".{final.name}.v-{stamp}-{uuid.uuid4().hex[:6]}-{writer_tag()}")
    d.mkdir(parents=True)
    return d


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def publish_dir(staged: Path, final: Path) -> Path | None:
    """Make ``final`` name the complete folder ``staged`` in one atomic step; returns the previous version.

    ``final`` becomes (or stays) a relative symlink to ``staged``. A ``final`` that is a real folder (written
    by embedkit 0.1) is swapped out with ``renameat2(RENAME_EXCHANGE)`` and kept as the previous version.
    """
    fsync_tree(staged)
    prev: Path | None = None
    if final.is_symlink() and os.sep not in os.readlink(final):
        prev = final.with_name(os.readlink(final))
    link = final.with_name(f".{final.name}.link-{uuid.uuid4().hex[:6]}-{writer_tag()}")
    os.symlink(staged.name, link)
    try:
        if final.is_dir() and not final.is_symlink():  # 0.1 layout: a real folder under the name
            prev = final.with_name(f".{final.name}.v-legacy-{uuid.uuid4().hex[:6]}-{writer_tag()}")
            if _exchange(link, final):
                os.replace(link, prev)
            else:  # no renameat2: a short gap, which prune_versions repairs
                os.replace(final, prev)
                os.replace(link, final)
        else:
            os.replace(link, final)
    finally:
        if link.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
    fsync_dir(final.parent)
    return prev


def prune_versions(final: Path, keep: Path | None = None) -> int:
    """Remove versions of ``final`` other than the current one and ``keep``, and dead writers' leftovers.

    Also repairs a missing name (a writer killed in a gap of embedkit 0.1's swap, or of the no-renameat2
    fallback): ``final`` is pointed at the newest complete version (one with ``model.json``). Returns the
    number of entries removed.
    """
    parent, name = final.parent, final.name
    if not final.exists() and not final.is_symlink():
        _repair(final)
    target = os.readlink(final) if final.is_symlink() else ""
    current = final.with_name(target) if target and os.sep not in target else None
    n = 0
    # exact prefixes: the versions of a model named "NAME.v2" (".NAME.v2.v-...") are not NAME's
    mine = [*parent.glob(f".{name}.v-*"), *parent.glob(f".{name}.link-*")]
    for p in mine:
        if p in (current, keep):
            continue
        tag = p.name.rsplit("-", 1)[-1]
        if tag == writer_tag() or writer_gone(tag, p.lstat().st_mtime):  # ours are published by now
            _remove(p)
            n += 1
    for p in list(parent.glob(f".tmp-{name}-*")) + list(parent.glob(f".old-{name}-*")):  # embedkit 0.1
        if writer_gone(p.name.rsplit("-", 1)[-1], p.lstat().st_mtime) and (final.exists() or _repair(final)):
            _remove(p)
            n += 1
    return n


def _repair(final: Path) -> bool:
    """Point a missing ``final`` at the newest complete version or 0.1 ``.old-`` copy; True when done."""
    parent, name = final.parent, final.name
    cands = [p for p in parent.glob(f".{name}.v-*") if (p / "model.json").is_file()]
    if cands:
        os.symlink(max(cands, key=lambda p: p.stat().st_mtime).name, final)
        return True
    olds = [p for p in parent.glob(f".old-{name}-*") if (p / "model.json").is_file()]
    if olds:
        os.replace(max(olds, key=lambda p: p.stat().st_mtime), final)
        return True
    return False


def _remove(p: Path) -> None:
    if p.is_symlink() or p.is_file():
        p.unlink(missing_ok=True)
    else:
        shutil.rmtree(p, ignore_errors=True)


__all__ = [
    "STALE_VERSION_S",
    "fsync_dir",
    "fsync_tree",
    "host",
    "prune_versions",
    "publish_dir",
    "staging_dir",
    "writer_gone",
    "writer_tag",
]

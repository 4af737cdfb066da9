"""Atomic publishing of folders that readers open by name (a model), kept versions, and crash recovery.

``models/NAME`` is a real folder, so ``cp -r``, ``zip -r``, ``rsync`` and a Kaggle dataset upload copy a
working model. A new version is written and fsynced under a hidden name (:func:`staging_dir`,
``.NAME.new-<stamp>-<id>-<pid>@<host>``), then swapped with ``NAME`` in one
``renameat2(RENAME_EXCHANGE)`` (:func:`publish_dir`): at every instant ``NAME`` is a complete old or a
complete new version. The old version becomes a kept version ``.NAME.prev-<stamp>-<id>``; the newest
:data:`KEEP_VERSIONS` are kept (``embedkit models rollback NAME`` swaps one back), older ones go.

Crash safety. Just before the swap the new folder is renamed ``.NAME.swap-<inode>-...``, where ``<inode>`` is
the inode of the ``NAME`` it replaces; after the swap that path holds the old version, so a writer killed
between the swap and the rename to ``.prev-`` leaves a ``.swap-`` whose inode equals its name's: the next
save (or a load that finds ``NAME`` missing) keeps it as a version; a ``.swap-`` of another inode is a new
version never published and goes. Publishing, recovery and pruning hold an ``flock`` on the models folder,
so saves of one name are serialised.

Fallback where ``renameat2`` is missing (not Linux, old libc, a file system that refuses the flag): ``NAME``
is renamed aside (``.NAME.aside-...``), then the new folder renamed in. A crash between the two leaves no
``NAME`` but a complete old version (``.aside-``) and a complete new one (``.swap-``): the next load or save
renames the new one in (it was fsynced before the first rename) and keeps the old one, so a reader that
waits for the lock never sees the gap.

Folders of earlier embedkit versions still load and are converted by the next save: ``NAME`` as a symlink to
``.NAME.v-...`` (the symlinked layout) and 0.1's ``.tmp-NAME-PID``/``.old-NAME-PID``; complete ``.v-``
folders become kept versions. Temp names carry ``<pid>@<host>``: a leftover of this host is stale as soon
as its pid is gone, one of another host (a shared file system) only after :data:`STALE_VERSION_S`.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import os
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path

from embedkit.files import fsync_dir

#: age after which leftovers of other machines' saves (shared file systems) are removed
STALE_VERSION_S = 24 * 3600.0
#: kept earlier versions per model (``.NAME.prev-*``); older ones are removed by the next save
KEEP_VERSIONS = 3
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


def _stamp(t: float | None = None) -> str:
    return datetime.datetime.fromtimestamp(time.time() if t is None else t).strftime("%Y%m%dT%H%M%S.%f")


def staging_dir(final: Path) -> Path:
    """A new, empty hidden sibling of ``final`` to write its next version into."""
    d = final.with_name(f".{final.name}.new-{_stamp()}-{uuid.uuid4().hex[:6]}-{writer_tag()}")
    d.mkdir(parents=True)
    return d


def kept_name(final: Path, t: float | None = None) -> Path:
    """A fresh name for a kept version of ``final``: ``.NAME.prev-<stamp>-<id>`` (stamps sort by time)."""
    return final.with_name(f".{final.name}.prev-{_stamp(t)}-{uuid.uuid4().hex[:6]}")


def entries(final: Path, kind: str) -> list[Path]:
    """Siblings ``.NAME.<kind>-*`` of ``final`` (exact prefix: not those of a model named ``NAME.x``)."""
    prefix = f".{final.name}.{kind}-"
    if not final.parent.is_dir():
        return []
    return sorted(p for p in final.parent.iterdir() if p.name.startswith(prefix))


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


@contextlib.contextmanager
def publish_lock(final: Path):
    """Exclusive ``flock`` on the folder holding ``final`` (publishes and repairs happen one at a time).

    Held for milliseconds (renames only); the kernel drops it when the holder dies. Where ``flock`` is
    missing (Windows, some network mounts) nothing is locked.
    """
    try:
        import fcntl

        fd = os.open(final.parent, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the flock


def publish_dir(staged: Path, final: Path) -> Path | None:
    """Make ``final`` the complete folder ``staged`` in one atomic step; returns the kept previous version.

    ``final`` becomes a real folder. A previous ``final`` (a folder, or a symlink of the symlinked layout)
    is kept as ``.NAME.prev-...``; None when there was none.
    """
    fsync_tree(staged)
    with publish_lock(final):
        recover(final)
        if not os.path.lexists(final):
            os.rename(staged, final)
            fsync_dir(final.parent)
            return None
        tag = f"{uuid.uuid4().hex[:6]}-{writer_tag()}"
        swap = final.with_name(f".{final.name}.swap-{final.lstat().st_ino}-{tag}")
        os.rename(staged, swap)
        if exchange(swap, final):
            old = swap
        else:  # no renameat2: a gap without NAME, which recover() closes (see the module docstring)
            old = final.with_name(f".{final.name}.aside-{tag}")
            os.rename(final, old)
            os.rename(swap, final)
        kept = _retire(old, final)
        fsync_dir(final.parent)
    return kept


def _retire(old: Path, final: Path) -> Path | None:
    """Keep the replaced version at ``old`` (a folder, or a symlink to a ``.v-`` folder) as ``.prev-``."""
    if old.is_symlink():  # the symlinked layout: keep the folder it named
        target = old.with_name(os.readlink(old))
        kept = None
        if os.sep not in os.readlink(old) and target.is_dir():
            kept = kept_name(final)
            os.rename(target, kept)
        old.unlink()
        return kept
    kept = kept_name(final)
    os.rename(old, kept)
    return kept


def recover(final: Path) -> None:
    """Finish what writers killed mid-publish left, and convert the symlinked layout's versions.

    Call with :func:`publish_lock` held. A ``.swap-`` that holds the old version (its inode is in its name)
    and an ``.aside-`` are kept as versions; a ``.swap-`` with the new version is renamed in when ``NAME`` is
    missing (the fallback's gap), else removed; complete ``.v-`` folders of the symlinked layout that ``NAME``
    no longer names become kept versions.
    """
    asides = [p for p in entries(final, "aside") if _dead(p)]
    swaps = [p for p in entries(final, "swap") if _dead(p)]
    for p in asides + [p for p in swaps if _holds_old(p, final)]:
        _retire(p, final)
    for p in swaps:
        if os.path.lexists(p):  # a new version never published
            if not os.path.lexists(final) and (p / "model.json").is_file():
                os.rename(p, final)
            else:
                _remove(p)
    if not os.path.lexists(final):
        _repair(final)
    current = os.readlink(final) if final.is_symlink() else ""
    for p in entries(final, "v"):
        if p.name == current or not _dead(p):
            continue
        if (p / "model.json").is_file() and not p.is_symlink():
            os.rename(p, kept_name(final, p.lstat().st_mtime))
        else:
            _remove(p)


def _holds_old(swap: Path, final: Path) -> bool:
    """Whether a ``.swap-<inode>-`` path holds the version it replaced (the exchange happened)."""
    ino = swap.name[len(f".{final.name}.swap-") :].split("-")[0]
    return ino.isdigit() and swap.lstat().st_ino == int(ino)


def _dead(p: Path) -> bool:
    try:
        return writer_gone(p.name.rsplit("-", 1)[-1], p.lstat().st_mtime)
    except FileNotFoundError:
        return False


def prune_versions(final: Path, keep: Path | None = None) -> int:
    """Recover leftovers, then remove kept versions beyond the newest :data:`KEEP_VERSIONS` and dead temps.

    Also removes the leftovers of writers that died (``.new-``, the symlinked layout's ``.link-``, 0.1's
    ``.tmp-``/``.old-``) and repairs a name lost in 0.1's two-rename swap. ``keep`` is never removed.
    Returns the number of entries removed.
    """
    n = 0
    with publish_lock(final):
        recover(final)
        for p in [*entries(final, "new"), *entries(final, "link")]:
            if _dead(p):
                _remove(p)
                n += 1
        olds = [
            p
            for p in final.parent.glob("*")
            if p.name.startswith((f".tmp-{final.name}-", f".old-{final.name}-"))
        ]
        for p in olds:  # embedkit 0.1's temps
            if _dead(p) and (os.path.lexists(final) or _repair(final)):
                _remove(p)
                n += 1
        for p in entries(final, "prev")[:-KEEP_VERSIONS]:
            if p != keep:
                _remove(p)
                n += 1
    return n


def _repair(final: Path) -> bool:
    """Restore a missing ``final`` from the symlinked layout's newest ``.v-`` or 0.1's ``.old-``."""
    parent, name = final.parent, final.name
    cands = [p for p in entries(final, "v") if (p / "model.json").is_file() and not p.is_symlink()]
    cands += [p for p in parent.glob(f".old-{name}-*") if (p / "model.json").is_file()]
    if cands:
        os.rename(max(cands, key=lambda p: p.stat().st_mtime), final)
        print(
            f"[models] {final} was missing (a save was killed); restored its newest complete version",
            file=sys.stderr,
        )
        return True
    return False


def _remove(p: Path) -> None:
    if p.is_symlink() or p.is_file():
        p.unlink(missing_ok=True)
    else:
        shutil.rmtree(p, ignore_errors=True)


__all__ = [
    "KEEP_VERSIONS",
    "STALE_VERSION_S",
    "entries",
    "exchange",
    "fsync_dir",
    "fsync_tree",
    "host",
    "kept_name",
    "prune_versions",
    "publish_dir",
    "publish_lock",
    "recover",
    "staging_dir",
    "writer_gone",
    "writer_tag",
]

"""Advisory writer locks: one extraction per dataset folder and part.

Two ``extract`` runs that write the same files into one folder would embed every file twice (the rows are
duplicated on disk; ``read_embeddings`` hides that, ``pd.read_parquet(folder)``, DuckDB and Polars do not).
So a writer holds ``.lock-extract-p<i>of<N>`` in the folder for its whole run: an ``flock`` on the file (the
kernel drops it when the process dies, also on SIGKILL, so a lock is never stale by mistake) plus
``pid@host`` and the start time inside, for the message that names the holder. A second writer whose files
overlap — the same part, or a different split ``N`` — is refused with a one-line error; parts of one split
(``--part 0/4`` … ``3/4``) do not overlap and run side by side. Lock files of writers that are gone are
removed by the next one. Taking a lock is serialised by a short ``flock`` on the folder itself, so two runs
started at the same instant cannot both pass the check, and a finished run leaves no lock file behind.

Where ``fcntl`` is missing (Windows) or the file system has no ``flock`` (some network mounts) no lock is
taken (with a note on stderr in the second case).
"""

from __future__ import annotations

import errno
import os
import re
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from embedkit.errors import UsageError
from embedkit.store.provenance import StoreError
from embedkit.store.write import _write_error

_NAME = re.compile(r"^\.lock-extract-p(\d+)of(\d+)$")


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether parts ``(i, N)`` and ``(j, M)`` can share a file (only disjoint parts of one split cannot)."""
    return a[1] != b[1] or a[0] == b[0]


class _NoLocks(Exception):
    """The file system does not support ``flock`` (some network mounts)."""


_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS}


def _flock(fd: int, flags: int) -> bool:
    """``flock``; False when another holder has it (non-blocking), :class:`_NoLocks` where unsupported."""
    import fcntl

    try:
        fcntl.flock(fd, flags)
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in _UNSUPPORTED:
            raise _NoLocks(e.strerror) from e
        raise


def _try_lock(fd: int) -> bool:
    import fcntl

    return _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown process"
    except OSError:
        return "unknown process"


def _check_others(folder: Path, part: tuple[int, int]) -> None:
    """Refuse if a live writer holds an overlapping part; remove lock files of writers that are gone."""
    for p in sorted(folder.glob(".lock-extract-p*of*")):
        m = _NAME.match(p.name)
        if not m:
            continue
        other = (int(m[1]), int(m[2]))
        try:
            fd = os.open(p, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            if _try_lock(fd):  # nobody holds it: left by a writer that died
                p.unlink(missing_ok=True)
                continue
        finally:
            os.close(fd)
        if _overlaps(part, other):
            raise UsageError(
                f"{folder} is being written by another extract (part {other[0]}/{other[1]}, "
                f"{_holder(p)}); wait for it to finish, then rerun (finished files are skipped)"
            )


@contextmanager
def _gate(folder: Path):
    """Exclusive ``flock`` on the folder itself: taking and dropping part locks happen one at a time."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        _flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the flock


@contextmanager
def extract_lock(folder: str | os.PathLike, part: tuple[int, int] = (0, 1)):
    """Hold the writer lock of ``folder`` for part ``(i, N)`` while the block runs.

    Args:
        folder: dataset folder (created if missing).
        part: this run's ``--part`` as (i, N).

    Raises:
        UsageError: another live process writes an overlapping part of the folder (the message names it).
        StoreError: the folder cannot be created or written.
    """
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    folder = Path(folder)
    mine = folder / f".lock-extract-p{part[0]}of{part[1]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _gate(folder):
            _check_others(folder, part)
            fd = os.open(mine, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):  # cannot happen after the check, unless flock is not honoured here
                os.close(fd)
                raise UsageError(f"{folder} is being written by another extract ({_holder(mine)})")
            os.ftruncate(fd, 0)
            who = f"pid {os.getpid()}@{socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
            os.write(fd, f"{who}\n".encode())
    except _NoLocks as e:
        print(f"[extract] note: no file locks on {folder} ({e}); do not run two extracts on it at once",
              file=sys.stderr)
        yield
        return
    except OSError as e:  # read-only or unwritable folder: the store's one-line error, before any work
        raise StoreError(_write_error(folder, e)) from e
    try:
        yield
    finally:  # removed under the gate, so no other writer can be between opening and locking this file
        try:
            with _gate(folder):
                mine.unlink(missing_ok=True)
        finally:
            os.close(fd)

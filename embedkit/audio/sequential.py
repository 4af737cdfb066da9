"""Seek-free block reading: a file read in blocks gives the same samples as one ``soundfile.read``.

Why: ``SoundFile.read`` seeks after every call (``_cdata_io`` re-seeks to ``tell() + frames`` to keep
its position in step). For WAV/FLAC/OGG that seek is a no-op, but for MP3 libsndfile hands it to
``mpg123_seek``, which restarts the decoder at the block boundary without the bit reservoir of the
frames before it. The next frames then fail ("part2_3_length … too large", "dequantization failed") and
decode to different samples: 2,433 differing samples (max abs 0.036) on one real 22.05 kHz field
recording read in 30 s blocks. Reading whole is exact but costs the whole file in memory (a 3 h MP3 is
1.4 GB as float32 at 44.1 kHz), so :func:`read_blocks` instead calls libsndfile's ``sf_readf_float``
directly, consecutively, never seeking — the way ``sf_read`` is meant to be used for a stream.
``soundfile.read`` itself seeks to frame 0 once before reading; so does this reader (for MP3 that
restart changes the decode by 1 ulp in some files, and the point is to match the whole read exactly).

libmpg123 prints decoder complaints straight to file descriptor 2. While an MP3 block is decoded,
fd 2 is pointed at a temporary file (one MP3 block at a time, under a lock, so each message is
attributed to its file); decoder lines then go to the ``embedkit.audio`` logger as one warning naming
the file, and anything else written to stderr meanwhile (a progress bar) is passed through unchanged.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import numpy as np

log = logging.getLogger("embedkit.audio")
_CAPTURE = threading.Lock()


def _raw_read():
    """Return libsndfile's ``sf_readf_float`` and soundfile's error check (None if soundfile changed)."""
    try:
        import soundfile as sf

        return sf._snd.sf_readf_float, sf._ffi, sf._error_check
    except (ImportError, AttributeError):
        return None


def read_blocks(f, block: int, name: str) -> Iterator[np.ndarray]:
    """Read an open ``soundfile.SoundFile`` from its start in consecutive blocks without seeking.

    Args:
        f: open SoundFile in read mode.
        block: frames per block (>= 1).
        name: file name used in decoder warnings.

    Yields:
        float32 arrays [n, channels], each of ``block`` frames except the last (shorter, maybe empty).
    """
    if f.seekable():
        f.seek(0)
    mp3 = f.format == "MPEG"
    raw = _raw_read()
    if raw is None:  # soundfile internals changed: exact but not bounded for MP3, exact for the rest
        yield from _fallback(f, block, mp3)
        return
    readf, ffi, check = raw
    while True:
        out = np.empty((block, f.channels), dtype=np.float32)
        with decoder_messages(name) if mp3 else nullcontext():
            n = int(readf(f._file, ffi.cast("float *", out.ctypes.data), block))
        check(f._errorcode)
        yield out[:n]
        if n < block:
            return


def _fallback(f, block: int, mp3: bool) -> Iterator[np.ndarray]:
    if mp3:
        data = f.read(dtype="float32", always_2d=True)
        for i in range(0, len(data), block):
            yield data[i : i + block]
        if len(data) % block == 0:
            yield data[:0]
        return
    while True:
        data = f.read(block, dtype="float32", always_2d=True)
        yield data
        if len(data) < block:
            return


@contextmanager
def decoder_messages(name: str):
    """Capture what C code writes to fd 2 inside the block; decoder lines become one logged warning.

    Args:
        name: the file being decoded (named in the warning).
    """
    with _CAPTURE:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        saved = os.dup(2)
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", errors="replace")
    if text:
        _report(name, text)


def _is_decoder_line(line: str) -> bool:
    return "mpg123" in line or line.lstrip().lower().startswith(("note:", "warning:", "error:"))


def _report(name: str, text: str) -> None:
    ours = [ln for ln in text.splitlines() if _is_decoder_line(ln)]
    other = "".join(ln for ln in text.splitlines(keepends=True) if not _is_decoder_line(ln))
    if other:
        os.write(2, other.encode())
    if ours:
        more = f" (and {len(ours) - 1} more)" if len(ours) > 1 else ""
        log.warning("MP3 decoder, %s: %s%s", name, ours[0].split("] ", 1)[-1].strip(), more)

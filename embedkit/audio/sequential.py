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

libmpg123 prints decoder complaints straight to file descriptor 2, when a file is opened (it scans the
stream) and while it decodes. Around those calls fd 2 is pointed at a temporary file (one capture at a
time, under a lock, so each message is attributed to its file); :class:`DecoderMessages` collects the
decoder's lines and logs them as one warning naming the file on the ``embedkit.audio`` logger, and
anything else written to stderr meanwhile (a progress bar) is passed through unchanged.
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


def read_blocks(f, block: int, msgs: DecoderMessages | None = None) -> Iterator[np.ndarray]:
    """Read an open ``soundfile.SoundFile`` from its start in consecutive blocks without seeking.

    Args:
        f: open SoundFile in read mode.
        block: frames per block (>= 1).
        msgs: collects what the MP3 decoder prints while the file is read (``None``: not captured).

    Yields:
        float32 arrays [n, channels], each of ``block`` frames except the last (shorter, maybe empty).
    """
    mp3 = f.format in ("MP3", "MPEG") and msgs is not None
    quiet = msgs.capture if mp3 else nullcontext
    if f.seekable():
        with quiet():
            f.seek(0)
    raw = _raw_read()
    if raw is None:  # soundfile internals changed: exact but not bounded for MP3, exact for the rest
        yield from _fallback(f, block, f.format in ("MP3", "MPEG"), quiet)
        return
    readf, ffi, check = raw
    while True:
        out = np.empty((block, f.channels), dtype=np.float32)
        with quiet():
            n = int(readf(f._file, ffi.cast("float *", out.ctypes.data), block))
        check(f._errorcode)
        yield out[:n]
        if n < block:
            return


def _fallback(f, block: int, mp3: bool, quiet) -> Iterator[np.ndarray]:
    """``SoundFile.read`` (it seeks after each call): MP3 whole, other formats in blocks (exact for them)."""
    if mp3:
        with quiet():
            data = f.read(dtype="float32", always_2d=True)
        for i in range(0, len(data), block):
            yield data[i : i + block]
        if len(data) % block == 0:
            yield data[:0]
        return
    while True:
        with quiet():
            data = f.read(block, dtype="float32", always_2d=True)
        yield data
        if len(data) < block:
            return


class DecoderMessages:
    """What C decoders print to fd 2 for one file, collected and logged as one warning naming the file.

    Args:
        name: the file (named in the warning).
        level: logging level of the warning (``logging.DEBUG`` where another call reports the same file).
    """

    def __init__(self, name: str, level: int = logging.WARNING):
        self.name, self.level = name, level
        self.lines: list[str] = []

    @contextmanager
    def capture(self):
        """Point fd 2 at a temp file while the block runs (one capture at a time in the process)."""
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
            other = "".join(ln for ln in text.splitlines(keepends=True) if not _is_decoder_line(ln))
            if other:  # not the decoder's (a progress bar of another thread): passed through unchanged
                os.write(2, other.encode())
            self.lines += [ln.strip() for ln in text.splitlines() if _is_decoder_line(ln)]

    def report(self) -> None:
        """Log the collected lines as one message (the first, and how many more) and forget them."""
        if self.lines:
            first = self.lines[0].split("] ", 1)[-1]
            more = f" (and {len(self.lines) - 1} more)" if len(self.lines) > 1 else ""
            log.log(self.level, "MP3 decoder, %s: %s%s", self.name, first, more)
            self.lines = []


def _is_decoder_line(line: str) -> bool:
    return "mpg123" in line or line.lstrip().lower().startswith(("note:", "warning:", "error:"))

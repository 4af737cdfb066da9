"""Audio room: decode (soundfile), downmix, resample (soxr), and cut fixed windows.

Decoding streams the file in blocks, so a 3 h recording never sits in memory whole: windows are
yielded as soon as the samples they cover have been decoded. Window arithmetic lives in
:func:`window_spans` (a pure function of the duration) and is shared with inference and validation.

Window rule: windows of ``window_s`` start every ``hop_s`` seconds from the file start. After the last
full window, one more zero-padded window is kept when it adds at least ``min_tail_s`` seconds of audio
not covered by earlier windows; a file shorter than one window still gives one window. Window k ends at
``k * hop_s + window_s`` — for BirdCLEF soundscapes 5, 10, …, 60, the ``row_id`` suffix.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedkit.audio.sequential import DecoderMessages, read_blocks
from embedkit.errors import EmbedkitError

AUDIO_SUFFIXES = (".ogg", ".oga", ".flac", ".wav", ".mp3", ".opus", ".aif", ".aiff")


class AudioError(EmbedkitError):
    """A file cannot be used; ``str(err)`` is the one-line reason recorded in the failures table."""


@dataclass(frozen=True)
class Windowing:
    """How a file is cut into windows (seconds)."""

    window_s: float = 5.0
    hop_s: float = 5.0
    min_tail_s: float = 1.0
    max_windows: int | None = None

    def __post_init__(self):
        if not (self.window_s > 0 and self.hop_s > 0):
            raise ValueError(f"window_s and hop_s must be > 0, got {self.window_s}, {self.hop_s}")
        if self.min_tail_s < 0:
            raise ValueError(f"min_tail_s must be >= 0, got {self.min_tail_s}")
        if self.max_windows is not None and self.max_windows < 1:
            raise ValueError(f"max_windows must be >= 1, got {self.max_windows}")


def _counts(n: int, win: int, hop: int, tail: int) -> tuple[int, bool]:
    """(number of full windows, whether a padded tail window follows) for ``n`` samples."""
    if n <= 0:
        return 0, False
    if n < win:
        return 0, True
    n_full = (n - win) // hop + 1
    covered = max((n_full - 1) * hop + win, n_full * hop)  # a hop longer than the window leaves gaps
    return n_full, (n - covered) >= max(tail, 1)


def window_spans(duration_s: float, w: Windowing = Windowing(), sample_rate: int = 32000) -> np.ndarray:
    """Start and end times of the windows of a file.

    Args:
        duration_s: file duration in seconds.
        w: windowing parameters.
        sample_rate: rate at which the arithmetic is done (sample-exact, as in decoding).

    Returns:
        float64 array [W, 2] of (start_s, end_s); end is nominal (start + window_s) also for a padded tail.
    """
    n = int(round(duration_s * sample_rate))
    win, hop = _samples(w.window_s, sample_rate), _samples(w.hop_s, sample_rate)
    n_full, has_tail = _counts(n, win, hop, _samples(w.min_tail_s, sample_rate))
    count = n_full + int(has_tail)
    if w.max_windows is not None:
        count = min(count, w.max_windows)
    starts = np.arange(count) * (hop / sample_rate)
    return np.stack([starts, starts + w.window_s], axis=1) if count else np.zeros((0, 2))


def _samples(seconds: float, sr: int) -> int:
    return int(round(seconds * sr))


def row_id(stem: str, end_s: float) -> str:
    """BirdCLEF row id ``<stem>_<end second>`` (integer seconds where the end is whole)."""
    end = round(float(end_s), 6)
    return f"{stem}_{int(end)}" if end == int(end) else f"{stem}_{end:.6f}".rstrip("0")


def _open(path: str | os.PathLike, msgs: DecoderMessages | None = None):
    """Open ``path`` for reading; decoder messages meanwhile go to ``msgs`` (default: the debug log)."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise AudioError("missing file" + (" (broken symlink)" if p.is_symlink() else ""))
    if p.is_dir():
        raise AudioError("is a folder, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    own = msgs is None  # duration_s: the decode of the same file reports these lines
    msgs = msgs or DecoderMessages(str(p), logging.DEBUG)
    try:
        with msgs.capture():
            return sf.SoundFile(str(p))
    except Exception as e:  # soundfile raises several types (LibsndfileError, RuntimeError, TypeError)
        raise AudioError(f"cannot decode: {_oneline(e)}") from None
    finally:
        if own:
            msgs.report()


def _oneline(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__


def stream_mono(path: str | os.PathLike, sample_rate: int, block_s: float = 30.0) -> Iterator[np.ndarray]:
    """Decode a file in blocks as mono float32 at ``sample_rate``.

    Channels are averaged; non-finite samples become 0 and values are clipped to [-1, 1].

    Args:
        path: audio file (OGG, FLAC, WAV, MP3, ...).
        sample_rate: target rate in Hz; soxr (HQ) resamples in a stream.
        block_s: seconds decoded per block (memory bound).

    Yields:
        float32 arrays [n] of consecutive samples.

    Raises:
        AudioError: the file is missing, empty or cannot be decoded (also mid-file).
    """
    import soxr

    msgs = DecoderMessages(str(path))  # what libmpg123 prints: one logged warning naming the file
    try:
        f = _open(path, msgs)
        with f:
            sr_in = f.samplerate
            stream = None
            if sr_in != sample_rate:
                stream = soxr.ResampleStream(sr_in, sample_rate, 1, dtype="float32", quality="HQ")
            block = max(1, int(block_s * sr_in))
            try:
                for data in read_blocks(f, block, msgs):  # seek-free: same samples as one whole read
                    last = len(data) < block
                    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
                    mono = np.clip(np.nan_to_num(mono, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)
                    if stream is not None:
                        mono = stream.resample_chunk(mono, last=last)
                    if len(mono):
                        yield np.ascontiguousarray(mono, dtype=np.float32)
                    if last:
                        return
            except AudioError:
                raise
            except Exception as e:
                raise AudioError(f"decode failed after {f.tell() / sr_in:.1f} s: {_oneline(e)}") from None
    finally:
        msgs.report()


def iter_windows(
    path: str | os.PathLike, sample_rate: int, w: Windowing = Windowing(), block_s: float = 30.0
) -> Iterator[tuple[int, np.ndarray]]:
    """Cut a file into windows while it decodes (bounded memory; stops reading after ``max_windows``).

    Args:
        path: audio file.
        sample_rate: target rate in Hz.
        w: windowing parameters.
        block_s: decode block length in seconds.

    Yields:
        (index of the first window in the piece, float32 array [k, window_samples]).

    Raises:
        AudioError: unreadable file, or a file with no samples.
    """
    win, hop = _samples(w.window_s, sample_rate), _samples(w.hop_s, sample_rate)
    tail = _samples(w.min_tail_s, sample_rate)
    limit = w.max_windows or math.inf
    buf = np.zeros(0, dtype=np.float32)
    offset = 0  # absolute sample index of buf[0]
    k = 0  # next window index
    total = 0
    for chunk in stream_mono(path, sample_rate, block_s):
        total += len(chunk)
        buf = np.concatenate([buf, chunk]) if len(buf) else chunk
        starts = []
        while k < limit and k * hop + win <= offset + len(buf):
            starts.append(k * hop - offset)
            k += 1
        if starts:
            yield k - len(starts), np.stack([buf[s : s + win] for s in starts])
        if k >= limit:
            return
        drop = min(k * hop - offset, len(buf))  # with hop > window, the next start may be ahead of buf
        if drop > 0:
            buf, offset = buf[drop:], offset + drop
    if total == 0:
        raise AudioError("no audio samples")
    n_full, has_tail = _counts(total, win, hop, tail)
    if has_tail and k < limit:
        s = k * hop - offset
        out = np.zeros((1, win), dtype=np.float32)
        piece = buf[s : s + win]
        out[0, : len(piece)] = piece
        yield k, out


def load_mono(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Decode a whole file as mono float32 [n] at ``sample_rate`` (for short files and plots)."""
    parts = list(stream_mono(path, sample_rate))
    if not parts:
        raise AudioError("no audio samples")
    return np.concatenate(parts)


def duration_s(path: str | os.PathLike) -> float:
    """Duration in seconds from the file header (no decoding)."""
    with _open(path) as f:
        return f.frames / f.samplerate


def list_audio(folder: str | os.PathLike) -> list[Path]:
    """All audio files below ``folder`` (recursive, sorted, by suffix)."""
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not p.is_dir())

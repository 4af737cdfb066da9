"""Shifted windows for test-time augmentation (``infer.py --tta 1.25``).

Window *k* of a file starts at ``k * hop``; with offsets ``(o_1, ..., o_S)`` seconds it is also cut at
``k * hop ± o``. The variants of a window are ``[unshifted, o_1, ..., o_S]`` (``--tta 1.25`` gives offsets
-1.25 and +1.25: variants ``[0, -1.25, +1.25]``). The predictions of the variants are averaged after the head
(:mod:`embedkit.predict.tta`), so the rows, row ids and window count of a file do not change.

Shifts that leave the file are clipped, the same way for every window: a shifted start is clamped to
``[0, max(start, n - window)]`` (``n`` = the file's samples). A window never starts before the file, and
never reaches further past the end than the unshifted window does: the first window's negative shift and
the last full window's positive shift become the unshifted window itself, and the zero-padded tail window
only moves back (its negative shift, padded the same way as the tail). :func:`shifted_windows` cuts a
decoded signal; :func:`iter_shifted_windows` does the same while a file decodes (bounded memory), and both
give the same samples.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence

import numpy as np

from embedkit.audio.decode import AudioError, Windowing, _counts, _samples, stream_mono


def tta_offsets(shifts: Sequence[float] | None) -> tuple[float, ...]:
    """Offsets in seconds from the ``--tta`` values: each shift s gives -s and +s; 0 and empty mean none.

    Args:
        shifts: the flag's values, e.g. ``[1.25]`` (negative values are taken as their magnitude).

    Returns:
        Sorted unique non-zero offsets, e.g. ``(-1.25, 1.25)``; ``()`` when TTA is off.
    """
    out = set()
    for s in shifts or ():
        s = abs(float(s))
        if not math.isfinite(s):
            raise ValueError(f"--tta shift must be finite, got {s}")
        if s > 0:
            out.update((-s, s))
    return tuple(sorted(out))


def shifted_starts(starts: np.ndarray, n: int, win: int, offsets: Sequence[int]) -> np.ndarray:
    """Start samples [W, 1 + S] of every window's variants (column 0: unshifted), clipped as in the module.

    Args:
        starts: unshifted window starts [W] in samples.
        n: samples in the file.
        win: window length in samples.
        offsets: S offsets in samples.
    """
    starts = np.asarray(starts, np.int64)
    raw = starts[:, None] + np.asarray([0, *offsets], np.int64)[None, :]
    hi = np.maximum(starts, n - win)[:, None]
    return np.clip(raw, 0, hi)


def _cut(buf: np.ndarray, offset: int, starts: np.ndarray, win: int) -> np.ndarray:
    """Windows [..., win] from absolute sample ``starts``, cut from ``buf`` (buf[0] = sample ``offset``)."""
    out = np.zeros((*starts.shape, win), np.float32)
    for idx, s in np.ndenumerate(starts):
        piece = buf[s - offset : s - offset + win]
        out[idx][: len(piece)] = piece
    return out


def shifted_windows(
    audio: np.ndarray, sample_rate: int, offsets_s: Sequence[float], w: Windowing | None = None
) -> np.ndarray:
    """Every window of a decoded signal with its shifted variants.

    Args:
        audio: mono float32 [n].
        sample_rate: its rate in Hz.
        offsets_s: S offsets in seconds (:func:`tta_offsets`).
        w: windowing (window k starts at ``k * hop``; padded tail as in :func:`embedkit.audio.iter_windows`).

    Returns:
        float32 [W, 1 + S, window samples]; ``[:, 0]`` are the windows ``iter_windows`` gives.
    """
    w = w or Windowing()
    win, hop = _samples(w.window_s, sample_rate), _samples(w.hop_s, sample_rate)
    n_full, tail = _counts(len(audio), win, hop, _samples(w.min_tail_s, sample_rate))
    count = min(n_full + int(tail), w.max_windows or math.inf)
    offs = [_samples(o, sample_rate) for o in offsets_s]
    starts = shifted_starts(np.arange(count) * hop, len(audio), win, offs)
    return _cut(np.asarray(audio, np.float32), 0, starts, win)


def iter_shifted_windows(
    path: str | os.PathLike,
    sample_rate: int,
    offsets_s: Sequence[float],
    w: Windowing | None = None,
    block_s: float = 30.0,
) -> Iterator[tuple[int, np.ndarray]]:
    """Like :func:`embedkit.audio.iter_windows`, each window with its shifted variants, while decoding.

    Yields:
        (index of the first window in the piece, float32 [k, 1 + S, window samples]), the same samples as
        :func:`shifted_windows` of the whole decoded file.

    Raises:
        AudioError: unreadable file, or a file with no samples.
    """
    w = w or Windowing()
    win, hop = _samples(w.window_s, sample_rate), _samples(w.hop_s, sample_rate)
    offs = [_samples(o, sample_rate) for o in offsets_s]
    ahead, behind = max([0, *offs]), min([0, *offs])
    limit = w.max_windows or math.inf
    buf, offset, k, total = np.zeros(0, np.float32), 0, 0, 0
    for chunk in stream_mono(path, sample_rate, block_s):
        total += len(chunk)
        buf = np.concatenate([buf, chunk]) if len(buf) else chunk
        ks = []
        # every variant of window k lies inside the samples seen so far (end clipping cannot apply yet)
        while k < limit and k * hop + ahead + win <= offset + len(buf):
            ks.append(k)
            k += 1
        if ks:
            starts = shifted_starts(np.asarray(ks) * hop, offset + len(buf) + win, win, offs)
            yield ks[0], _cut(buf, offset, starts, win)
        if k >= limit:
            return
        drop = min(max(k * hop + behind, 0) - offset, len(buf))
        if drop > 0:
            buf, offset = buf[drop:], offset + drop
    if total == 0:
        raise AudioError("no audio samples")
    n_full, tail = _counts(total, win, hop, _samples(w.min_tail_s, sample_rate))
    count = min(n_full + int(tail), limit)
    if k < count:
        starts = shifted_starts(np.arange(k, count) * hop, total, win, offs)
        yield k, _cut(buf, offset, starts, win)


__all__ = ["iter_shifted_windows", "shifted_starts", "shifted_windows", "tta_offsets"]

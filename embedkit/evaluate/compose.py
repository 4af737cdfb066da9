"""Seeded synthetic soundscapes composed from real focal recordings, with per-window truth.

A soundscape is ``duration_s`` of background (the quietest stretches of other recordings, attenuated,
plus pink noise) with a few calls placed at random times and levels. A call is a 3-12 s segment of a
focal recording, taken around its loudest part in the bird band (1-10 kHz, where the call most likely is)
and faded in and out over 50 ms. A window is labelled with a call's species when the call overlaps it by at
least ``min_overlap_s``; the background is unlabelled. Everything is drawn from ``numpy.random`` seeded
with ``seed``, so the same inputs give the same audio and truth.

This is the soundscape test of :mod:`embedkit.evaluate`: the calls come from held-out recordings, so a
head is scored on unseen individuals in the BirdCLEF setting (5 s windows of a one-minute soundscape).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FADE_S = 0.05


@dataclass
class Soundscape:
    """One composed soundscape.

    Attributes:
        name: stem used for row ids.
        audio: float32 [duration_s * sample_rate] mono samples.
        truth: float32 [W, C] per-window multi-hot truth (W = duration_s / window_s).
        events: (class index, start s, end s, source recording) of each placed call.
    """

    name: str
    audio: np.ndarray
    truth: np.ndarray
    events: list[tuple[int, float, float, str]]


FRAME = 2048  # samples per analysis frame (43 ms at 48 kHz)


def band_energy(x: np.ndarray, sample_rate: int, frame: int = FRAME) -> np.ndarray:
    """Bird-band (1-10 kHz) energy of consecutive ``frame``-sample frames of x [n] → [max(1, n // frame)]."""
    n = max(1, len(x) // frame)
    y = np.zeros(n * frame, np.float32)
    y[: min(len(x), n * frame)] = x[: n * frame]
    spec = np.abs(np.fft.rfft(y.reshape(n, frame), axis=1)) ** 2
    f = np.fft.rfftfreq(frame, 1.0 / sample_rate)
    return spec[:, (f >= 1000) & (f <= 10000)].sum(1)


def _fade(seg: np.ndarray, sample_rate: int) -> np.ndarray:
    n = min(len(seg) // 2, int(FADE_S * sample_rate))
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        seg = seg.copy()
        seg[:n] *= ramp
        seg[-n:] *= ramp[::-1]
    return seg


def loudest_segment(
    x: np.ndarray, energy: np.ndarray, length: int, rng: np.random.Generator, frame: int = FRAME
) -> np.ndarray:
    """A ``length``-sample segment of x [n] holding its loudest frame (``energy``: :func:`band_energy`)."""
    if len(x) <= length:
        return x.copy()
    peak = int(np.argmax(energy)) * frame + frame // 2
    lo, hi = max(0, peak - length + frame), min(len(x) - length, peak - frame)
    if hi < lo:
        lo = hi = int(np.clip(peak - length // 2, 0, len(x) - length))
    start = int(rng.integers(lo, hi + 1))
    return x[start : start + length].copy()


def quiet_stretch(x: np.ndarray, energy: np.ndarray, length: int, frame: int = FRAME) -> np.ndarray:
    """The ``length``-sample stretch of x [n] with the least bird-band energy (tiled if x is shorter)."""
    if len(x) < length:
        return np.tile(x, length // max(1, len(x)) + 1)[:length]
    m = max(1, length // frame)
    if len(energy) <= m:
        return x[:length].copy()
    csum = np.concatenate([[0.0], np.cumsum(energy)])
    s = int(np.argmin(csum[m:] - csum[:-m]))
    s = min(s * frame, len(x) - length)
    return x[s : s + length].copy()


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS pink (1/f) noise [n]."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return (x / (x.std() + 1e-12)).astype(np.float32)


def _level(x: np.ndarray, dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 1e-12
    return (x * (10 ** (dbfs / 20) / rms)).astype(np.float32)


def label_windows(truth: np.ndarray, cls: int, t0: float, t1: float, window_s: float, min_overlap: float):
    """Mark ``cls`` in each window of ``truth`` [W, C] that a call from ``t0`` to ``t1`` s overlaps enough.

    Enough: ``min_overlap`` s, or half the call for calls shorter than twice that.
    """
    for w in range(len(truth)):
        if min(t1, (w + 1) * window_s) - max(t0, w * window_s) >= min(min_overlap, (t1 - t0) / 2):
            truth[w, cls] = 1.0


def limit_peak(x: np.ndarray, peak: float = 0.99) -> None:
    """Scale ``x`` in place so that its largest magnitude is at most ``peak``."""
    top = float(np.abs(x).max()) if x.size else 0.0
    if top > peak:
        x *= peak / top


def compose(
    recordings: list[tuple[np.ndarray, int, str]],
    n_classes: int,
    n: int,
    *,
    sample_rate: int = 48000,
    duration_s: float = 60.0,
    window_s: float = 5.0,
    calls: tuple[int, int] = (2, 5),
    call_s: tuple[float, float] = (3.0, 12.0),
    call_dbfs: tuple[float, float] = (-32.0, -14.0),
    background_dbfs: tuple[float, float] = (-45.0, -32.0),
    min_overlap_s: float = 1.0,
    seed: int = 0,
    prefix: str = "sc",
) -> list[Soundscape]:
    """Compose ``n`` soundscapes from ``recordings``.

    Args:
        recordings: (audio float32 [samples] at ``sample_rate``, class index, name) per focal recording.
        n_classes: C, the width of the truth.
        n: number of soundscapes.
        sample_rate: rate of the audio in ``recordings`` and of the output.
        duration_s: soundscape length in seconds.
        window_s: window length of the truth.
        calls: (min, max) calls per soundscape, drawn uniformly (at most one per recording).
        call_s: (min, max) call segment length in seconds.
        call_dbfs: (min, max) RMS level of a call segment in dBFS.
        background_dbfs: (min, max) RMS level of the background in dBFS.
        min_overlap_s: seconds a call must overlap a window for the window to be labelled.
        seed: random seed.
        prefix: name prefix (``<prefix>_<i>``).

    Returns:
        ``n`` :class:`Soundscape` objects.
    """
    if not recordings:
        raise ValueError("compose needs at least one recording")
    rng = np.random.default_rng(seed)
    total = int(round(duration_s * sample_rate))
    n_win = int(round(duration_s / window_s))
    bands = [band_energy(a, sample_rate) for a, _, _ in recordings]
    piece = int(window_s * sample_rate)
    quiet = [
        _fade(quiet_stretch(a, b, piece), sample_rate) for (a, _, _), b in zip(recordings, bands, strict=True)
    ]
    out = []
    for i in range(n):
        k = int(rng.integers(calls[0], calls[1] + 1))
        chosen = rng.choice(len(recordings), size=min(k, len(recordings)), replace=False)
        others = [j for j in range(len(recordings)) if j not in set(chosen.tolist())]
        others = others or list(range(len(recordings)))
        bg = np.zeros(total, np.float32)
        for s in range(0, total, piece):
            bg[s : s + piece] = quiet[int(rng.choice(others))][: total - s]
        bg = _level(bg, float(rng.uniform(*background_dbfs))) + _level(
            pink_noise(total, rng), float(rng.uniform(*background_dbfs)) - 6.0
        )
        truth = np.zeros((n_win, n_classes), np.float32)
        events = []
        for j in chosen:
            audio, cls, name = recordings[int(j)]
            length = int(rng.uniform(*call_s) * sample_rate)
            seg = loudest_segment(audio, bands[int(j)], length, rng)
            seg = _fade(_level(seg, float(rng.uniform(*call_dbfs))), sample_rate)
            start = int(rng.integers(0, max(1, total - len(seg))))
            end = min(total, start + len(seg))
            bg[start:end] += seg[: end - start]
            t0, t1 = start / sample_rate, end / sample_rate
            label_windows(truth, int(cls), t0, t1, window_s, min_overlap_s)
            events.append((int(cls), t0, t1, name))
        limit_peak(bg)
        out.append(Soundscape(f"{prefix}_{i:03d}", bg, truth, events))
    return out


__all__ = [
    "Soundscape",
    "band_energy",
    "compose",
    "label_windows",
    "limit_peak",
    "loudest_segment",
    "pink_noise",
    "quiet_stretch",
]

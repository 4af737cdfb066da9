"""Seeded soundscapes composed over *real* field recordings (``embedkit evaluate --backgrounds DIR``).

The harder sibling of :func:`embedkit.evaluate.compose.compose`. The background of each one-minute soundscape
is real outdoor audio (wind, rain, insects, unlabelled birds: e.g. ``../shared/data/backgrounds/`` or
BirdCLEF's ``train_soundscapes/``): consecutive random stretches of randomly drawn background recordings,
each scaled to the same RMS, cross-faded over 50 ms, then set to a level drawn from ``background_dbfs``.
Calls (3-12 s around a focal recording's loudest bird-band part, as in ``compose``) are added at a
**call-to-background SNR** drawn uniformly from ``snr_db`` (default -6 to +12 dB): the RMS of the call
segment over the RMS of the background under it. Negative SNRs are faint calls the background masks; since a
call segment holds the pauses between phrases, its peaks stand above the background by more than its SNR.
Each further call starts, with probability ``overlap``, inside an already placed call, so several species
overlap. Truth as in ``compose`` (a call labels a window it overlaps by ``min_overlap_s``); the background is
unlabelled and may hold real calls of any species, so a window without inserted calls is *not* verified
negative in the field, only in this test's truth. Seeded: same inputs and seed, same audio and truth.
"""

from __future__ import annotations

import numpy as np

from embedkit.evaluate.compose import (
    Soundscape,
    _fade,
    _level,
    band_energy,
    label_windows,
    limit_peak,
    loudest_segment,
)

#: documented defaults of the real-background test
SNR_DB = (-6.0, 12.0)
CALLS = (3, 6)
OVERLAP = 0.35


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 1e-12


def field_background(backgrounds: list[np.ndarray], total: int, sample_rate: int, rng) -> np.ndarray:
    """``total`` samples of consecutive random stretches of random ``backgrounds`` (each unit RMS)."""
    out = np.zeros(total, np.float32)
    pos = 0
    while pos < total:
        b = backgrounds[int(rng.integers(len(backgrounds)))]
        want = total - pos
        if len(b) > want:
            s = int(rng.integers(0, len(b) - want + 1))
            piece = b[s : s + want]
        else:
            piece = b
        piece = _fade(piece / _rms(piece), sample_rate) if pos else piece / _rms(piece)
        out[pos : pos + len(piece)] += piece.astype(np.float32)
        pos += len(piece)
    return out


def _place(mix, bg, seg, events, overlap, snr_db, sample_rate, rng) -> tuple[int, int]:
    """Add ``seg`` to ``mix`` in place at a drawn start and SNR over ``bg``; returns (start, end) samples."""
    total = len(mix)
    if events and rng.random() < overlap:
        _, a0, a1, _ = events[int(rng.integers(len(events)))]
        start = int(rng.uniform(a0, a1) * sample_rate)
    else:
        start = int(rng.integers(0, max(1, total - len(seg))))
    start = min(start, max(0, total - len(seg)))
    end = min(total, start + len(seg))
    gain = _rms(bg[start:end]) * 10 ** (float(rng.uniform(*snr_db)) / 20) / _rms(seg)
    mix[start:end] += _fade((seg * gain).astype(np.float32), sample_rate)[: end - start]
    return start, end


def compose_field(
    recordings: list[tuple[np.ndarray, int, str]],
    backgrounds: list[np.ndarray],
    n_classes: int,
    n: int,
    *,
    sample_rate: int = 48000,
    duration_s: float = 60.0,
    window_s: float = 5.0,
    calls: tuple[int, int] = CALLS,
    call_s: tuple[float, float] = (3.0, 12.0),
    snr_db: tuple[float, float] = SNR_DB,
    background_dbfs: tuple[float, float] = (-40.0, -26.0),
    overlap: float = OVERLAP,
    min_overlap_s: float = 1.0,
    seed: int = 0,
    prefix: str = "field",
) -> list[Soundscape]:
    """Compose ``n`` soundscapes from focal ``recordings`` over real ``backgrounds``.

    Args:
        recordings: (audio float32 [samples] at ``sample_rate``, class index, name) per focal recording.
        backgrounds: background recordings, float32 [samples] each, at ``sample_rate``.
        n_classes: C, the width of the truth.
        n: number of soundscapes.
        sample_rate: rate of all audio in and out.
        duration_s: soundscape length in seconds.
        window_s: window length of the truth.
        call_s: (min, max) call segment length in seconds.
        min_overlap_s: seconds a call must overlap a window for the window to be labelled.
        calls: (min, max) calls per soundscape (at most one per recording).
        snr_db: (min, max) call-to-background SNR in dB.
        background_dbfs: (min, max) RMS level of the background in dBFS.
        overlap: probability that a call after the first starts inside an earlier call.
        seed: random seed.
        prefix: name prefix (``<prefix>_<i>``).

    Returns:
        ``n`` :class:`~embedkit.evaluate.compose.Soundscape` objects.
    """
    if not recordings or not backgrounds:
        raise ValueError("compose_field needs recordings and backgrounds")
    rng = np.random.default_rng(seed)
    total = int(round(duration_s * sample_rate))
    n_win = int(round(duration_s / window_s))
    bands = [band_energy(a, sample_rate) for a, _, _ in recordings]
    out = []
    for i in range(n):
        level = float(rng.uniform(*background_dbfs))
        bg = _level(field_background(backgrounds, total, sample_rate, rng), level)
        mix = bg.copy()
        k = int(rng.integers(calls[0], calls[1] + 1))
        truth = np.zeros((n_win, n_classes), np.float32)
        events: list[tuple[int, float, float, str]] = []
        for j in rng.choice(len(recordings), size=min(k, len(recordings)), replace=False):
            audio, cls, name = recordings[int(j)]
            seg = loudest_segment(audio, bands[int(j)], int(rng.uniform(*call_s) * sample_rate), rng)
            start, end = _place(mix, bg, seg, events, overlap, snr_db, sample_rate, rng)
            t0, t1 = start / sample_rate, end / sample_rate
            label_windows(truth, int(cls), t0, t1, window_s, min_overlap_s)
            events.append((int(cls), t0, t1, name))
        limit_peak(mix)
        out.append(Soundscape(f"{prefix}_{i:03d}", mix, truth, events))
    return out


__all__ = ["CALLS", "OVERLAP", "SNR_DB", "compose_field", "field_background"]

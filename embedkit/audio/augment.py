"""Seeded window augmentation: a clean window mixed with background audio at a drawn SNR (pure numpy).

What linear probes on frozen embeddings cannot do afterwards: hear the training call *under* wind, rain,
insects or other birds. :func:`augment_window` turns one clean window into one variant:

1. optional **time shift** (the content moves by up to ``shift_s`` seconds inside the window, zero fill);
2. optional **mixup** with another window (the caller picks it, e.g. of another species, and unites the
   labels): scaled to ``mix_db`` (drawn) relative to the window's RMS and added;
3. a **background crop** (a random stretch of a random background recording) scaled so that the
   window-to-background SNR (RMS over RMS, in dB) is drawn uniformly from ``snr_db``, and added;
4. optional **gain** (drawn in dB), then the peak limited to 0.99.

Everything random comes from the ``rng`` passed in, so a variant is a pure function of its inputs and seed
(extraction seeds one generator per file and window: reruns and resumed runs give the same audio).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: a window quieter than this RMS is treated as silent (its SNR is undefined; the background is not added)
SILENT_RMS = 1e-6


@dataclass(frozen=True)
class Augment:
    """How a variant is made (see the module docstring).

    Attributes:
        snr_db: (low, high) window-to-background SNR in dB, drawn uniformly.
        gain_db: (low, high) gain applied last, in dB (``(0, 0)``: none).
        shift_s: largest time shift in seconds, either direction (0: none).
        mixup: probability of mixing in another window first (needs one from the caller).
        mix_db: (low, high) level of the mixed-in window relative to the window's RMS, in dB.
    """

    snr_db: tuple[float, float] = (-5.0, 10.0)
    gain_db: tuple[float, float] = (0.0, 0.0)
    shift_s: float = 0.0
    mixup: float = 0.0
    mix_db: tuple[float, float] = field(default=(-6.0, 0.0))

    def __post_init__(self):
        for name in ("snr_db", "gain_db", "mix_db"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"{name}: low {lo} > high {hi}")
        if self.shift_s < 0 or not 0.0 <= self.mixup <= 1.0:
            raise ValueError(f"shift_s must be >= 0 and mixup in [0, 1], got {self.shift_s}, {self.mixup}")


def rms(x: np.ndarray) -> float:
    """Root mean square of ``x`` (float64 accumulation)."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def snr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    """SNR in dB of ``signal`` over ``noise``: 20 log10 of their RMS ratio."""
    return 20.0 * np.log10(rms(signal) / max(rms(noise), 1e-30))


def background_crop(background: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random stretch of ``n`` samples of ``background`` [S] (a shorter recording is tiled)."""
    b = np.asarray(background, np.float32)
    if len(b) == 0:
        raise ValueError("empty background recording")
    if len(b) < n:
        b = np.tile(b, n // len(b) + 1)
    s = int(rng.integers(0, len(b) - n + 1))
    return b[s : s + n]


def scale_to_snr(signal: np.ndarray, noise: np.ndarray, db: float) -> np.ndarray:
    """``noise`` scaled so that ``snr_db(signal, scaled) == db`` (zeros when either is silent)."""
    s, r = rms(signal), rms(noise)
    if s < SILENT_RMS or r < SILENT_RMS:
        return np.zeros_like(noise, dtype=np.float32)
    return (noise * (s / r * 10.0 ** (-db / 20.0))).astype(np.float32)


def time_shift(x: np.ndarray, shift: int) -> np.ndarray:
    """``x`` [S] moved by ``shift`` samples (positive: later), zero fill, same length."""
    if shift == 0:
        return x.copy()
    out = np.zeros_like(x)
    if shift > 0:
        out[shift:] = x[: len(x) - shift]
    else:
        out[:shift] = x[-shift:]
    return out


def augment_window(
    x: np.ndarray,
    backgrounds: Sequence[np.ndarray],
    rng: np.random.Generator,
    aug: Augment = Augment(),
    sample_rate: int = 48000,
    other: np.ndarray | None = None,
) -> tuple[np.ndarray, bool]:
    """One augmented variant of window ``x``.

    Args:
        x: clean window float32 [S].
        backgrounds: background recordings float32 [S_i] at ``sample_rate`` (one is drawn).
        rng: random generator (all draws come from it, in a fixed order).
        aug: what to do.
        sample_rate: rate of ``x`` and the backgrounds (for ``shift_s``).
        other: a window [S] to mix in with probability ``aug.mixup`` (None: no mixup).

    Returns:
        ``(variant float32 [S], whether `other` was mixed in)``.
    """
    n = len(x)
    y = np.asarray(x, np.float32)
    if aug.shift_s > 0:
        m = int(round(aug.shift_s * sample_rate))
        y = time_shift(y, int(rng.integers(-m, m + 1)))
    mixed = other is not None and aug.mixup > 0 and rng.random() < aug.mixup
    if mixed:
        o = np.asarray(other, np.float32)[:n]
        o = np.pad(o, (0, n - len(o)))
        y = y + scale_to_snr(y, o, -float(rng.uniform(*aug.mix_db)))
    if backgrounds:
        b = backgrounds[int(rng.integers(len(backgrounds)))]
        crop = background_crop(b, n, rng)
        y = y + scale_to_snr(y, crop, float(rng.uniform(*aug.snr_db)))
    if aug.gain_db != (0.0, 0.0):
        y = y * 10.0 ** (float(rng.uniform(*aug.gain_db)) / 20.0)
    peak = float(np.abs(y).max()) if n else 0.0
    if peak > 0.99:
        y = y * (0.99 / peak)
    return y.astype(np.float32), mixed


__all__ = [
    "Augment",
    "augment_window",
    "background_crop",
    "rms",
    "scale_to_snr",
    "snr_db",
    "time_shift",
]

"""Procedural animal calls for the synthetic demo dataset (:mod:`embedkit.demo.data`).

Each species gets a parameter dict from :func:`species_params`, drawn once; :func:`synth_call` renders one
call (a phrase of about 0.6-3 s) with small per-call variation (pitch ±5 %, duration ±15 %). Families:
FM sweeps (up/down, linear or exponential), trills (AM-pulsed tone), harmonic stacks with vibrato, click
trains, insect-like band-passed noise buzzes, frog-like pulsed low croaks and mammal-like howls.
All synthesis is vectorised numpy (loops run over harmonics or notes only, never over samples).
"""

from __future__ import annotations

import numpy as np

SR = 32000
#: Call families, in the order species are assigned to them (round robin), so that even a small
#: demo covers all four classes.
FAMILIES = ("upsweep", "croak", "trill", "buzz", "harmonic", "howl", "downsweep", "pulses")
CLASS_OF = {"upsweep": "Aves", "downsweep": "Aves", "trill": "Aves", "harmonic": "Aves", "pulses": "Aves",
            "croak": "Amphibia", "buzz": "Insecta", "howl": "Mammalia"}
#: Range (Hz) of each family's characteristic frequency; species of a family split it between them.
_BANDS = {"upsweep": (1500, 7000), "downsweep": (1500, 7000), "trill": (2000, 8000),
          "harmonic": (1000, 3200), "pulses": (1500, 7000), "buzz": (3000, 9500), "croak": (150, 700),
          "howl": (250, 900)}
_MAX_F = 0.45 * SR


def _time(n: int) -> np.ndarray:
    """Sample times in seconds, float64 [n]."""
    return np.arange(n) / SR


def _envelope(n: int, ramp: float = 0.1) -> np.ndarray:
    """Tukey envelope: raised-cosine ramps of ``ramp * n`` samples at both ends, float64 [n]."""
    r = max(1, min(n // 2, int(n * ramp)))
    env = np.ones(n)
    up = 0.5 - 0.5 * np.cos(np.pi * np.arange(r) / r)
    env[:r] = up
    env[n - r:] = np.minimum(env[n - r:], up[::-1])
    return env


def _stack(freq: np.ndarray, n_harm: int, rolloff: float) -> np.ndarray:
    """Harmonic stack following an instantaneous frequency contour.

    Args:
        freq: fundamental frequency in Hz per sample, float64 [n].
        n_harm: number of harmonics (1 = pure tone); those above ~14 kHz are dropped.
        rolloff: amplitude ratio between consecutive harmonics.

    Returns:
        float64 [n].
    """
    phase = 2 * np.pi * np.cumsum(freq) / SR
    out = np.sin(phase)
    for h in range(2, n_harm + 1):
        if h * freq.max() > _MAX_F:
            break
        out += rolloff ** (h - 1) * np.sin(h * phase)
    return out


def _repeat(note: np.ndarray, n_notes: int, gap: int) -> np.ndarray:
    """``n_notes`` copies of ``note`` separated by ``gap`` silent samples, float64 [n_notes*(len+gap)-gap]."""
    unit = np.concatenate([note, np.zeros(gap)])
    return np.tile(unit, n_notes)[: n_notes * len(unit) - gap]


def _sweep(p: dict, pitch: float, stretch: float, rng: np.random.Generator) -> np.ndarray:
    n = int(p["note_s"] * stretch * SR)
    lo, hi = p["fc"] * pitch / np.sqrt(p["ratio"]), p["fc"] * pitch * np.sqrt(p["ratio"])
    f0, f1 = (lo, hi) if p["family"] == "upsweep" else (hi, lo)
    u = np.linspace(0.0, 1.0, n)
    freq = f0 * (f1 / f0) ** u if p["exp"] else f0 + (f1 - f0) * u
    note = _stack(freq, p["n_harm"], 0.3) * _envelope(n, 0.2)
    return _repeat(note, p["n_notes"], int(p["gap_s"] * stretch * SR))


def _trill(p: dict, pitch: float, stretch: float, rng: np.random.Generator) -> np.ndarray:
    n = int(p["dur_s"] * stretch * SR)
    t = _time(n)
    freq = p["fc"] * pitch * (1 + p["drift"] * t / t[-1])
    am = (0.5 - 0.5 * np.cos(2 * np.pi * p["pulse_hz"] * t)) ** p["sharp"]
    return _stack(freq, 2, 0.25) * am * _envelope(n, 0.1)


def _harmonic(p: dict, pitch: float, stretch: float, rng: np.random.Generator) -> np.ndarray:
    n = int(p["dur_s"] * stretch * SR)
    t = _time(n)
    freq = p["fc"] * pitch * (1 + p["vib_depth"] * np.sin(2 * np.pi * p["vib_hz"] * t))
    freq *= 1 + p["glide"] * t / t[-1]
    return _stack(freq, p["n_harm"], p["rolloff"]) * _envelope(n, 0.15)


def _pulses(p: dict, pitch: float, stretch: float, rng: np.random.Generator) -> np.ndarray:
    n = int(p["dur_s"] * stretch * SR)
    onsets = np.arange(0.0, n - 1, SR / p["pulse_hz"])
    onsets = np.clip(onsets + rng.normal(0, 0.04 * SR / p["pulse_hz"], len(onsets)), 0, n - 1)
    tk = _time(int(5 * p["decay_s"] * SR))
    click = np.exp(-tk / p["decay_s"]) * np.sin(2 * np.pi * p["fc"] * pitch * tk)
    out = np.zeros(n + len(click))
    idx = onsets.astype(int)[:, None] + np.arange(len(click))  # [clicks, click samples]
    np.add.at(out, idx, rng.uniform(0.6, 1.0, (len(onsets), 1)) * click)
    return out[:n]


def _buzz(p: dict, pitch: float, stretch: float, rng: np.random.Generator) -> np.ndarray:
    n = int(p["dur_s"] * stretch * SR)
    nfft = 1 << (n - 1).bit_length()  # power of two: pocketfft is slow on lengths with large prime factors
    spec = np.fft.rfft(rng.standard_normal(nfft))
    f = np.maximum(np.fft.rfftfreq(nfft, 1 / SR), 1.0)
    band = np.fft.irfft(spec * np.exp(-0.5 * (np.log(f / (p["fc"] * pitch)) / p["bw"]) ** 2), nfft)[:n]
    am = 1 - p["am_depth"] * (0.5 + 0.5 * np.sin(2 * np.pi * p["am_hz"] * _time(n)))
    return band * am * _envelope(n, 0.05)


def _croak(p: dict, pitch: float, stretch: float, rng: np.random.Generator) -> np.ndarray:
    n = int(p["note_s"] * stretch * SR)
    t = _time(n)
    freq = p["fc"] * pitch * (1 - 0.08 * t / t[-1])
    am = (0.5 - 0.5 * np.cos(2 * np.pi * p["pulse_hz"] * t)) ** 2
    note = _stack(freq, p["n_harm"], p["rolloff"]) * am * _envelope(n, 0.1)
    return _repeat(note, p["n_notes"], int(p["gap_s"] * stretch * SR))


def _howl(p: dict, pitch: float, stretch: float, rng: np.random.Generator) -> np.ndarray:
    n = int(p["dur_s"] * stretch * SR)
    t = _time(n)
    contour = 1 + (p["rise"] - 1) * np.sin(np.pi * t / t[-1])
    freq = p["fc"] * pitch * contour * (1 + 0.015 * np.sin(2 * np.pi * 5 * t))
    return _stack(freq, p["n_harm"], p["rolloff"]) * _envelope(n, 0.25)


_RENDER = {"upsweep": _sweep, "downsweep": _sweep, "trill": _trill, "harmonic": _harmonic,
           "pulses": _pulses, "buzz": _buzz, "croak": _croak, "howl": _howl}


def species_params(family: str, k: int, n_in_family: int, rng: np.random.Generator) -> dict:
    """Draw the call parameters of one species.

    The family's frequency range is split into ``n_in_family`` log-spaced slots and species ``k`` takes a
    random frequency inside slot ``k``, so species of one family are similar but distinguishable.

    Args:
        family: one of :data:`FAMILIES`.
        k: index of this species within its family.
        n_in_family: number of species of this family in the dataset.
        rng: generator the parameters are drawn from.

    Returns:
        dict with ``family``, ``fc`` (Hz), ``rate`` (calls per second in focal clips) and the family's
        shape parameters. Every call lasts at least ~0.6 s before the ±15 % duration variation.
    """
    lo, hi = _BANDS[family]
    p: dict = {"family": family, "fc": lo * (hi / lo) ** ((k + rng.uniform(0.25, 0.75)) / n_in_family),
               "rate": rng.uniform(0.25, 0.6)}
    if family in ("upsweep", "downsweep"):
        p.update(ratio=rng.uniform(1.4, 2.2), note_s=rng.uniform(0.08, 0.3), gap_s=rng.uniform(0.05, 0.2),
                 exp=bool(rng.random() < 0.5), n_harm=int(rng.integers(1, 3)))
        p["n_notes"] = int(np.ceil(0.7 / (p["note_s"] + p["gap_s"]))) + int(rng.integers(0, 3))
    elif family == "trill":
        p.update(dur_s=rng.uniform(0.7, 2.0), pulse_hz=rng.uniform(12, 40), sharp=rng.uniform(1, 4),
                 drift=rng.uniform(-0.12, 0.12))
    elif family == "harmonic":
        p.update(dur_s=rng.uniform(0.7, 1.4), n_harm=int(rng.integers(2, 6)), rolloff=rng.uniform(0.4, 0.8),
                 vib_hz=rng.uniform(4, 9), vib_depth=rng.uniform(0.02, 0.05), glide=rng.uniform(-0.15, 0.15))
    elif family == "pulses":
        p.update(dur_s=rng.uniform(0.7, 2.0), pulse_hz=rng.uniform(6, 25), decay_s=rng.uniform(0.001, 0.004))
    elif family == "buzz":
        p.update(dur_s=rng.uniform(0.9, 3.0), bw=rng.uniform(0.08, 0.25), am_hz=rng.uniform(30, 150),
                 am_depth=rng.uniform(0.3, 0.9))
    elif family == "croak":
        p.update(note_s=rng.uniform(0.15, 0.45), gap_s=rng.uniform(0.1, 0.3), n_harm=int(rng.integers(4, 9)),
                 rolloff=rng.uniform(0.6, 0.85), pulse_hz=rng.uniform(15, 50))
        p["n_notes"] = int(np.ceil(0.7 / (p["note_s"] + p["gap_s"]))) + int(rng.integers(0, 2))
    elif family == "howl":
        p.update(dur_s=rng.uniform(0.8, 2.0), rise=rng.uniform(1.2, 1.6), n_harm=int(rng.integers(3, 7)),
                 rolloff=rng.uniform(0.5, 0.75))
    else:
        raise ValueError(f"unknown call family {family!r}; choose from {', '.join(FAMILIES)}")
    return p


def synth_call(p: dict, rng: np.random.Generator) -> np.ndarray:
    """Render one call of a species with random pitch (±5 %) and duration (±15 %) variation.

    Args:
        p: parameters from :func:`species_params`.
        rng: generator for the per-call variation (and the noise of buzzes / click jitter).

    Returns:
        float32 [samples] at :data:`SR`, peak 1.
    """
    pitch, stretch = 1 + rng.uniform(-0.05, 0.05), 1 + rng.uniform(-0.15, 0.15)
    x = _RENDER[p["family"]](p, pitch, stretch, rng)
    return (x / max(float(np.abs(x).max()), 1e-9)).astype(np.float32)

"""The soundscape view of ``embedkit report``: a log-mel spectrogram with per-window probabilities below.

:func:`log_mel` is plain numpy (no librosa), also used by the search pages' thumbnails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.report.plots import _plt, _save


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters on the HTK mel scale, each normalised to unit sum; float32 [n_mels, n_fft//2+1]."""
    mel = 2595.0 * np.log10(1.0 + np.array([fmin, fmax]) / 700.0)
    hz = 700.0 * (10 ** (np.linspace(mel[0], mel[1], n_mels + 2) / 2595.0) - 1.0)
    f = np.fft.rfftfreq(n_fft, 1.0 / sr)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    w = np.maximum(0.0, np.minimum((f - lo) / (mid - lo), (hi - f) / (hi - mid)))
    return (w / np.maximum(w.sum(1, keepdims=True), 1e-12)).astype(np.float32)


def log_mel(x: np.ndarray, sr: int, n_fft: int = 2048, hop: int = 320, n_mels: int = 128,
            fmin: float = 50.0, fmax: float | None = None) -> np.ndarray:
    """Log-mel power spectrogram (dB) of mono audio.

    Args:
        x: float32 [n] samples.
        sr: sample rate in Hz.
        n_fft: FFT length (Hann window).
        hop: samples between frames.
        n_mels: mel bands.
        fmin: lowest band edge in Hz.
        fmax: highest band edge in Hz (default: sr / 2).

    Returns:
        float32 [n_mels, frames], low frequencies first.
    """
    x = np.pad(np.asarray(x, np.float32), (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    fb = mel_filterbank(sr, n_fft, n_mels, fmin, fmax or sr / 2)
    out = np.empty((n_mels, len(frames)), np.float32)
    win = np.hanning(n_fft).astype(np.float32)
    for s in range(0, len(frames), 1024):  # bounded memory for long files
        spec = np.abs(np.fft.rfft(frames[s : s + 1024] * win, axis=1)) ** 2
        out[:, s : s + 1024] = (spec @ fb.T).T
    return 10.0 * np.log10(out + 1e-10)


def _mel_ticks(ax, n_mels: int, fmin: float, fmax: float) -> None:
    m0, m1 = (2595.0 * np.log10(1.0 + f / 700.0) for f in (fmin, fmax))
    ticks = [f for f in (250, 500, 1000, 2000, 4000, 8000, 16000) if fmin < f <= fmax]
    pos = [(2595.0 * np.log10(1.0 + f / 700.0) - m0) / (m1 - m0) * n_mels for f in ticks]
    ax.set_yticks(pos, [f"{f / 1000:g}k" if f >= 1000 else str(f) for f in ticks])


def plot_soundscape(audio: np.ndarray, sr: int, probs: pd.DataFrame | None, truth: pd.DataFrame | None,
                    names: dict[str, str], path: str | Path, title: str = "", top: int = 8) -> Path:
    """Log-mel spectrogram of one soundscape with per-window species probabilities as a heat strip below.

    Args:
        audio: float32 [n] mono samples.
        sr: sample rate.
        probs: [W windows, C labels] probabilities indexed by window start in seconds, or ``None``.
        truth: same shape (0/1) where known, or ``None``; outlined cells in the strip.
        names: label → common name (row captions).
        path: PNG to write.
        title: figure title.
        top: species rows shown (highest peak probability), plus any species present in ``truth``.
    """
    plt = _plt()
    dur = len(audio) / sr
    db = log_mel(audio, sr)
    rows = _strip_rows(probs, truth, top)
    h_strip = 0.32 * max(len(rows), 1) + 0.6
    fig, axes = plt.subplots(2, 2, figsize=(13.5, 3.6 + h_strip), sharex="col",
                             gridspec_kw={"height_ratios": [3.6, h_strip], "width_ratios": [60, 1],
                                          "hspace": 0.16, "wspace": 0.02})
    (ax_s, cax_s), (ax_p, cax_p) = axes
    _draw_spectrogram(fig, ax_s, cax_s, db, sr, dur, title)
    if rows:
        _draw_strip(fig, ax_s, ax_p, cax_p, probs, truth, rows, names, top)
    else:
        ax_p.text(0.5, 0.5, "no predictions for this file", ha="center", va="center",
                  transform=ax_p.transAxes)
        ax_p.set_yticks([])
        cax_p.axis("off")
    ax_p.set_xlabel("time (s); one column per 5 s window")
    ax_p.set_xlim(0, dur)
    return _save(fig, path)


def _strip_rows(probs: pd.DataFrame | None, truth: pd.DataFrame | None, top: int) -> list[str]:
    """Labels of the strip's rows: the ``top`` highest peaks plus every truly present one, by peak."""
    if probs is None or not len(probs.columns):
        return []
    peak = probs.max(axis=0).sort_values(ascending=False)
    present = [] if truth is None else [c for c in truth.columns if truth[c].max() > 0.5]
    rows = list(dict.fromkeys(list(peak.index[:top]) + present))
    rows.sort(key=lambda c: -peak.get(c, 0.0))
    return rows


def _draw_spectrogram(fig, ax, cax, db: np.ndarray, sr: int, dur: float, title: str) -> None:
    """The log-mel image db [n_mels, frames] over 0..``dur`` s with mel-scale ticks and a dB colour bar."""
    vmax = float(db.max())
    im = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", extent=(0, dur, 0, db.shape[0]),
                   vmin=max(float(np.percentile(db, 5)), vmax - 80), vmax=vmax, interpolation="nearest")
    _mel_ticks(ax, db.shape[0], 50.0, sr / 2)
    ax.set_ylabel("frequency (Hz, mel scale)")
    fig.colorbar(im, cax=cax, label="power (dB, relative)")
    ax.set_title(title, fontsize=11)


def _draw_strip(fig, ax_s, ax_p, cax_p, probs: pd.DataFrame, truth: pd.DataFrame | None, rows: list[str],
                names: dict[str, str], top: int) -> None:
    """Window lines on the spectrogram ``ax_s`` and the heat strip [rows, W] on ``ax_p``, truth outlined."""
    from matplotlib.patches import Patch, Rectangle

    starts = probs.index.to_numpy(float)
    step = float(np.median(np.diff(starts))) if len(starts) > 1 else 5.0
    for s in starts[1:]:
        ax_s.axvline(s, color="w", lw=0.5, alpha=0.5)
    m = probs[rows].to_numpy(float).T
    hm = ax_p.imshow(m, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest",
                     extent=(starts[0], starts[-1] + step, len(rows), 0))
    for i, c in enumerate(rows):
        for j, s in enumerate(starts):
            if m[i, j] >= 0.1:
                ax_p.text(s + step / 2, i + 0.5, "1" if m[i, j] >= 0.995 else f"{m[i, j]:.2f}"[1:],
                          ha="center", va="center", fontsize=7, color="k" if m[i, j] > 0.6 else "w")
            if truth is not None and c in truth.columns and truth[c].iloc[j] > 0.5:
                ax_p.add_patch(Rectangle((s + 0.12, i + 0.08), step - 0.24, 0.84, fill=False,
                                         ec="#FF1493", lw=2.4))
    ax_p.set_yticks(np.arange(len(rows)) + 0.5,
                    [f"{c}  {names.get(c, '')}"[:30] for c in rows], fontsize=8)
    fig.colorbar(hm, cax=cax_p, label="probability")
    what = f"probability per 5 s window: the {min(top, len(rows))} species with the highest peaks"
    what += (" and every truly present one" if truth is not None else "") + " (values shown from .10)"
    if truth is not None:
        ax_p.legend(handles=[Patch(fill=False, ec="#FF1493", lw=2.4, label="species present (truth)")],
                    loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False,
                    borderaxespad=0.1)
    ax_p.set_title(what, fontsize=9, loc="left")

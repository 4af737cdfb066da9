"""Figures of ``embedkit report`` (matplotlib, Agg backend): training data, CV scores, a soundscape view.

Every ``plot_*`` function takes plain tables/arrays, writes one PNG and returns its path; nothing here reads
model folders (that is :mod:`embedkit.report`). Classes are coloured by taxon class (``taxonomy.csv``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TAXON_COLORS = {"Aves": "#4C72B0", "Amphibia": "#55A868", "Insecta": "#DD8452", "Mammalia": "#C44E52",
                "Reptilia": "#8172B3", "unknown": "#8C8C8C"}
DPI = 120


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _color(taxon: str) -> str:
    return TAXON_COLORS.get(taxon, TAXON_COLORS["unknown"])


def _legend_taxa(fig, taxa, y: float) -> None:
    """One row of taxon-class colour patches centred at figure height ``y`` (figure coordinates)."""
    from matplotlib.patches import Patch

    seen = [t for t in TAXON_COLORS if t in set(taxa)] + sorted(set(taxa) - set(TAXON_COLORS))
    fig.legend(handles=[Patch(color=_color(t), label=t) for t in seen], title=None, ncol=len(seen),
               loc="center", bbox_to_anchor=(0.5, y), fontsize=9, frameon=False, handlelength=1.2,
               columnspacing=1.2)


def _class_axis(ax, labels: list[str]) -> None:
    """X ticks: class labels when they fit (<= 250 classes, figures widen with the count), else a count."""
    ax.set_xlim(-0.6, len(labels) - 0.4)
    if len(labels) <= 250:
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8 if len(labels) <= 40 else 6)
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"{len(labels)} classes (labels omitted; see cv_per_class.csv)")


def _log_counts(ax, top: float) -> None:
    """Log y axis for counts from 1 (bars of 0 are left out) with plain-number tick labels."""
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    ax.set_ylim(0.7, max(2.0, top) * 1.6)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    _plt().close(fig)
    return path


def plot_training_data(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Recordings and windows per class (log scale, sorted) and totals per taxon class.

    Args:
        table: one row per class with columns ``label``, ``taxon``, ``n_recordings``, ``n_windows``.
        path: PNG to write.
        title: suptitle.
    """
    plt = _plt()
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    t = table.sort_values(["n_recordings", "n_windows"], ascending=False).reset_index(drop=True)
    n = len(t)
    w_left, w_right = max(5.5, 0.11 * n), 3.2
    fig = plt.figure(figsize=(w_left + w_right + 1.8, 7.0))
    gs = fig.add_gridspec(2, 2, width_ratios=[w_left, w_right], hspace=0.08,
                          wspace=1.5 / ((w_left + w_right) / 2))
    colors = [_color(x) for x in t["taxon"]]
    ax1 = fig.add_subplot(gs[0, 0])
    ax2 = fig.add_subplot(gs[1, 0], sharex=ax1)
    for ax, col, what in ((ax1, "n_recordings", "recordings"), (ax2, "n_windows", "5 s windows")):
        v = t[col].to_numpy(float)
        ax.bar(range(n), np.where(v > 0, v, np.nan), color=colors, width=0.8)
        _log_counts(ax, v.max())
        ax.set_ylabel(f"{what} per class (log)")
        ax.grid(axis="y", which="major", alpha=0.3)
        med = float(np.median(v))
        ax.axhline(med, color="k", ls="--", lw=0.8)
        ax.text(n - 0.5, med * 1.08, f"median {med:g}", ha="right", va="bottom", fontsize=8)
    ax1.tick_params(labelbottom=False)
    _class_axis(ax2, list(t["label"]))
    few = int((t["n_recordings"] < 5).sum())
    ax1.set_title(
        f"{n} classes, sorted by recordings; {few} with fewer than 5 recordings"
        + (f", {int((t['n_recordings'] == 0).sum())} with none" if (t["n_recordings"] == 0).any() else ""),
        fontsize=10,
    )
    _legend_taxa(fig, t["taxon"], 0.935)
    axt = fig.add_subplot(gs[:, 1])
    g = t.groupby("taxon").agg(classes=("label", "size"), rec=("n_recordings", "sum"),
                               win=("n_windows", "sum"))
    g = g.sort_values("win")
    y = np.arange(len(g))
    axt.barh(y, g["win"], color=[_color(x) for x in g.index])
    axt.set_yticks(y, [f"{k}\n{r.classes} classes\n{r.rec:,} rec." for k, r in g.iterrows()], fontsize=8)
    axt.set_xlabel("5 s windows per taxon class")
    axt.xaxis.set_major_locator(MaxNLocator(3))
    axt.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    axt.set_xlim(0, float(g["win"].max()) * 1.25)
    for yi, w in zip(y, g["win"], strict=True):
        axt.text(w + 0.02 * float(g["win"].max()), yi, f"{w:,}", va="center", fontsize=8)
    axt.set_title("by taxon class", fontsize=10)
    fig.suptitle(title or "Training data", fontsize=12, y=0.99)
    return _save(fig, path)


def plot_cv_per_class(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Per-class out-of-fold ROC-AUC and AP, sorted by ROC-AUC, over the class's training recordings.

    Args:
        table: one row per class with ``label``, ``taxon``, ``roc_auc``, ``ap``, ``n_recordings``,
            ``n_windows`` (NaN scores: no positives, drawn as grey crosses).
        path: PNG to write.
        title: suptitle (e.g. the model name and its macro scores).
    """
    plt = _plt()
    t = table.sort_values(["roc_auc", "ap"], ascending=False, na_position="last").reset_index(drop=True)
    n = len(t)
    fig, axes = plt.subplots(3, 1, figsize=(max(10.0, 0.11 * n + 2.5), 8.5), sharex=True,
                             gridspec_kw={"height_ratios": [3, 3, 2], "hspace": 0.1})
    colors = [_color(x) for x in t["taxon"]]
    x = np.arange(n)
    prevalence = t["n_windows"].to_numpy(float) / max(float(t["n_windows"].sum()), 1.0)
    for ax, col, name in ((axes[0], "roc_auc", "ROC-AUC"), (axes[1], "ap", "average precision")):
        v = t[col].to_numpy(float)
        ax.bar(x, v, color=colors, width=0.8)
        missing = np.isnan(v)
        lo = 0.0
        if col == "roc_auc":
            ax.axhline(0.5, color="0.5", ls=":", lw=0.9, label="chance 0.5")
            lo = min(0.4, np.nanmin(v) - 0.05) if not missing.all() else 0.0
        else:
            ax.plot(x, prevalence, "_", color="0.2", ms=7, mew=1.5,
                    label="chance: the class's\nshare of windows")
        ax.set_ylim(lo, 1.0)
        if missing.any():
            ax.plot(x[missing], np.full(missing.sum(), lo + 0.03), "x", color="0.3",
                    label="no score\n(no positives)")
        if not missing.all():
            ax.axhline(np.nanmean(v), color="k", ls="--", lw=0.9, label=f"macro mean\n{np.nanmean(v):.3f}")
        ax.set_ylabel(f"out-of-fold\n{name}")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    v = t["n_recordings"].to_numpy(float)
    axes[2].bar(x, np.where(v > 0, v, np.nan), color=colors, width=0.8)
    _log_counts(axes[2], v.max())
    axes[2].set_ylabel("training\nrecordings (log)")
    axes[2].grid(axis="y", alpha=0.3)
    _class_axis(axes[2], list(t["label"]))
    fig.subplots_adjust(top=0.88)
    _legend_taxa(fig, t["taxon"], 0.905)
    sub = "classes sorted by ROC-AUC, coloured by taxon class"
    fig.suptitle(f"{title or 'Cross-validation per class'}\n{sub}", fontsize=11, y=0.985)
    return _save(fig, path)


def plot_head_scores(scores: dict[str, dict[str, float]], path: str | Path) -> Path:
    """Cross-validation scores of each saved model side by side (grouped bars with values).

    Args:
        scores: model name → {metric → value}; metrics ``roc_auc``, ``cmap_pad5``, ``macro_ap``.
        path: PNG to write.
    """
    plt = _plt()
    metrics = [("roc_auc", "ROC-AUC\n(competition metric)"), ("cmap_pad5", "padded cmAP\n(BirdCLEF 2023)"),
               ("macro_ap", "macro AP")]
    names = list(scores)
    fig, ax = plt.subplots(figsize=(max(6.5, 1.2 * len(names) * len(metrics) + 2), 4.2))
    width = 0.8 / max(1, len(names))
    cmap = plt.get_cmap("tab10")
    for i, name in enumerate(names):
        vals = [scores[name].get(m, np.nan) for m, _ in metrics]
        xs = np.arange(len(metrics)) + (i - (len(names) - 1) / 2) * width
        bars = ax.bar(xs, vals, width * 0.92, label=name, color=cmap(i % 10))
        ax.bar_label(bars, labels=[f"{v:.3f}" if np.isfinite(v) else "n/a" for v in vals], fontsize=8,
                     padding=2)
    ax.set_xticks(range(len(metrics)), [label for _, label in metrics])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("out-of-fold score")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="model", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title("Cross-validation score of each model (grouped folds)", fontsize=11)
    return _save(fig, path)


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
    from matplotlib.patches import Patch, Rectangle

    dur = len(audio) / sr
    db = log_mel(audio, sr)
    rows: list[str] = []
    if probs is not None and len(probs.columns):
        peak = probs.max(axis=0).sort_values(ascending=False)
        present = [] if truth is None else [c for c in truth.columns if truth[c].max() > 0.5]
        rows = list(dict.fromkeys(list(peak.index[:top]) + present))
        rows.sort(key=lambda c: -peak.get(c, 0.0))
    h_strip = 0.32 * max(len(rows), 1) + 0.6
    fig, axes = plt.subplots(2, 2, figsize=(13.5, 3.6 + h_strip), sharex="col",
                             gridspec_kw={"height_ratios": [3.6, h_strip], "width_ratios": [60, 1],
                                          "hspace": 0.16, "wspace": 0.02})
    (ax_s, cax_s), (ax_p, cax_p) = axes
    vmax = float(db.max())
    im = ax_s.imshow(db, origin="lower", aspect="auto", cmap="magma", extent=(0, dur, 0, db.shape[0]),
                     vmin=max(float(np.percentile(db, 5)), vmax - 80), vmax=vmax, interpolation="nearest")
    _mel_ticks(ax_s, db.shape[0], 50.0, sr / 2)
    ax_s.set_ylabel("frequency (Hz, mel scale)")
    fig.colorbar(im, cax=cax_s, label="power (dB, relative)")
    ax_s.set_title(title, fontsize=11)
    if rows:
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
    else:
        ax_p.text(0.5, 0.5, "no predictions for this file", ha="center", va="center",
                  transform=ax_p.transAxes)
        ax_p.set_yticks([])
        cax_p.axis("off")
    ax_p.set_xlabel("time (s); one column per 5 s window")
    ax_p.set_xlim(0, dur)
    return _save(fig, path)

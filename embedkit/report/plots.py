"""Figures of ``embedkit report`` (matplotlib, Agg backend): training data, CV scores, a soundscape view.

Every ``plot_*`` function takes plain tables/arrays, writes one PNG and returns its path; nothing here reads
model folders (that is :mod:`embedkit.report.page`). Classes are coloured by taxon class (``taxonomy.csv``).
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

"""Which windows of a focal recording a head trains on, and how much each weighs (issue 23, item 4).

A focal recording is labelled as a whole, but not every 5 s window holds its call: the silent ones teach the
head that background is the species. Two switches of :class:`~embedkit.config.FitConfig` use one ranking of a
recording's windows:

* ``window_keep`` (share s < 1): only the best ``ceil(s * n)`` of a recording's n windows (at least one) are
  trained on; the others get weight 0 and are left out of the fit (never out of the CV scores).
* ``confidence_weight`` (share b): a kept window weighs ``1 - b + b * r``, r its rank (0..1) within the
  recording.

The ranking score (``window_score``) comes from the backbone's own classifier:

* ``primary``: its logit of the recording's primary label. Only for labels it knows; windows of the others
  keep weight 1 (and all stay).
* ``any``: its highest logit over all of its classes, a detector of "something it recognises" for every
  label.
* ``other``: its highest logit over the classes that no label of the data maps to: what the backbone offers a
  species it does not know (BirdCLEF's amphibians, insects, mammals), so ``embedkit evaluate``'s head-only
  column measures it honestly on species the backbone does know.

Rows with no positive label (explicit negatives of ``--extra-labels``) are never ranked: weight 1, kept.
"""

from __future__ import annotations

import math

import numpy as np

#: ``window_score`` values
SCORES = ("primary", "any", "other")


def needs_detector(cfg) -> bool:
    """Whether the fit ranks windows by ``any``/``other`` (the full logits are needed, not the labels')."""
    ranks = cfg.window_keep < 1 or cfg.confidence_weight > 0
    return ranks and cfg.window_score in ("any", "other")


def needs_ranking(cfg) -> bool:
    """Whether the fit ranks a recording's windows at all."""
    return cfg.window_keep < 1 or cfg.confidence_weight > 0


def detector_score(logits: np.ndarray, index: np.ndarray | None, kind: str) -> np.ndarray:
    """Detector score per window [N] from the backbone's logits [N, K] (``any`` or ``other``, see module).

    Args:
        logits: the backbone's logits over its own classes float [N, K].
        index: label → backbone class (-1 unmapped) [C]; needed for ``other``.
        kind: ``any`` or ``other``.
    """
    L = np.asarray(logits, np.float32)
    if kind == "any":
        return L.max(1)
    if kind != "other":
        raise ValueError(f"detector_score: kind must be any or other, not {kind!r}")
    if index is None:
        raise ValueError("window score 'other' needs the label → class map")
    drop = np.zeros(L.shape[1], bool)
    idx = np.asarray(index)
    drop[idx[idx >= 0]] = True
    return L[:, ~drop].max(1) if (~drop).any() else np.full(len(L), -np.inf, np.float32)


def _score(train, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(score [N], ranked [N]): the ranking score of each row and whether the row is ranked at all."""
    Y = train.Y
    labelled = (Y >= 0.5).any(1)
    if kind == "primary":
        if train.z is None:
            raise ValueError("window score 'primary' needs the zero-shot logits of the labels")
        prim = Y.argmax(1)
        known = np.abs(train.z).sum(0) > 0
        return train.z[np.arange(len(Y)), prim], labelled & known[prim]
    if train.score is None:
        raise ValueError(f"window score {kind!r} needs the detector score of each window")
    s = np.asarray(train.score, np.float32)
    return s, labelled & np.isfinite(s)


def window_weights(train, kind: str, keep: float, share: float) -> np.ndarray:
    """Row weights [N] of ``train`` (a :class:`~embedkit.predict.apply.Windows` with ``Y``): 0 = left out.

    Args:
        train: labelled windows; ``z`` for ``primary``, ``score`` for ``any``/``other``.
        kind: ``window_score`` (see module).
        keep: share of each recording's ranked windows kept (1 = all).
        share: ``confidence_weight`` b (0 = every kept window weighs 1).
    """
    import pandas as pd

    w = np.ones(len(train.Y), np.float32)
    if keep >= 1 and share <= 0:
        return w
    score, ranked = _score(train, kind)
    rows = np.flatnonzero(ranked)
    if not len(rows):
        return w
    s = pd.Series(score[rows])
    files = pd.Series(np.asarray(train.files)[rows])
    n = files.map(files.value_counts()).to_numpy()
    pct = s.groupby(files.to_numpy()).rank(pct=True, method="average").to_numpy()
    r = np.where(n > 1, (pct * n - 1) / np.maximum(n - 1, 1), 1.0)
    w[rows] = (1 - share + share * r).astype(np.float32)
    if keep < 1:  # the best ceil(keep * n), ties broken by row order
        order = (-s).groupby(files.to_numpy()).rank(method="first").to_numpy()
        top = np.maximum(1, np.ceil(keep * n - 1e-9))
        w[rows[order > top]] = 0.0
    return w


def describe_windows(cfg) -> str | None:
    """One ``[fit]`` line for the window choice, or None when every window is trained on at weight 1."""
    if not needs_ranking(cfg):
        return None
    parts = []
    if cfg.window_keep < 1:
        parts.append(f"the best {math.ceil(cfg.window_keep * 100)}% of each recording's windows")
    if cfg.confidence_weight > 0:
        parts.append(f"weighted by rank (share {cfg.confidence_weight:g})")
    return f"training windows: {', '.join(parts)}, ranked by the backbone's {cfg.window_score} score"


__all__ = [
    "SCORES", "describe_windows", "detector_score", "needs_detector", "needs_ranking", "window_weights",
]

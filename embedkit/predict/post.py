"""Post-processing of window probabilities: temporal smoothing, file-max blending, model blending, columns.

Each function takes and returns float32 arrays; ``infer.py`` and ``embedkit evaluate`` apply them in the same
order (blend the models, then per file: smooth, then file-max).
"""

from __future__ import annotations

import numpy as np

from embedkit.errors import UsageError


def smooth_windows(p: np.ndarray, weight: float) -> np.ndarray:
    """Temporal smoothing of one file's window probabilities.

    Each window becomes ``(1 - weight) * p[t] + weight/2 * (p[t-1] + p[t+1])``; at the file's ends the
    missing neighbour's share stays with the window itself.

    Args:
        p: [W, C] probabilities of consecutive windows.
        weight: share given to the neighbours, in [0, 1).

    Returns:
        [W, C] smoothed probabilities (float32).
    """
    if weight <= 0 or len(p) < 2:
        return p.astype(np.float32, copy=True)
    prev = np.vstack([p[:1], p[:-1]])
    nxt = np.vstack([p[1:], p[-1:]])
    return ((1 - weight) * p + weight / 2 * (prev + nxt)).astype(np.float32)


def file_max_blend(p: np.ndarray, weight: float) -> np.ndarray:
    """Blend one file's window probabilities with the file's maximum per class.

    Each window becomes ``(1 - weight) * p[t] + weight * max_t p[t]``: a species heard clearly somewhere in
    the file lifts its faint windows (BirdCLEF truth marks a species over a whole call sequence).

    Args:
        p: [W, C] probabilities of one file's windows.
        weight: weight of the file maximum, in [0, 1].

    Returns:
        [W, C] float32.
    """
    if weight <= 0 or len(p) == 0:
        return p.astype(np.float32, copy=True)
    return ((1 - weight) * p + weight * p.max(axis=0, keepdims=True)).astype(np.float32)


def blend_weights(weights: list[float] | None, n: int) -> np.ndarray:
    """Blend weights for ``n`` models, normalised to sum 1 (``None``: equal weights)."""
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    if len(w) != n or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise UsageError(
            f"need {n} finite non-negative blend weights (one per model) with a positive sum, got {list(w)}"
        )
    return w / w.sum()


def blend(probs: list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
    """Weighted mean of several models' probabilities [N, C] (weights normalised to sum 1)."""
    w = blend_weights(weights, len(probs))
    return sum(wi * p for wi, p in zip(w, probs, strict=True)).astype(np.float32)


def column_map(model_labels: list[str], labels: list[str]) -> np.ndarray:
    """Index of each submission label in a model's outputs (-1 where the model lacks it) [C]."""
    pos = {c: i for i, c in enumerate(model_labels)}
    return np.array([pos.get(c, -1) for c in labels], dtype=np.int64)


def remap(p: np.ndarray, cmap: np.ndarray) -> np.ndarray:
    """Model outputs [N, K] → submission columns [N, C]; columns the model lacks are 0."""
    out = np.zeros((len(p), len(cmap)), np.float32)
    ok = cmap >= 0
    out[:, ok] = p[:, cmap[ok]]
    return out


def known_scale(cmaps: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Per submission column, 1 / (blend weight of the models that know it); 0 where no model knows it [C].

    Multiplying a blend of :func:`remap` outputs by it makes each column the weighted mean over the models
    that have the label (not diluted by the zeros of those that do not); a column no model knows stays 0.
    """
    known = sum(float(w) * (np.asarray(c) >= 0) for w, c in zip(weights, cmaps, strict=True))
    known = np.asarray(known, np.float64)
    return np.where(known > 0, 1.0 / np.maximum(known, 1e-12), 0.0).astype(np.float32)


__all__ = ["blend", "blend_weights", "column_map", "file_max_blend", "known_scale", "remap", "smooth_windows"]

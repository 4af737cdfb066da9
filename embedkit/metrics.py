"""Evaluation metrics for multi-label species scores (BirdCLEF conventions).

Every function takes ``y_true`` and ``y_score`` as arrays of shape ``[N, C]`` (rows = 5 s windows,
columns = classes; a 1-D array is read as one column). ``y_true`` may be hard (0/1) or soft (in [0, 1]); a
cell counts as positive when ``y_true >= 0.5``. ``y_score`` is any real-valued score, higher = more likely
present.

* :func:`birdclef_score` -- the BirdCLEF 2024/2025 competition metric: macro ROC-AUC over the classes that
  have at least one positive in the truth.
* :func:`padded_cmap` -- the BirdCLEF 2023 metric: macro average precision after appending all-ones rows.
* :func:`per_class_auc`, :func:`per_class_ap`, :func:`macro_ap` -- per-class breakdowns.

scikit-learn is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import numpy as np

POSITIVE_THRESHOLD = 0.5


def _as_2d(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    """Validate and binarise the inputs.

    Returns:
        ``(truth bool [N, C], scores float64 [N, C])``.
    """
    t = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(y_score, dtype=np.float64)
    if t.ndim == 1:
        t = t[:, None]
    if s.ndim == 1:
        s = s[:, None]
    if t.ndim != 2 or t.shape != s.shape:
        raise ValueError(f"y_true and y_score must be [N, C] of the same shape; got {t.shape} and {s.shape}")
    if t.shape[0] == 0:
        raise ValueError("y_true and y_score have no rows")
    if not np.isfinite(s).all():
        raise ValueError("y_score contains NaN or infinite values")
    return t >= POSITIVE_THRESHOLD, s


def scorable_classes(y_true) -> np.ndarray:
    """Columns on which ROC-AUC is defined: at least one positive and at least one negative.

    Args:
        y_true: truth ``[N, C]`` (hard or soft; positive = ``>= 0.5``).

    Returns:
        bool ``[C]``.
    """
    t = np.asarray(y_true, dtype=np.float64)
    t = (t[:, None] if t.ndim == 1 else t) >= POSITIVE_THRESHOLD
    n_pos = t.sum(axis=0)
    return (n_pos > 0) & (n_pos < t.shape[0])


def per_class_auc(y_true, y_score) -> np.ndarray:
    """ROC-AUC of each column.

    Args:
        y_true: truth ``[N, C]`` (positive = ``>= 0.5``).
        y_score: scores ``[N, C]``.

    Returns:
        float64 ``[C]``; NaN for columns without positives or without negatives (AUC is undefined there).
    """
    from sklearn.metrics import roc_auc_score

    t, s = _as_2d(y_true, y_score)
    out = np.full(t.shape[1], np.nan)
    for c in np.flatnonzero(scorable_classes(t)):
        out[c] = roc_auc_score(t[:, c], s[:, c])
    return out


def birdclef_score(y_true, y_score) -> float:
    """BirdCLEF 2024/2025 metric: macro ROC-AUC over the classes with at least one positive.

    Equivalent to the Kaggle scoring code, which drops the truth columns whose sum is zero and then calls
    ``sklearn.metrics.roc_auc_score(average="macro")``. Columns in which *every* row is positive are also
    dropped here: AUC is undefined for them and scikit-learn would raise (on real BirdCLEF data this never
    happens).

    Args:
        y_true: truth ``[N, C]`` (hard 0/1 or soft; positive = ``>= 0.5``).
        y_score: scores ``[N, C]`` (probabilities or any monotone scores).

    Returns:
        The mean AUC over scorable columns.

    Raises:
        ValueError: shapes differ, or no column has both a positive and a negative.
    """
    from sklearn.metrics import roc_auc_score

    t, s = _as_2d(y_true, y_score)
    keep = scorable_classes(t)
    if not keep.any():
        raise ValueError("no class has both positive and negative rows in y_true; ROC-AUC is undefined")
    return float(roc_auc_score(t[:, keep], s[:, keep], average="macro"))


def per_class_ap(y_true, y_score) -> np.ndarray:
    """Average precision (``sklearn.metrics.average_precision_score``) of each column.

    Args:
        y_true: truth ``[N, C]`` (positive = ``>= 0.5``).
        y_score: scores ``[N, C]``.

    Returns:
        float64 ``[C]``; NaN for columns without positives (a column of only positives scores 1.0).
    """
    from sklearn.metrics import average_precision_score

    t, s = _as_2d(y_true, y_score)
    out = np.full(t.shape[1], np.nan)
    for c in np.flatnonzero(t.any(axis=0)):
        out[c] = average_precision_score(t[:, c], s[:, c])
    return out


def macro_ap(y_true, y_score) -> float:
    """Mean average precision over the classes with at least one positive.

    Args:
        y_true: truth ``[N, C]`` (positive = ``>= 0.5``).
        y_score: scores ``[N, C]``.

    Raises:
        ValueError: no class has a positive.
    """
    ap = per_class_ap(y_true, y_score)
    if np.isnan(ap).all():
        raise ValueError("no class has a positive row in y_true; average precision is undefined")
    return float(np.nanmean(ap))


def padded_cmap(y_true, y_score, padding_factor: int = 5) -> float:
    """BirdCLEF 2023 metric: padded class-mean average precision.

    Appends ``padding_factor`` rows of all ones to both the truth and the scores, then takes the macro average
    precision over *all* columns (the padding gives every class a positive, so none is undefined and classes
    without positives score high rather than being dropped).

    Args:
        y_true: truth ``[N, C]`` (positive = ``>= 0.5``).
        y_score: scores ``[N, C]``, normally probabilities in [0, 1].
        padding_factor: number of all-ones rows appended (>= 0; 0 requires every class to have a positive).

    Returns:
        The padded cmAP.
    """
    from sklearn.metrics import average_precision_score

    if padding_factor < 0:
        raise ValueError(f"padding_factor must be >= 0, got {padding_factor}")
    t, s = _as_2d(y_true, y_score)
    pad = np.ones((padding_factor, t.shape[1]))
    t = np.vstack([t.astype(np.float64), pad])
    s = np.vstack([s, pad])
    if not t.any(axis=0).all():
        raise ValueError("padded_cmap with padding_factor=0 needs a positive in every class")
    return float(average_precision_score(t, s, average="macro"))


__all__ = ["birdclef_score", "macro_ap", "padded_cmap", "per_class_ap", "per_class_auc", "scorable_classes"]

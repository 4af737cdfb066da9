"""Augmented training rows (``extract.py --augment-background``) in a fit: ``--augmented clean+mixed|clean``.

Shards extracted with ``--augment-background DIR --variants K`` hold, per training window, the clean
embedding (``variant`` 0) and K mixed ones (``variant`` 1..K). A fit reads the clean rows as its training set,
exactly as for shards without variants, and with ``clean+mixed`` the mixed rows as an *extra* training set:
grouped cross-validation gives each mixed row its recording's fold, adds the mixed rows of the training folds
to each fold's fit, and scores only the clean rows of the held-out fold, so CV numbers stay comparable with
a clean fit. The final refit uses every row.
"""

from __future__ import annotations

import numpy as np

from embedkit.predict.apply import Windows

MODES = ("clean+mixed", "clean")


def concat(a: Windows, b: Windows | None) -> Windows:
    """Rows of ``a`` then ``b`` (``z`` kept only when both have it; ``Y`` both labelled)."""
    if b is None or not len(b.X):
        return a
    z = None if a.z is None or b.z is None else np.vstack([a.z, b.z])
    Y = None if a.Y is None or b.Y is None else np.vstack([a.Y, b.Y])
    return Windows(np.vstack([a.X, b.X]), np.concatenate([a.files, b.files]), z, Y)


def fold_of(files: np.ndarray, clean_files: np.ndarray, clean_fold: np.ndarray) -> np.ndarray:
    """Fold of each augmented row [M]: the fold of its recording among the clean rows (-1 if absent)."""
    first = dict(zip(clean_files.tolist()[::-1], clean_fold.tolist()[::-1], strict=True))
    return np.array([first.get(f, -1) for f in files.tolist()], np.int64)


def training_rows(train: Windows, augmented, k: int | None) -> Windows:
    """``train`` plus the augmented rows of folds other than ``k`` (all of them when ``k`` is None).

    Args:
        train: the clean training windows of this fit.
        augmented: ``(windows [M], fold [M])`` or None.
        k: held-out fold, or None for the refit on everything.
    """
    if augmented is None:
        return train
    w, fold = augmented
    return concat(train, w if k is None else w.take(fold != k))


__all__ = ["MODES", "concat", "fold_of", "training_rows"]

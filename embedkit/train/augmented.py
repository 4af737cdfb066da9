"""Augmented training rows (``extract.py --augment-background``) in a fit: ``--augmented clean+mixed|clean``.

Shards extracted with ``--augment-background DIR --variants K`` hold, per training window, the clean
embedding (``variant`` 0) and K mixed ones (``variant`` 1..K). A fit reads the clean rows as its training set,
exactly as for shards without variants, and with ``clean+mixed`` the mixed rows as an *extra* training set:
grouped cross-validation gives each mixed row its recording's fold, adds the mixed rows of the training folds
to each fold's fit, and scores only the clean rows of the held-out fold, so CV numbers stay comparable with
a clean fit. The final refit uses every row.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from embedkit.errors import UsageError
from embedkit.predict.apply import Windows

MODES = ("clean+mixed", "clean")


def concat(a: Windows, b: Windows | None) -> Windows:
    """Rows of ``a`` then ``b`` (``z``, ``score`` kept only when both have them; ``Y`` both labelled)."""
    if b is None or not len(b.X):
        return a
    z = None if a.z is None or b.z is None else np.vstack([a.z, b.z])
    Y = None if a.Y is None or b.Y is None else np.vstack([a.Y, b.Y])
    s = None if a.score is None or b.score is None else np.concatenate([a.score, b.score])
    return Windows(np.vstack([a.X, b.X]), np.concatenate([a.files, b.files]), z, Y, s)


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


def read_augmented(cfg, labels: list[str], train, inputs: dict) -> Windows | None:
    """The augmented rows (``variant`` >= 1) of the training dataset, or None.

    None when ``cfg.augmented == "clean"`` or the shards hold no variants (then the fit is exactly a clean
    fit). Targets as for the clean rows (:func:`embedkit.birdclef.build_targets`), zero-shot logits when the
    fit uses them.

    Raises:
        UsageError: augmented rows together with ``--fuse`` (the fused backbones have no variants).
    """
    from embedkit.birdclef import build_targets
    from embedkit.store import read_embeddings, read_provenance
    from embedkit.zeroshot import class_logits

    dataset = Path(cfg.embeddings) / cfg.backbone / cfg.split
    aug = None if cfg.augmented == "clean" else read_provenance(dataset).get("augment")
    if aug is None:
        return None
    if cfg.fuse:
        raise UsageError("--augmented clean+mixed cannot be fused (--fuse): use --augmented clean")
    want_z = inputs["index"] is not None
    out = read_embeddings(dataset, logits=want_z, variants=True)
    keys, X = out[0], out[1]
    mixed = keys["variant"].to_numpy() > 0
    keys = keys[mixed].reset_index(drop=True)
    Y, keep, _ = build_targets(keys, train, labels, cfg.secondary_weight)
    z = class_logits(out[2][mixed][keep], inputs["index"]) if want_z else None
    score = None
    if want_z and inputs.get("score") is not None:  # the mixed rows ranked like the clean ones
        from embedkit.train.windows import detector_score

        score = detector_score(out[2][mixed][keep], inputs["index"], cfg.window_score)
    files = keys["file"].astype(str).to_numpy()[keep]
    print(
        f"[fit] augmented: {int(keep.sum())} mixed rows ({aug.get('variants')} per window, SNR "
        f"{aug.get('snr_db')} dB) added to each fold's training rows; CV scores clean rows only",
        file=sys.stderr,
    )
    return Windows(X[mixed][keep], files, z, Y, score)


__all__ = ["MODES", "concat", "fold_of", "read_augmented", "training_rows"]

"""What every row of ``embedkit evaluate`` is scored with: post-processing and the two label sets.

Kept below :mod:`embedkit.evaluate.run` and :mod:`embedkit.evaluate.tuned` (both import it, neither imports
the other's caller), so the evaluate room has no import circle.

* :func:`postprocess`: ``infer.py``'s smoothing and file-max blend, per file;
* :func:`scores`: the competition metric over all labels and over the labels the backbone knows;
* :func:`strong_labels`: the labels the backbone's own classifier is strong on (the second test set: where
  zero-shot beats a head today, so a default is never chosen on one kind of data alone).
"""

from __future__ import annotations

import numpy as np

#: a label is "strong" when the backbone's own logits reach this clip-level (CV window) ROC-AUC
STRONG_AUC = 0.95


def postprocess(P: np.ndarray, files: np.ndarray, window: np.ndarray, smooth: float, file_max: float):
    """``infer.py``'s post-processing per file: smoothing over neighbouring windows, then file-max blend.

    Args:
        P: probabilities [N, C].
        files: file per row [N].
        window: window index per row [N].
        smooth: neighbour weight (0: none).
        file_max: weight of the file maximum (0: none).

    Returns:
        [N, C] post-processed (``P`` itself when both are 0).
    """
    from embedkit.predict.post import file_max_blend, smooth_windows

    if smooth <= 0 and file_max <= 0:
        return P
    out = P.copy()
    for f in np.unique(files):
        rows = np.flatnonzero(files == f)
        rows = rows[np.argsort(window[rows], kind="stable")]
        out[rows] = file_max_blend(smooth_windows(P[rows], smooth), file_max)
    return out


def scores(truth, P, mapped) -> tuple[float, float]:
    """(macro ROC-AUC over all scorable labels, over the scorable labels in ``mapped`` [C]); NaN if none."""
    from embedkit.metrics import birdclef_score, scorable_classes

    ok = scorable_classes(truth)
    all_ = birdclef_score(truth, P) if ok.any() else float("nan")
    m = ok & mapped
    return all_, (birdclef_score(truth[:, m], P[:, m]) if m.any() else float("nan"))


def strong_labels(clips, threshold: float = STRONG_AUC) -> np.ndarray:
    """Bool [C]: labels whose backbone logits score ROC-AUC ≥ ``threshold`` on the labelled clip windows.

    Chosen on the clips (every window against its recording's primary label, raw logits, no head), never on
    a soundscape test. All False without logits.
    """
    from embedkit.metrics import per_class_auc
    from embedkit.zeroshot import class_logits

    if clips.index is None or clips.L is None:
        return np.zeros(len(clips.labels), bool)
    auc = per_class_auc(clips.truth, class_logits(clips.L, clips.index))
    return (clips.index >= 0) & (np.nan_to_num(auc) >= threshold)


__all__ = ["STRONG_AUC", "postprocess", "scores", "strong_labels"]

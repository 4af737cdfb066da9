"""Self-training on unlabelled soundscapes (``fit.py --pseudo ROUNDS --unlabelled train_soundscapes``).

Each round predicts every unlabelled window with the head of the previous round (the zero-shot prior
included when the model has one), keeps the windows whose top probability reaches ``pseudo_threshold`` and
gives them soft targets ``p ** pseudo_power`` for every label (a power above 1 pushes unsure probabilities
towards 0, so the soft targets stay about what the head is sure of), then refits the head on the labelled
windows plus the kept ones at row weight ``pseudo_weight``. The embeddings are reused, so a round costs one
head fit (seconds on CPU). The loop lives in :func:`embedkit.pipeline.fit_pipeline`.
"""

from __future__ import annotations

import numpy as np


def pseudo_labels(P: np.ndarray, threshold: float, power: float) -> tuple[np.ndarray, np.ndarray]:
    """Confident windows and their soft targets.

    Args:
        P: probabilities of the unlabelled windows [M, C].
        threshold: a window is kept when its largest probability is at least this.
        power: soft target = ``P ** power`` (>= 1 sharpens).

    Returns:
        ``(keep bool [M], targets float32 [K, C])`` with K = ``keep.sum()``.
    """
    if power <= 0:
        raise ValueError(f"pseudo_power must be > 0, got {power}")
    P = np.clip(np.asarray(P, np.float64), 0.0, 1.0)
    keep = P.max(axis=1) >= threshold if len(P) else np.zeros(0, bool)
    return keep, (P[keep] ** power).astype(np.float32)


__all__ = ["pseudo_labels"]

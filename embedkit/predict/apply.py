"""Applying a fitted head to windows: the inputs it takes and the zero-shot prior blend.

:class:`Windows` is one set of windows (embeddings, recording of each row, the backbone's logits of the
labels, targets). :func:`predict_pipeline` is what fit, infer and ``embedkit evaluate`` share to turn a head
fitted by :func:`embedkit.train.recipe.fit_pipeline` into probabilities: the head's input
(:func:`head_input`: embeddings, plus the zero-shot logits as columns when the model takes them) and the prior
blend (:func:`embedkit.zeroshot.apply_prior`). Nothing here trains; inference never imports training code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Windows:
    """Windows of one set.

    Attributes:
        X: embeddings float32 [N, D].
        files: recording of each row [N].
        z: zero-shot logits of the labels float32 [N, C] (:func:`embedkit.zeroshot.class_logits`), or None.
        Y: targets float32 [N, C] (None for unlabelled windows).
        score: a detector score per window float32 [N] that ranks a recording's training windows
            (:mod:`embedkit.train.windows`), or None.
    """

    X: np.ndarray
    files: np.ndarray
    z: np.ndarray | None = None
    Y: np.ndarray | None = None
    score: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> Windows:
        """The subset ``rows`` (a bool mask or indices)."""
        def pick(a):
            return None if a is None else a[rows]

        return Windows(self.X[rows], self.files[rows], pick(self.z), pick(self.Y), pick(self.score))


def uses_features(cfg) -> bool:
    """Whether the head's input has the zero-shot columns."""
    return cfg.zero_shot in ("features", "both")


def uses_prior(cfg) -> bool:
    """Whether the head's output is blended with the zero-shot prior."""
    return cfg.zero_shot in ("prior", "both")


def needs_logits(cfg) -> bool:
    """Whether fitting with ``cfg`` needs the backbone's logits."""
    return cfg.zero_shot != "off" or cfg.confidence_weight > 0 or getattr(cfg, "window_keep", 1.0) < 1


def head_input(w: Windows, features: bool) -> np.ndarray:
    """The head's input [N, D] or [N, D + C] (embeddings, then the zero-shot logits when ``features``)."""
    if not features:
        return w.X
    if w.z is None:
        raise ValueError("zero-shot features need logits")
    return np.hstack([w.X, w.z]).astype(np.float32)


def predict_pipeline(head, w: Windows, features: bool, prior=None) -> np.ndarray:
    """Probabilities [N, C] of a head fitted by :func:`fit_pipeline`, with the zero-shot prior if given.

    Args:
        head: fitted head.
        w: windows (``z`` set when ``features`` or ``prior``).
        features: whether the head takes the zero-shot columns.
        prior: ``(weights [C], offset [C])`` or ``(weights, offset, head_weight [C])`` (see
            :func:`embedkit.zeroshot.apply_prior`), or None.
    """
    p = head.predict_proba(head_input(w, features))
    if prior is not None and w.z is not None:
        from embedkit.zeroshot import apply_prior

        p = apply_prior(p, w.z, *prior)
    return np.asarray(p, np.float32)


__all__ = ["Windows", "head_input", "needs_logits", "predict_pipeline", "uses_features", "uses_prior"]

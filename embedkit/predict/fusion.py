"""Inference of fused models (``fit.py --fuse``): a head on several backbones' embeddings concatenated.

``infer.py`` runs each distinct backbone once over all files. A fused model takes part in the run of every
backbone it was fit on; :class:`FusedParts` keeps each file's part embeddings until all parts of that file
are in, then predicts on ``[part 0 | part 1 | ...]`` (the order of ``model.json`` ``fusion``), with the
first part's logits when the model needs them. Fitting side: :func:`embedkit.train.data.read_windows`.
"""

from __future__ import annotations

import numpy as np


def model_parts(model) -> list[dict]:
    """Provenance of each part a model reads, in column order (one part for an unfused model)."""
    return [p["provenance"] for p in model.meta.get("fusion") or []] or [model.provenance]


class FusedParts:
    """Collects part embeddings of fused models per file and predicts once a file is complete.

    Args:
        models: the loaded models (indices as in ``infer.py``).
    """

    def __init__(self, models):
        self.models = models
        self.n = {i: len(model_parts(m)) for i, m in enumerate(models)}
        self.got: dict[tuple[int, int], dict[int, tuple]] = {}

    def add(self, i: int, j: int, k, emb: np.ndarray, logits: np.ndarray | None) -> np.ndarray | None:
        """Part ``j`` of model ``i`` for file ``k``; returns the model's probabilities [W, C] when complete.

        ``k`` is any key of the file: its index, or (index, TTA variant) (:mod:`embedkit.predict.tta`).

        An unfused model predicts at once. Files whose parts disagree in window count use the common prefix.
        """
        if self.n[i] == 1:
            return self.models[i].predict(emb, logits)
        parts = self.got.setdefault((i, k), {})
        parts[j] = (emb, logits)
        if len(parts) < self.n[i]:
            return None
        del self.got[(i, k)]
        w = min(len(parts[p][0]) for p in parts)
        X = np.hstack([parts[p][0][:w] for p in range(self.n[i])])
        lg = parts[0][1]
        return self.models[i].predict(X, None if lg is None else lg[:w])


__all__ = ["FusedParts", "model_parts"]

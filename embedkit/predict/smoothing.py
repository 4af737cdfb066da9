"""Which smoothing ``infer.py`` uses: ``--smooth`` when given, else the models' own learned one, else 0.5.

``fit.py --tune-on`` stores the smoothing it learned on labelled soundscapes as ``smooth`` in
``model.json``. A blend of several models smooths once, after blending, with the blend-weighted mean of the
models' smoothings (a model without a learned one counts as :data:`DEFAULT_SMOOTH`).
"""

from __future__ import annotations

import numpy as np

#: smoothing when neither ``--smooth`` nor a model gives one (best on ../shared/data/xc-pr-birds, README)
DEFAULT_SMOOTH = 0.5


def resolve_smooth(given: float | None, models, weights: np.ndarray) -> tuple[float, str]:
    """``(smoothing, where it came from)`` for an inference run.

    Args:
        given: ``InferConfig.smooth`` (None: not set by a flag or config file).
        models: the loaded models (``meta["smooth"]`` where learned).
        weights: their blend weights [M], summing to 1.
    """
    if given is not None:
        return float(given), "--smooth"
    learned = [m.meta.get("smooth") for m in models]
    if all(v is None for v in learned):
        return DEFAULT_SMOOTH, "default"
    vals = np.array([DEFAULT_SMOOTH if v is None else float(v) for v in learned])
    value = float(np.dot(np.asarray(weights, np.float64), vals))
    names = ", ".join(m.folder.name for m, v in zip(models, learned, strict=True) if v is not None)
    return round(value, 6), f"learned on soundscapes by fit.py --tune-on ({names})"


__all__ = ["DEFAULT_SMOOTH", "resolve_smooth"]

"""Test-time augmentation: the head applied to each shifted variant of a window, probabilities averaged.

``infer.py --tta 1.25`` embeds every 5 s window also shifted by -1.25 s and +1.25 s
(:mod:`embedkit.audio.tta`); each variant goes through the head and the zero-shot prior with its *own*
logits, and the window's probability is the mean over the variants (``reduce="max"``: the maximum). The
post-processing (smoothing, file-max blend) runs afterwards on the averaged probabilities, as without TTA.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

REDUCERS = ("mean", "max")


def reduce_variants(P: np.ndarray, reduce: str = "mean") -> np.ndarray:
    """Probabilities [V, N, C] of V variants → [N, C] (``mean`` or ``max`` over the variants)."""
    if reduce not in REDUCERS:
        raise ValueError(f"TTA reduce must be one of {REDUCERS}, got {reduce!r}")
    P = np.asarray(P, np.float32)
    return P.mean(axis=0) if reduce == "mean" else P.max(axis=0)


def predict_variants(
    predict: Callable[[np.ndarray, np.ndarray | None], np.ndarray | None],
    emb: np.ndarray,
    logits: np.ndarray | None,
    shifted: np.ndarray | None,
    shifted_logits: np.ndarray | None,
    reduce: str = "mean",
) -> np.ndarray | None:
    """Apply ``predict`` to the unshifted windows and each shifted variant, and reduce.

    Args:
        predict: ``(emb [W, D], logits [W, K] | None) → probabilities [W, C]`` (or None when a fused model
            is still waiting for its other parts; then None is returned). Called once per variant, in order
            (unshifted first), also when an earlier one gave None.
        emb: unshifted embeddings [W, D].
        logits: their logits [W, K] or None.
        shifted: [S, W, D] embeddings of the shifted windows, or None (no TTA: ``predict(emb, logits)``).
        shifted_logits: [S, W, K] or None.
        reduce: ``mean`` or ``max`` over the 1 + S variants.

    Returns:
        float32 [W, C], or None.
    """
    out = [predict(emb, logits)]
    for s in range(0 if shifted is None else len(shifted)):  # every variant is passed on (fused parts)
        out.append(predict(shifted[s], None if shifted_logits is None else shifted_logits[s]))
    if any(q is None for q in out):
        return None
    return out[0] if len(out) == 1 else reduce_variants(np.stack(out), reduce)


__all__ = ["REDUCERS", "predict_variants", "reduce_variants"]

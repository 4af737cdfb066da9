"""Ensemble rows of ``embedkit evaluate --table``: the mean of rows already fitted (issue 23, item 4).

A row of :data:`~embedkit.evaluate.variants.VARIANTS` whose changes are ``{"ensemble": [row names]}`` fits
nothing: its probabilities are the mean of those rows' post-processed probabilities (out-of-fold windows,
soundscapes, and the head alone), as ``infer.py --models A B`` blends models with equal weights. Smoothing and
TTA are linear, so the mean of post-processed probabilities is the post-processed mean. Fold k's members were
fit without fold k, so the ensemble chooses nothing on its own test.
"""

from __future__ import annotations

import numpy as np

#: the row key that makes a row an ensemble
KEY = "ensemble"


def ensemble_row(members: list[dict], clips, tests) -> dict:
    """Scores of the mean of ``members`` (results of :func:`~embedkit.evaluate.fitrow.run_config`).

    Returns:
        A result with the keys of :func:`~embedkit.evaluate.fitrow.run_config`; ``head_test`` only when every
        member has it.
    """
    from embedkit.evaluate.scoring import scores
    from embedkit.evaluate.testsets import score_sets

    mapped = clips.index >= 0 if clips.index is not None else np.zeros(len(clips.labels), bool)
    oof = np.mean([m["oof"] for m in members], axis=0)
    tp = np.mean([m["test"] for m in members], axis=0)
    cv26, cv22 = scores(clips.truth, oof, mapped)
    out = {"cv": cv26, "cv_mapped": cv22, **score_sets(tests, tp, mapped, scores)}
    if all(m.get("head_test") is not None for m in members):
        htp = np.mean([m["head_test"] for m in members], axis=0)
        hs = score_sets(tests, htp, mapped, scores)
        if "fd" in hs:
            out.update(ho=hs["fd"], ho_mapped=hs["fd_mapped"])
    else:
        htp = None
    posts = sorted({m["post"] for m in members})
    secs = sum(m["seconds"] for m in members)
    out.update(oof=oof, test=tp, head_test=htp, seconds=secs, post=" / ".join(posts))
    return out


__all__ = ["KEY", "ensemble_row"]

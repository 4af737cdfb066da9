"""The row "default, TTA off, prior & smoothing learned on soundscapes" of ``embedkit evaluate`` (nested).

What ``fit.py --tune-on`` does, measured without letting a fold choose its own parameters: fold k's head is
fit as in every row (on the other folds' recordings), but its zero-shot prior weight and smoothing are
chosen (:func:`embedkit.train.tune.tune_post`) on the **other folds'** real-background soundscapes of the
same composition seed (each predicted by its own fold's head), never on fold k's. The pair is then applied to
fold k's soundscapes (both kinds, that seed) and, chosen on the other folds' soundscapes of all seeds, to
fold k's CV windows. The synthetic-background soundscapes tune nothing when real ones exist (they decide
only when ``--backgrounds`` is not given). The pair is chosen and applied on the unshifted windows, so the
row runs without TTA and compares with "default, TTA off".
"""

from __future__ import annotations

import sys
import time

import numpy as np


def _tune_kind(tests) -> str:
    return "field" if "field" in tests.kinds else "synthetic"


def _apply(P, z, weights, offset, files, window, smooth: float, file_max: float) -> np.ndarray:
    from embedkit.evaluate.scoring import postprocess
    from embedkit.zeroshot import apply_prior

    q = P if weights is None else apply_prior(P, z, weights, offset)
    return postprocess(q, files, window, smooth, file_max)


def run_tuned(cfg, post: dict, clips, tests, raw: dict) -> dict:
    """Scores of the default fit with the prior weight and smoothing chosen on other folds' soundscapes.

    Args:
        cfg: fit config (the prior is used when the shards hold logits and ``cfg.zero_shot`` is not off).
        post: post-processing (``file_max`` used; ``smooth`` is learned; ``per_class``: per-label weights).
        clips: the clip windows (:func:`embedkit.evaluate.data.load_clips`).
        tests: the soundscape sets (:func:`embedkit.evaluate.testsets.load_testsets`).
        raw: :func:`~embedkit.evaluate.fitrow.run_config`'s result of ``cfg`` with the prior off and no
            post-processing (the heads are those of the "zero-shot prior off" row; the caller fits them, so
            this module imports nothing of the module that calls it).

    Returns:
        As :func:`~embedkit.evaluate.fitrow.run_config`, plus ``chosen``: (seed, fold, weight, smoothing).
    """
    from embedkit.evaluate.scoring import scores as _scores
    from embedkit.evaluate.testsets import score_sets
    from embedkit.train.tune import tune_post
    from embedkit.zeroshot import class_logits

    if post.get("tta"):
        raise ValueError("the learned prior & smoothing row runs without TTA (tta=() in its post-processing)")
    t0 = time.monotonic()
    sc = tests.scapes
    prior = clips.index is not None and cfg.zero_shot != "off" and sc.L is not None
    zc = class_logits(clips.L, clips.index) if prior else None
    zs = class_logits(sc.L, clips.index) if prior else None
    mapped = np.abs(zc).sum(0) > 0 if prior else np.zeros(len(clips.labels), bool)
    kind, per_class, fmax = _tune_kind(tests), bool(post.get("per_class")), post.get("file_max", 0.0)
    P, oof = raw["test"], raw["oof"]
    tp, cv = np.zeros_like(P), np.zeros_like(oof)
    chosen = []

    def choose(rows, offset):
        return tune_post(P[rows], None if zs is None else zs[rows], offset, mapped, sc.truth[rows],
                         sc.files[rows], sc.window[rows], per_class=per_class)  # fmt: skip

    for k in range(int(clips.fold.max()) + 1):
        offset = zc[clips.fold != k].mean(0).astype(np.float64) if prior else None
        for seed in sorted({s for _, s, _ in tests.sets}):
            seed_rows = np.any([m for _, s, m in tests.sets if s == seed], axis=0)
            tune_rows = np.any([m for kd, s, m in tests.sets if s == seed and kd == kind], axis=0)
            t = choose(tune_rows & (sc.fold != k), offset)
            rows = seed_rows & (sc.fold == k)
            tp[rows] = _apply(P[rows], None if zs is None else zs[rows], t.weights, offset, sc.files[rows],
                              sc.window[rows], t.smooth, fmax)  # fmt: skip
            w = None if t.weights is None else float(np.max(t.weights, initial=0.0))
            chosen.append((seed, k, w, t.smooth))
        all_rows = np.any([m for kd, _, m in tests.sets if kd == kind], axis=0)
        t = choose(all_rows & (sc.fold != k), offset)
        va = clips.fold == k
        cv[va] = _apply(oof[va], None if zc is None else zc[va], t.weights, offset, clips.files[va],
                        clips.window[va], t.smooth, fmax)  # fmt: skip
    text = ", ".join(f"s{s}/f{k}: w {w} s {sm:g}" for s, k, w, sm in chosen)
    print(f"[evaluate] learned on {kind} soundscapes of the other folds: {text}", file=sys.stderr)
    m = clips.index >= 0 if clips.index is not None else np.zeros(len(clips.labels), bool)
    cv26, cv22 = _scores(clips.truth, cv, m)
    return {
        "cv": cv26,
        "cv_mapped": cv22,
        **score_sets(tests, tp, m, _scores),
        "oof": cv,
        "test": tp,
        "seconds": raw["seconds"] + time.monotonic() - t0,
        "post": "learned" + (" per species" if per_class else "") + (f", file-max {fmax:g}" if fmax else ""),
        "chosen": chosen,
        "head_test": None,  # the learned smoothing differs per fold: no head-only score of its own
        "ho": float("nan"),
        "ho_mapped": float("nan"),
    }


__all__ = ["run_tuned"]

"""One fitted row of ``embedkit evaluate``: a fit configuration per fold, scored with and without the prior.

:func:`run_config` fits fold k's head on the other folds' recordings, predicts fold k's CV windows and
soundscapes (with their TTA-shifted copies), and scores them. With the zero-shot prior (``prior`` mode, no
self-training) the heads are fit once with the prior off and the prior is blended afterwards, cross-fitted
(:func:`embedkit.train.cv.cross_fit_prior`, exactly what :func:`~embedkit.train.cv.cross_validate` does), so
the **head-only** score (prior off for every class: the stand-in for labels the backbone does not know,
BirdCLEF's amphibians, insects and mammals) comes from the same heads at no cost.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from embedkit.evaluate.scoring import postprocess, scores


def _pool(cfg, tests, test, clips):
    """Fold → weak-negative windows (``None`` when the row uses none)."""
    from embedkit.predict.apply import Windows
    from embedkit.zeroshot import class_logits

    bgw, scapes = tests.background, tests.scapes
    if not ((cfg.weak_negatives > 0 and bgw is not None) or cfg.pseudo > 0):
        return None
    if bgw is not None:  # other folds' background groups (fold k's test never uses them)
        zb = None if clips.index is None or bgw.L is None else class_logits(bgw.L, clips.index)
        bg = Windows(bgw.X, np.char.add("bg/", bgw.files), zb)

    def pool(k):
        if bgw is None:
            return test[0].take(scapes.fold != k)
        ok = tests.negatives(k)
        return bg.take(ok) if ok.any() else None

    return pool


def _fit(cfg, data, clips, tests, test, offsets, memo, aug, augmented):
    """One fit of ``cfg`` per fold, memoised (rows differing only in post-processing share it).

    Returns:
        (oof [N, C], probabilities of the soundscapes and their shifted copies [(1 + S) * M, C], the shifted
        test windows, seconds).
    """
    from embedkit.config import FitConfig
    from embedkit.evaluate.tta import with_shifted
    from embedkit.train.cv import cross_validate

    if cfg.zero_shot == "off":  # how the prior would be chosen changes nothing of a fit without it
        prior = ("prior_choice", "prior_weight", "prior_per_class")
        cfg = replace(cfg, **{f: getattr(FitConfig, f) for f in prior})
    key = repr((cfg, offsets))
    key += "" if aug is None else f" aug {len(aug[1])} {int((augmented.mix >= 0).sum())}"
    if memo is not None and key in memo:
        return memo[key]
    t0 = time.monotonic()
    shifted = with_shifted(tests, test, offsets)
    oof, _, tp = cross_validate(cfg, data, clips.fold, _pool(cfg, tests, test, clips), t0, shifted, aug)
    out = (oof, tp, shifted, time.monotonic() - t0)
    if memo is not None:
        memo[key] = out
    return out


def run_config(cfg, post: dict, clips, tests, memo: dict | None = None, augmented=None) -> dict:
    """Fit ``cfg`` per fold; score CV windows and soundscapes (:class:`~embedkit.evaluate.testsets.TestSets`).

    Returns:
        scores (``cv``, ``cv_mapped``, ``sc``, ``sc_mapped``, with field sets ``fd``, ``fd_mapped``, the
        second test ``st`` and the head alone ``ho``, ``ho_mapped``), the probabilities (``oof``, ``test``,
        ``head_test``), ``seconds``, ``post``. ``memo`` (a dict kept across calls) reuses the fits of an
        equal fit config, so rows that change only the post-processing fit nothing. ``augmented`` (an
        :class:`~embedkit.evaluate.augmented.AugmentedSet`) is used when ``cfg.augmented == "clean+mixed"``.
    """
    from embedkit.audio.tta import tta_offsets
    from embedkit.errors import UsageError
    from embedkit.evaluate.augmented import training_copies
    from embedkit.evaluate.tables import post_label
    from embedkit.evaluate.testsets import score_sets
    from embedkit.evaluate.tta import reduce_shifted
    from embedkit.predict.apply import Windows
    from embedkit.train.cv import cross_fit_prior
    from embedkit.train.data import chunk_params
    from embedkit.train.windows import detector_score, needs_detector, needs_ranking
    from embedkit.zeroshot import class_logits

    if post.get("tune"):  # prior weight and smoothing chosen on the other folds' soundscapes
        from embedkit.evaluate.tuned import run_tuned

        raw = run_config(replace(cfg, zero_shot="off"), {"smooth": 0.0, "file_max": 0.0}, clips, tests, memo)
        return run_tuned(cfg, post, clips, tests, raw)
    scapes = tests.scapes
    mode = cfg.zero_shot if clips.index is not None else "off"
    mode = "prior" if mode == "auto" else mode
    if (needs_ranking(cfg) or mode != "off") and clips.index is None:
        raise UsageError("zero-shot options and window ranking need logits in the shards (--save-logits)")
    cfg = replace(cfg, zero_shot=mode)
    cfg = replace(cfg, params=chunk_params(cfg, clips.provenance))  # proto on --pool concat shards
    zc = None if clips.index is None else class_logits(clips.L, clips.index)
    zs = None if clips.index is None or scapes.L is None else class_logits(scapes.L, clips.index)
    score = detector_score(clips.L, clips.index, cfg.window_score) if needs_detector(cfg) else None
    data = Windows(clips.X, clips.files, zc, clips.targets(cfg.secondary_weight), score)
    test = (Windows(scapes.X, scapes.files, zs), scapes.fold)
    offsets, reduce = tta_offsets(post.get("tta")), post.get("tta_reduce", "mean")
    aug = training_copies(cfg, augmented, clips, data)
    args = (data, clips, tests, test, offsets, memo, aug, augmented)
    after = mode == "prior" and cfg.pseudo == 0 and zs is not None  # prior blended after an off fit
    oof, tp, shifted, secs = _fit(replace(cfg, zero_shot="off") if after else cfg, *args)
    head = (oof, tp) if mode == "off" or after else None
    if after:
        oof, tp = cross_fit_prior(cfg, data, clips.fold, oof, shifted, tp)
    elif head is None:  # the head alone of a row whose fit itself depends on the prior
        o2, t2, _, s2 = _fit(replace(cfg, zero_shot="off"), *args)
        head, secs = (o2, t2), secs + s2
    smooth, fmax = post["smooth"], post["file_max"]
    mapped = clips.index >= 0 if clips.index is not None else np.zeros(len(clips.labels), bool)

    def finish(o, t):
        t = reduce_shifted(t, len(offsets), reduce)
        return (postprocess(o, clips.files, clips.window, smooth, fmax),
                postprocess(t, scapes.files, scapes.window, smooth, fmax))  # fmt: skip

    oof, tp = finish(oof, tp)
    _, htp = finish(*head)
    cv26, cv22 = scores(clips.truth, oof, mapped)
    hs = score_sets(tests, htp, mapped, scores)
    out = {"cv": cv26, "cv_mapped": cv22, **score_sets(tests, tp, mapped, scores)}
    if "fd" in hs:
        out.update(ho=hs["fd"], ho_mapped=hs["fd_mapped"])
    out.update(oof=oof, test=tp, head_test=htp, seconds=secs, post=post_label(post))
    return out


__all__ = ["run_config"]

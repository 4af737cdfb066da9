"""Cross-validation with the quality switches, the zero-shot prior learned on it, and what a model saves.

:func:`cross_validate` fits :func:`embedkit.train.recipe.fit_pipeline` once per fold. With the zero-shot prior
on, the prior's weight is scaled by the spreads of the out-of-fold predictions (``--prior-weight``) or chosen
on them (``--prior-choice cv``, ``--prior-per-class``: :func:`embedkit.zeroshot.fit_prior_choice`) and the
reported out-of-fold scores are *cross-fitted*: fold k is blended with weights learned on the other folds'
predictions, so no fold is scored with a weight chosen on its own labels. With self-training and the prior
both on, a first pass without self-training learns the prior, and a second pass self-trains with it.

:func:`model_extras` is what ``model.json`` records so that inference can redo it (``zero_shot``: mode,
label → BirdNET class index, prior weights and offsets; ``needs_logits``; ``fusion``: the backbones whose
embeddings are concatenated); :func:`embedkit.predict.model.predict_model` applies a loaded model.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import numpy as np

from embedkit.predict.apply import Windows, predict_pipeline, uses_features, uses_prior
from embedkit.train.recipe import fit_pipeline


def load_unlabelled(cfg, inputs: dict) -> Windows | None:
    """The ``--unlabelled`` windows when weak negatives or self-training use them, else None.

    Weak negatives are on by default and apply whenever an unlabelled set is given; without one they are
    skipped (one line on stderr).

    Raises:
        UsageError: ``--pseudo`` without ``--unlabelled``.
    """
    if cfg.weak_negatives <= 0 and cfg.pseudo <= 0:
        return None
    if not cfg.unlabelled:
        from embedkit.errors import UsageError

        if cfg.pseudo > 0:
            raise UsageError("--pseudo needs --unlabelled DATASET (e.g. train_soundscapes)")
        return None  # said by the recipe summary (recipe.describe)
    from pathlib import Path

    from embedkit.errors import UsageError
    from embedkit.train.data import has_logits, read_unlabelled
    from embedkit.zeroshot import class_logits

    known = inputs["index"] is not None
    dataset = Path(cfg.embeddings) / cfg.backbone / cfg.unlabelled
    logits = known and has_logits(dataset)
    # the logits of unlabelled windows are needed only as head input (features); self-training uses them
    # (the prior when labelling, the gate) when the shards have them; weak negatives never need them
    if known and not logits and cfg.pseudo_gate > 0:
        raise UsageError(f"--pseudo-gate needs BirdNET's logits of the --unlabelled windows; {dataset} has "
                         f"none: extract it with --save-logits (or --pseudo-gate 0)")  # fmt: skip
    if known and not logits and cfg.pseudo > 0 and uses_prior(cfg):
        print(f"[fit] self-training labels the unlabelled windows with the head alone: {dataset} has no "
              f"logits for the zero-shot prior (extract it with --save-logits)", file=sys.stderr)  # fmt: skip
    want = (known and uses_features(cfg)) or (logits and (cfg.zero_shot != "off" or cfg.pseudo_gate > 0))
    keys, X, L = read_unlabelled(cfg, inputs["parts"], want)
    z = None if L is None else class_logits(L, inputs["index"])
    return Windows(X, keys["file"].astype(str).to_numpy(), z)


def describe_prior(prior) -> str:
    """One phrase for the learned prior: the shared weight and how many labels use another choice."""
    w = np.asarray(prior[0])
    a = np.asarray(prior[2]) if len(prior) > 2 else np.ones(len(w))
    on = w > 0
    if not on.any():
        return "weight 0 (the head alone)"
    blend = on & (a > 0)
    vals, counts = np.unique(w[blend], return_counts=True) if blend.any() else (np.array([0.0]), [0])
    text = f"weight {float(vals[int(np.argmax(counts))]):g}"
    alone = int((on & (a == 0)).sum())
    if alone:
        text += f"; the backbone's classifier alone for {alone} of {int(on.sum())} labels"
    if len(vals) > 1:
        text += f"; {len(vals)} different weights over {int(blend.sum())} labels"
    return text


def iterations(cfg) -> str:
    """The head's iteration budget as set (``logreg max_iter=200``, ``mlp epochs=60``), for progress lines."""
    from embedkit.heads import head_class

    params = {**head_class(cfg.head)().get_params(), **dict(cfg.params)}
    keys = [k for k in ("max_iter", "epochs", "n_estimators") if k in params]
    return f"{cfg.head} " + " ".join(f"{k}={params[k]}" for k in keys) if keys else cfg.head


def spread_ratio(p: np.ndarray, z: np.ndarray, mapped: np.ndarray) -> float:
    """Median over the mapped labels of ``std(logit p_c) / std(z_c)``: the head's spread in the backbone's.

    Args:
        p: head probabilities [N, C].
        z: the backbone's logits of the labels [N, C].
        mapped: bool [C].

    Returns:
        the ratio (1.0 when no mapped label varies in both).
    """
    from embedkit.zeroshot import _logit

    cols = np.flatnonzero(mapped)
    sh, sz = _logit(p[:, cols]).std(0), np.asarray(z, np.float64)[:, cols].std(0)
    ok = (sh > 0) & (sz > 0)
    return float(np.median(sh[ok] / sz[ok])) if ok.any() else 1.0


def prior_from_oof(cfg, data: Windows, oof: np.ndarray, rows: np.ndarray | None, choose: bool = True):
    """``(weights [C], offset [C], head_weight [C])`` of the zero-shot prior, learned on ``oof[rows]``.

    ``rows`` None = all rows. ``prior_choice`` scaled: every mapped label the head saw gets weight
    ``cfg.prior_weight * spread_ratio(oof)`` over the mapped labels with a positive row (the two logits,
    each in units of its spread, added 1 : ``prior_weight``); cv: the shared pair is chosen on
    ``oof[rows]``; ``prior_per_class``: a pair per label, whatever ``prior_choice``
    (:func:`embedkit.zeroshot.fit_prior_choice`). ``choose=False`` (predictions of the training windows
    themselves, without cross-validation): scaled, nothing chosen.
    """
    from embedkit.zeroshot import fit_prior_choice

    rows = np.ones(len(data.X), bool) if rows is None else rows
    z, p = data.z[rows], oof[rows]
    mapped = np.abs(data.z).sum(0) > 0
    offset = z.mean(0).astype(np.float64)
    per_class = bool(cfg.prior_per_class) and choose
    scaled = not choose or (cfg.prior_choice == "scaled" and not per_class)
    seen = mapped & (data.Y[rows] >= 0.5).any(0)  # a head's logit of a label it never saw has no scale
    fixed = float(cfg.prior_weight) * spread_ratio(p, z, seen) if scaled else None
    w, a = fit_prior_choice(p, z, data.Y[rows], mapped, data.files[rows], per_class=per_class, fixed=fixed)
    return w, offset, a


def prior_without_cv(cfg, data: Windows, head):
    """The prior of a fit without cross-validation, scaled on ``head``'s own predictions of ``data``.

    There are no out-of-fold predictions, so the spreads are those of the windows the head was fit on.
    """
    return prior_from_oof(cfg, data, predict_pipeline(head, data, uses_features(cfg)), None, choose=False)


def _folds(cfg, data, fold, unlabelled, prior, t0, test=None, augmented=None):
    from embedkit.train.augmented import training_rows

    feats = uses_features(cfg)
    oof = np.zeros(data.Y.shape, np.float32)
    out = None if test is None else np.zeros((len(test[0].X), data.Y.shape[1]), np.float32)
    n = int(fold.max()) + 1
    t_folds = time.monotonic()
    for k in range(n):
        tr, va = fold != k, fold == k
        pool = unlabelled(k) if callable(unlabelled) else unlabelled
        head = fit_pipeline(cfg, training_rows(data.take(tr), augmented, k), pool, prior)
        oof[va] = predict_pipeline(head, data.take(va), feats)
        if test is not None and (test[1] == k).any():
            out[test[1] == k] = predict_pipeline(head, test[0].take(test[1] == k), feats)
        per = (time.monotonic() - t_folds) / (k + 1)  # one fold; the refit fits n / (n - 1) times its rows
        print(f"[fit] fold {k + 1}/{n}: {va.sum()} windows, {time.monotonic() - t0:.1f} s "
              f"({iterations(cfg)}), "
              f"ETA {per * (n - k - 1):.0f} s for the other folds + ~{per * n / max(n - 1, 1):.0f} s refit",
              file=sys.stderr)  # fmt: skip
    return oof, out


def cross_fit_prior(cfg, data: Windows, fold: np.ndarray, oof: np.ndarray, test=None, test_p=None):
    """Out-of-fold probabilities blended with the prior, fold k with weights learned on the other folds.

    Returns:
        ``(blended oof [N, C], blended test probabilities [M, C] or None)``; ``test`` is ``(windows,
        fold [M])`` and ``test_p`` its probabilities, each fold's rows blended with that fold's weights.
    """
    from embedkit.zeroshot import apply_prior

    out = oof.copy()
    tout = None if test_p is None else test_p.copy()
    for k in range(int(fold.max()) + 1):
        va = fold == k
        pr = prior_from_oof(cfg, data, oof, ~va)
        out[va] = apply_prior(oof[va], data.z[va], *pr)
        if tout is not None:
            rows = test[1] == k
            tout[rows] = apply_prior(test_p[rows], test[0].z[rows], *pr)
    return out, tout


def cross_validate(
    cfg, data: Windows, fold: np.ndarray, unlabelled=None, t0: float = 0.0, test=None, augmented=None
):
    """Out-of-fold probabilities [N, C] (prior blended, cross-fitted) and the prior learned on all of them.

    Args:
        cfg: fit config (resolved ``zero_shot``).
        data: labelled windows.
        fold: fold per row [N].
        unlabelled: windows for weak negatives / self-training, or a function fold → windows (or None).
        t0: start time for the progress lines.
        test: optional ``(windows, fold [M])`` also predicted by each fold's head (e.g. soundscapes).
        augmented: optional ``(windows, fold [M])`` of augmented copies (:mod:`embedkit.train.augmented`):
            fold k's head also trains on those of the other folds; only ``data`` is scored.

    Returns:
        ``(oof, prior)``, plus the test probabilities [M, C] as a third item when ``test`` is given;
        ``prior`` is ``(weights [C], offset [C], head_weight [C])`` or None when the prior is off.
    """
    t0 = t0 or time.monotonic()
    prior = None
    if not uses_prior(cfg):
        oof, tp = _folds(cfg, data, fold, unlabelled, None, t0, test, augmented)
    else:
        selftrain = cfg.pseudo > 0 and unlabelled is not None
        first = replace(cfg, pseudo=0) if selftrain else cfg
        oof, tp = _folds(first, data, fold, unlabelled, None, t0, test, augmented)
        prior = prior_from_oof(cfg, data, oof, None)
        if selftrain:
            oof, tp = _folds(cfg, data, fold, unlabelled, prior, t0, test, augmented)
        print(f"[fit] zero-shot prior: {describe_prior(prior)}", file=sys.stderr)
        oof, tp = cross_fit_prior(cfg, data, fold, oof, test, tp)
    return (oof, prior) if test is None else (oof, prior, tp)


def model_extras(cfg, inputs: dict, prior) -> dict:
    """``model.json`` entries inference needs: ``zero_shot``, ``needs_logits``, ``input_dim``, ``fusion``."""
    out: dict = {"needs_logits": bool(uses_features(cfg) or uses_prior(cfg))}
    n_zs = len(inputs["index"]) if uses_features(cfg) and inputs["index"] is not None else 0
    out["input_dim"] = sum(p["dim"] for p in inputs["parts"]) + n_zs  # what the head takes
    if cfg.zero_shot != "off" and inputs["index"] is not None:
        out["zero_shot"] = {
            "mode": cfg.zero_shot,
            "backbone": cfg.backbone,
            "index": [int(i) for i in inputs["index"]],
            "weights": None if prior is None else [float(v) for v in prior[0]],
            "offset": None if prior is None else [float(v) for v in prior[1]],
        }
        if prior is not None and len(prior) > 2 and np.any(np.asarray(prior[2]) != 1):
            out["zero_shot"]["head_weight"] = [float(v) for v in prior[2]]
    if len(inputs["parts"]) > 1:
        out["fusion"] = inputs["parts"]
    return out


__all__ = [
    "cross_fit_prior",
    "cross_validate",
    "load_unlabelled",
    "model_extras",
    "prior_from_oof",
    "prior_without_cv",
    "spread_ratio",
]

"""The zero-shot prior weight and the smoothing, learned on labelled soundscapes (``fit.py --tune-on``).

Cross-validation scales the prior's weight by the logits' spreads on out-of-fold *clip* windows (or, with
``--prior-choice cv``, chooses it there, where the head is strong); on soundscapes (faint calls over wind,
insects, other birds) the backbone's own classifier is relatively stronger, and the smoothing cannot be
learned on clips at all. With ``--tune-on DATASET --tune-truth CSV`` (soundscapes embedded by ``extract.py``,
e.g. composed by ``embedkit compose``, or BirdCLEF's labelled train soundscapes) a fit also chooses, after
fitting, the pair (prior weight w, smoothing s) of the grid :data:`embedkit.zeroshot.PRIOR_GRID` x
:data:`SMOOTH_GRID` with the best competition metric (:func:`embedkit.metrics.birdclef_score`) on those
windows; the model saves both (``model.json``: ``zero_shot.weights``, ``smooth``, and the whole grid under
``tuning``) and ``infer.py`` smooths with the learned s unless ``--smooth`` is given.

Held-out recordings: when the truth has a ``source`` column (``embedkit compose`` writes one: the training
recordings each soundscape was composed from), those recordings would be scored by a head that was trained
on them. So the choice is made with a second head fit without them (cross-fitting); the saved head is still
fit on every recording. Without a ``source`` column (real soundscapes) the saved head itself is used.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedkit.errors import UsageError
from embedkit.predict.apply import Windows, predict_pipeline, uses_features
from embedkit.zeroshot import PRIOR_GRID, apply_prior

#: smoothing weights tried (the share of the two neighbouring windows, as ``infer.py --smooth``)
SMOOTH_GRID = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75)


@dataclass
class Tuning:
    """What :func:`tune_post` chose.

    Attributes:
        weights: prior weight per label [C] (0 for unmapped labels), or None without a prior.
        smooth: the smoothing weight.
        score: the metric at the chosen pair.
        grid: ``[w, s, score]`` of every pair tried (w None without a prior).
    """

    weights: np.ndarray | None
    smooth: float
    score: float
    grid: list = field(default_factory=list)


def neighbour_mean(P: np.ndarray, files: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean of each window's two neighbours within its file [N, C] (a missing neighbour: the window itself).

    ``(1 - s) * P + s * neighbour_mean(P)`` is :func:`embedkit.predict.post.smooth_windows` per file.
    """
    out = P.astype(np.float64, copy=True)
    for f in np.unique(files):
        rows = np.flatnonzero(files == f)
        rows = rows[np.argsort(window[rows], kind="stable")]
        if len(rows) < 2:
            continue
        p = P[rows].astype(np.float64)
        prev = np.vstack([p[:1], p[:-1]])
        nxt = np.vstack([p[1:], p[-1:]])
        out[rows] = (prev + nxt) / 2
    return out


def tune_post(
    p: np.ndarray,
    z: np.ndarray | None,
    offset: np.ndarray | None,
    mapped: np.ndarray,
    truth: np.ndarray,
    files: np.ndarray,
    window: np.ndarray,
    *,
    per_class: bool = False,
    w_grid: tuple[float, ...] = PRIOR_GRID,
    s_grid: tuple[float, ...] = SMOOTH_GRID,
    margin: float = 0.01,
) -> Tuning:
    """The (prior weight, smoothing) pair with the best metric on labelled soundscape windows.

    Args:
        p: head probabilities without the prior [N, C].
        z: zero-shot logits [N, C], or None (then only the smoothing is chosen).
        offset: prior offset [C] (mean training logit), with ``z``.
        mapped: bool [C], labels the backbone knows (the prior's weight applies to these).
        truth: 0/1 truth [N, C]; labels without a positive and a negative window are not scored.
        files: soundscape of each window [N].
        window: index of each window within its soundscape [N].
        per_class: also a weight per label, kept where it beats the shared one by ``margin`` AUC there.
        w_grid: prior weights tried (ties: the first in grid order).
        s_grid: smoothing weights tried (ties: the first in grid order).
        margin: see ``per_class``.

    Returns:
        :class:`Tuning`.

    Raises:
        UsageError: no label is scorable.
    """
    from embedkit.metrics import birdclef_score, per_class_auc, scorable_classes

    ok = scorable_classes(truth)
    if not ok.any():
        raise UsageError("tuning soundscapes: no label has both a positive and a negative window")
    y = truth[:, ok]
    use_prior = z is not None and bool(mapped.any())
    grid, best = [], (-1.0, None, 0.0)
    for w in w_grid if use_prior else (None,):
        q = p if w is None else apply_prior(p, z, np.where(mapped, w, 0.0), offset)
        nb = neighbour_mean(q, files, window)
        for s in s_grid:
            score = float(birdclef_score(y, ((1 - s) * q + s * nb)[:, ok]))
            grid.append([w, float(s), score])
            if score > best[0] + 1e-12:
                best = (score, w, float(s))
    score, w, s = best
    weights = None if w is None else np.where(mapped, w, 0.0).astype(np.float32)
    if per_class and weights is not None:
        aucs = []
        for g in w_grid:
            q = apply_prior(p, z, np.where(mapped, g, 0.0), offset)
            aucs.append(per_class_auc(truth, (1 - s) * q + s * neighbour_mean(q, files, window)))
        auc = np.nan_to_num(np.stack(aucs), nan=-1.0)  # [G, C]
        shared = list(w_grid).index(w)
        own = auc.argmax(0)
        better = mapped & ok & (auc[own, np.arange(len(own))] - auc[shared] > margin)
        weights[better] = np.asarray(w_grid, np.float32)[own[better]]
        q = apply_prior(p, z, weights, offset)
        score = float(birdclef_score(y, ((1 - s) * q + s * neighbour_mean(q, files, window))[:, ok]))
    return Tuning(weights, s, score, grid)


def check_args(cfg) -> None:
    """Refuse ``--tune-on`` without ``--tune-truth`` (or the reverse) and a missing truth file."""
    if bool(cfg.tune_on) != bool(cfg.tune_truth):
        raise UsageError("--tune-on DATASET and --tune-truth TRUTH.csv go together")
    if cfg.tune_truth and not Path(cfg.tune_truth).is_file():
        raise UsageError(f"--tune-truth: no such file {cfg.tune_truth}")


def _windows(cfg, inputs: dict, labels: list[str]):
    """The tuning windows that the truth labels: (Windows, window index [N], truth [N, C], sources)."""
    from dataclasses import replace

    from embedkit.birdclef.truth import load_truth
    from embedkit.train.data import read_unlabelled
    from embedkit.zeroshot import class_logits

    want = inputs["index"] is not None and cfg.zero_shot != "off"
    keys, X, L = read_unlabelled(replace(cfg, unlabelled=cfg.tune_on), inputs["parts"], want)
    truth = load_truth(cfg.tune_truth, labels)
    rid = keys["row_id"].astype(str).to_numpy()
    keep = np.isin(rid, truth.index.astype(str))
    if not keep.any():
        ex = (rid[0] if len(rid) else "?", truth.index[0] if len(truth) else "?")
        raise UsageError(
            f"--tune-truth {cfg.tune_truth}: none of the {len(rid)} windows of --tune-on {cfg.tune_on} has a "
            f"row there (row ids like {ex[0]} vs {ex[1]})"
        )
    missing = len(set(truth.index.astype(str)) - set(rid[keep]))
    if missing:
        print(f"[fit] tuning: {missing} truth rows lack a window in {cfg.tune_on}; not used", file=sys.stderr)
    have = [c for c in labels if c in truth.columns]
    T = np.zeros((int(keep.sum()), len(labels)), np.float32)
    T[:, [labels.index(c) for c in have]] = truth.loc[rid[keep], have].to_numpy(np.float32) >= 0.5
    sources: set[str] = set()
    if "source" in truth.columns and "source" not in labels:
        for v in truth["source"].dropna().astype(str):
            sources |= {s.strip() for s in v.split(";") if s.strip()}
    z = None if L is None else class_logits(L[keep], inputs["index"])
    w = Windows(X[keep], keys["file"].astype(str).to_numpy()[keep], z)
    return w, keys["window"].to_numpy()[keep], T, sources


def tune_model(cfg, data: Windows, head, prior, unlabelled, inputs: dict, labels: list[str]):
    """Choose the prior weight and the smoothing on ``cfg.tune_on`` (see the module docstring).

    Args:
        cfg: fit config (resolved ``zero_shot``).
        data: the labelled training windows.
        head: the head fit on all of them (the one saved).
        prior: ``(weights [C], offset [C])`` learned by cross-validation, or None without the prior.
        unlabelled: weak negatives (refitting without the sources uses them too).
        inputs: the fit's inputs (:func:`embedkit.train.run.load_training_set`).
        labels: the C label codes.

    Returns:
        ``(prior with the tuned weights, or None; the ``tuning`` entry of model.json)``.
    """
    from embedkit.train.recipe import fit_pipeline

    tw, window, T, sources = _windows(cfg, inputs, labels)
    held = np.isin(data.files, sorted(sources)) if sources else np.zeros(len(data.files), bool)
    tune_head, offset = head, None if prior is None else prior[1]
    if held.any():
        if held.all():
            raise UsageError("the tuning soundscapes are composed from every training recording; compose "
                             "them from a held-out share (embedkit compose --holdout)")  # fmt: skip
        n = len(set(data.files[held].tolist()))
        print(f"[fit] tuning: a head fit without the {n} recordings the soundscapes hold", file=sys.stderr)
        tune_head = fit_pipeline(cfg, data.take(~held), unlabelled, prior)
        if prior is not None:
            offset = data.z[~held].mean(0).astype(np.float64)
    p = predict_pipeline(tune_head, tw, uses_features(cfg), None)
    use = prior is not None and tw.z is not None
    mapped = np.abs(data.z).sum(0) > 0 if use else np.zeros(len(labels), bool)
    zt = tw.z if use else None
    t = tune_post(p, zt, offset, mapped, T, tw.files, window, per_class=cfg.prior_per_class)
    shared = None if t.weights is None else float(np.max(t.weights[mapped], initial=0.0))
    print(
        f"[fit] tuned on {len(T)} windows of {cfg.tune_on}: prior weight {shared if use else 'off'}, "
        f"smoothing {t.smooth:g} (metric {t.score:.4f})",
        file=sys.stderr,
    )
    info = {
        "on": cfg.tune_on,
        "truth": str(cfg.tune_truth),
        "windows": int(len(T)),
        "held_out_recordings": int(len(set(data.files[held].tolist()))),
        "prior_weight": shared,
        "cv_prior_weight": None if prior is None else float(np.max(prior[0], initial=0.0)),
        "smooth": t.smooth,
        "score": t.score,
        "grid": t.grid,
    }
    # tuned weights are blends with the head (head weight 1); without them the cross-validated choice stays
    new_prior = prior if prior is None or t.weights is None else (t.weights, prior[1])
    return new_prior, info


__all__ = ["SMOOTH_GRID", "Tuning", "check_args", "neighbour_mean", "tune_model", "tune_post"]

"""What a fit does besides ``head.fit(X, Y)``: the quality switches of :class:`~embedkit.config.FitConfig`.

One function, :func:`fit_pipeline`, fits a head on labelled windows with every switch that is on;
:func:`embedkit.predict.apply.predict_pipeline` applies it (fit, infer and ``embedkit evaluate`` share both).

* ``zero_shot`` (:mod:`embedkit.zeroshot`): BirdNET's logits of the mapped labels as extra input columns
  (``features``/``both``); the prior blend (``prior``/``both``) is scaled or chosen on out-of-fold
  predictions by the caller, since it needs them.
* ``class_weight`` (exponent a): row weight ``mean over the row's positive labels of (n_max / n_c) ** a``,
  with n_c the recordings of label c (1 = balanced, 0 = off); rows are normalised to mean weight 1.
* ``confidence_weight`` (share b) and ``window_keep`` (share s): multiple windows of a focal recording do not
  all hold the call, so a window weighs ``1 - b + b * r`` with r the window's rank (0..1) within its recording
  by ``window_score`` (by default BirdNET's logit of the recording's primary label; windows of unmapped labels
  weigh 1), and only the best ``ceil(s * n)`` windows are trained on (:mod:`embedkit.train.windows`). Needs
  logits.
* heads whose ``fit`` takes ``groups`` (``mil``) get the recording of each row, for multiple-instance
  training.
* ``weak_negatives`` (weight): windows of an unlabelled set (``--unlabelled``, e.g. train_soundscapes) are
  added as negatives of every label with this row weight.
* ``pseudo`` (rounds): self-training on the unlabelled set: each round labels its windows with the current
  head (and prior), keeps the confident ones with soft targets (:func:`pseudo_labels`) at
  row weight ``pseudo_weight``, and refits on labelled + kept windows (the rest stay weak negatives).
  With ``pseudo_gate`` g > 0 the backbone's own classifier gates the pseudo-positives of the labels it knows
  (:func:`pseudo_labels`): such a label is a pseudo-positive only when the head's probability reaches
  ``pseudo_gated_threshold`` *and* sigmoid(the backbone's logit) reaches g; labels it does not know keep
  ``pseudo_threshold``.
"""

from __future__ import annotations

import inspect
import sys

import numpy as np

from embedkit.predict.apply import Windows, head_input, predict_pipeline, uses_features


def class_weights(Y: np.ndarray, files: np.ndarray, power: float) -> np.ndarray:
    """Row weights [N] from label frequencies: ``mean_c∈row (n_max / n_c) ** power``, mean 1 (see module)."""
    if power <= 0:
        return np.ones(len(Y), np.float32)
    pos = Y >= 0.5
    n_rec = np.array([len(set(files[pos[:, c]])) for c in range(Y.shape[1])], np.float64)
    per_class = np.where(n_rec > 0, (n_rec.max() / np.maximum(n_rec, 1)) ** power, 0.0)
    w = (pos * per_class).sum(1) / np.maximum(pos.sum(1), 1)
    w[pos.sum(1) == 0] = 1.0
    return (w / w.mean()).astype(np.float32)


def confidence_weights(Y: np.ndarray, files: np.ndarray, z: np.ndarray | None, share: float) -> np.ndarray:
    """Row weights [N]: ``1 - share + share * rank`` by the primary label's zero-shot logit (see module)."""
    if share > 0 and z is None:
        raise ValueError("confidence weights need logits")
    from embedkit.train.windows import window_weights

    return window_weights(Windows(np.empty((len(Y), 0), np.float32), files, z, Y), "primary", 1.0, share)


def _fit_head(cfg, X, Y, sw, groups):
    from embedkit.heads import get_head

    head = get_head(cfg.head, **dict(cfg.params))
    if "groups" in inspect.signature(head.fit).parameters:
        return head.fit(X, Y, sw, groups=groups)
    return head.fit(X, Y, sw)


def fit_pipeline(cfg, train: Windows, unlabelled: Windows | None = None, prior=None):
    """Fit ``cfg.head`` on ``train`` with the switches of ``cfg`` (see the module docstring).

    Args:
        cfg: a :class:`~embedkit.config.FitConfig` (or anything with its quality fields).
        train: labelled windows (``Y`` set; ``z`` set when :func:`needs_logits`).
        unlabelled: windows for weak negatives and self-training (``z`` set when the features need it).
        prior: ``(weights [C], offset [C])`` of the zero-shot prior, used by self-training to label windows.

    Returns:
        The fitted head.
    """
    from embedkit.train.windows import window_weights

    feats = uses_features(cfg)
    ww = window_weights(train, cfg.window_score, cfg.window_keep, cfg.confidence_weight)
    if not ww.all():  # --window-keep: the windows left out of this fit
        train, ww = train.take(ww > 0), ww[ww > 0]
    X = head_input(train, feats)
    sw = class_weights(train.Y, train.files, cfg.class_weight) * ww
    rounds = cfg.pseudo if unlabelled is not None else 0
    if unlabelled is None or (cfg.weak_negatives <= 0 and rounds == 0):
        return _fit_head(cfg, X, train.Y, sw, train.files)
    Xu = head_input(unlabelled, feats)
    gu = np.array([f"unlabelled:{i}" for i in range(len(Xu))])  # one bag per window: no bag label
    head = None
    for r in range(rounds + 1):
        T = np.zeros((len(Xu), train.Y.shape[1]), np.float32)
        wu = np.full(len(Xu), max(cfg.weak_negatives, 0.0), np.float32)
        if r > 0:
            P = predict_pipeline(head, unlabelled, feats, prior)
            keep, soft = pseudo_labels(P, cfg.pseudo_threshold, cfg.pseudo_power, *_gate(cfg, unlabelled))
            T[keep] = soft
            print(f"[fit] self-training round {r}: {int(keep.sum())} of {len(keep)} unlabelled windows "
                  "pseudo-labelled", file=sys.stderr)  # fmt: skip
            wu[keep] = cfg.pseudo_weight
        use = wu > 0
        head = _fit_head(
            cfg,
            np.vstack([X, Xu[use]]),
            np.vstack([train.Y, T[use]]),
            np.concatenate([sw, wu[use]]),
            np.concatenate([train.files.astype(str), gu[use]]),
        )
    return head


def _gate(cfg, unlabelled: Windows) -> tuple:
    """``(z, gate, gated_threshold)`` for :func:`pseudo_labels` (no gate without logits or with g = 0)."""
    gate = float(getattr(cfg, "pseudo_gate", 0.0))
    if gate <= 0 or unlabelled.z is None:
        return None, 0.0, None
    return unlabelled.z, gate, float(cfg.pseudo_gated_threshold)


def pseudo_labels(
    P: np.ndarray,
    threshold: float,
    power: float,
    z: np.ndarray | None = None,
    gate: float = 0.0,
    gated_threshold: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Confident windows and their soft targets.

    Without a gate a window is kept when its largest probability reaches ``threshold``. With ``gate`` > 0
    and the backbone's logits ``z``, a label the backbone knows (a column of ``z`` that is not all 0) is a
    pseudo-positive of a window only when ``P >= gated_threshold`` and ``sigmoid(z) >= gate``; the other
    labels need ``P >= threshold``; a window is kept when it has a pseudo-positive. A known label the
    backbone rejects (``sigmoid(z) < gate``) gets target 0 in a kept window.

    Args:
        P: probabilities of the unlabelled windows [M, C].
        threshold: probability a pseudo-positive needs (of every label without a gate).
        power: soft target = ``P ** power`` (>= 1 sharpens).
        z: the backbone's logits of the labels [M, C] (:func:`embedkit.zeroshot.class_logits`), or None.
        gate: minimum sigmoid(z) of a gated pseudo-positive (0 = no gate).
        gated_threshold: probability a gated pseudo-positive needs (default ``threshold``).

    Returns:
        ``(keep bool [M], targets float32 [K, C])`` with K = ``keep.sum()``.
    """
    if power <= 0:
        raise ValueError(f"pseudo_power must be > 0, got {power}")
    P = np.clip(np.asarray(P, np.float64), 0.0, 1.0)
    if gate <= 0 or z is None or not len(P):
        keep = P.max(axis=1) >= threshold if len(P) else np.zeros(0, bool)
        return keep, (P[keep] ** power).astype(np.float32)
    z = np.asarray(z, np.float64)
    known = np.abs(z).sum(0) > 0  # [C] labels the backbone's classifier has
    agrees = 1.0 / (1.0 + np.exp(-z)) >= gate  # [M, C]
    thr = threshold if gated_threshold is None else gated_threshold
    pos = np.where(known, (P >= thr) & agrees, P >= threshold)
    keep = pos.any(axis=1)
    T = np.where(known & ~agrees, 0.0, P) ** power
    return keep, T[keep].astype(np.float32)


def check_params(head: str, params: dict) -> None:
    """Refuse ``--params`` the head does not take, or of the wrong kind, before any data is read.

    A key must be a constructor parameter of the head; a value must be a number where the default is one
    (an integer where it is an integer), true/false where it is a bool, text where it is text.

    Raises:
        UsageError: one line naming the bad key or value and listing the head's parameters with defaults.
    """
    from embedkit.errors import UsageError
    from embedkit.heads import head_class

    defaults = head_class(head)().get_params()
    valid = " ".join(f"{k}={v!r}" for k, v in sorted(defaults.items()))
    for k, v in params.items():
        if k not in defaults:
            raise UsageError(
                f"--params {k}={v}: head {head!r} has no parameter {k!r}; its parameters: {valid}"
            )
        d, want = defaults[k], None
        if isinstance(d, bool):
            want = None if isinstance(v, bool) else "true or false"
        elif isinstance(d, int):
            want = None if isinstance(v, int) and not isinstance(v, bool) else "an integer"
        elif isinstance(d, float):
            want = None if isinstance(v, int | float) and not isinstance(v, bool) else "a number"
        elif isinstance(d, str):
            want = None if isinstance(v, str) else "text"
        if want:
            raise UsageError(
                f"--params {k}={v}: {head} {k} must be {want} (default {d!r}); its parameters: {valid}"
            )


def describe(cfg, asked: str, inputs: dict, unlabelled, dataset, logits: bool) -> list[str]:
    """One line per recipe part: on (with what), or off and why when it is on by default.

    Args:
        cfg: the fit's config (``zero_shot`` resolved).
        asked: ``--zero-shot`` as given (``auto`` by default).
        inputs: what :func:`embedkit.train.run.load_training_set` read (``index``: the label map or None).
        unlabelled: the ``--unlabelled`` windows or None.
        dataset: the training shards' folder.
        logits: whether those shards hold the backbone's logits.
    """
    zs = cfg.zero_shot
    n_mapped = 0 if inputs.get("index") is None else int((np.asarray(inputs["index"]) >= 0).sum())
    if zs in ("prior", "both"):
        how = ("a pair chosen per label on the out-of-fold windows" if cfg.prior_per_class
               else f"weight {cfg.prior_weight:g}, in units of the logits' spreads"
               if cfg.prior_choice == "scaled"
               else "the pair chosen on the out-of-fold windows")  # fmt: skip
        prior = f"on ({n_mapped} labels mapped to the backbone's classes; {how})"
    elif asked == "off":
        prior = "off (--zero-shot off)"
    elif not logits:
        prior = f"off: the shards in {dataset} have no logits: extract with --save-logits"
    elif zs == "features":
        prior = "off (--zero-shot features)"
    else:
        prior = "off: no label maps to the backbone's classes (see taxonomy.csv)"
    if unlabelled is not None and cfg.weak_negatives > 0:
        weak = f"on ({len(unlabelled.X)} windows of {cfg.unlabelled}, weight {cfg.weak_negatives:g})"
    elif cfg.weak_negatives <= 0:
        weak = "off (--weak-negatives 0)"
    else:
        weak = "off: no --unlabelled set (e.g. --unlabelled train_soundscapes, extracted like train_audio)"
    lines = [f"zero-shot prior: {prior}", f"weak negatives: {weak}"]
    if int(dict(cfg.params).get("chunks", 1)) > 1:
        lines.append(f"{cfg.head} head: each of a window's {cfg.params['chunks']} chunks compared on its own "
                     "(shards extracted with --pool concat)")  # fmt: skip
    if zs in ("features", "both"):
        lines.append("zero-shot features: on")
    if cfg.class_weight > 0:
        lines.append(f"class weights: on (exponent {cfg.class_weight:g})")
    from embedkit.train.windows import describe_windows

    if windows := describe_windows(cfg):
        lines.append(windows)
    if cfg.pseudo > 0:
        lines.append(f"self-training: on ({cfg.pseudo} rounds, threshold {cfg.pseudo_threshold:g})")
    return lines


__all__ = ["check_params", "class_weights", "confidence_weights", "describe", "fit_pipeline", "pseudo_labels"]

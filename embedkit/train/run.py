"""Fitting: stored embeddings + ``train.csv`` → grouped cross-validation → refit on all → saved model.

Cross-validation keeps all windows of a recording (or of an author, ``--group-by author``) in one fold and
stratifies folds by primary label where the group sizes allow. Out-of-fold predictions are saved beside the
model so heads can be compared and blended later. The quality switches of :class:`FitConfig` (BirdNET
zero-shot prior or features, class/confidence weights, weak negatives, self-training, fusion) are applied by
:mod:`embedkit.train.recipe` and :mod:`embedkit.train.cv`; ``embedkit evaluate`` measures them.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.birdclef import DataError, build_targets, load_labels, load_train
from embedkit.config import FitConfig, to_dict
from embedkit.errors import UsageError
from embedkit.store import read_provenance


@dataclass
class FitResult:
    """What ``run_fit`` produced."""

    folder: Path
    scores: dict[str, float]
    per_class: pd.DataFrame
    oof: np.ndarray | None
    elapsed_s: float


def make_folds(groups: np.ndarray, strata: np.ndarray, n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold index per row, grouped (a group never spans two folds) and stratified where possible.

    Args:
        groups: group id per row [N] (recording or author).
        strata: class id per row [N] (primary label), used for stratification.
        n_folds: number of folds K.
        seed: shuffling seed.

    Returns:
        int array [N] with values in 0..K-1.

    Raises:
        UsageError: fewer groups than folds.
    """
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    if n_groups < n_folds:
        raise UsageError(
            f"{n_groups} groups (recordings/authors) cannot fill {n_folds} folds; use fewer --folds"
        )
    fold = np.full(len(groups), -1, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has only n members"
        cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        for k, (_, va) in enumerate(cv.split(np.zeros(len(groups)), strata, groups)):
            fold[va] = k
    return fold


def per_class_table(labels, Y: np.ndarray, files: np.ndarray, P: np.ndarray | None = None) -> pd.DataFrame:
    """Per-class table: label, n recordings, n windows, ROC-AUC, AP (NaN where undefined or without P).

    Args:
        labels: C class codes.
        Y: targets [N, C] (positive where >= 0.5).
        files: recording of each row [N].
        P: predictions [N, C], e.g. out-of-fold; ``None`` gives counts only.
    """
    from embedkit.metrics import per_class_ap, per_class_auc

    pos = Y >= 0.5
    n_rec = [len(np.unique(files[pos[:, c]])) for c in range(len(labels))]
    nan = np.full(len(labels), np.nan)
    auc = nan if P is None else per_class_auc(pos, P)
    ap = nan if P is None else per_class_ap(pos, P)
    return pd.DataFrame(
        {"label": labels, "n_recordings": n_rec, "n_windows": pos.sum(0), "roc_auc": auc, "ap": ap}
    )


def score_all(Y: np.ndarray, P: np.ndarray) -> dict[str, float]:
    """Competition metric (macro ROC-AUC over classes with positives), padded cmAP and macro AP."""
    from embedkit.metrics import birdclef_score, macro_ap, padded_cmap

    pos = (Y >= 0.5).astype(np.float32)
    return {
        "roc_auc": float(birdclef_score(pos, P)),
        "cmap_pad5": float(padded_cmap(pos, P)),
        "macro_ap": float(macro_ap(pos, P)),
    }


def load_training_set(cfg: FitConfig):
    """(keys, X, Y, labels, train, provenance, report, inputs) for a fit; clear errors before any writing.

    ``inputs`` holds what the quality switches need: ``zero_shot`` (the resolved mode), ``index`` (label →
    BirdNET class, or None), ``z`` (zero-shot logits of the labels [N, C], or None) and ``parts`` (one
    provenance per fused backbone).
    """
    from embedkit.train.data import has_logits, read_windows, resolve_zero_shot
    from embedkit.train.windows import detector_score, needs_detector, needs_ranking
    from embedkit.zeroshot import class_logits

    if cfg.annotations:  # targets from Raven selection tables (train/annotations.py)
        from embedkit.train.annotations import load_annotated_set

        return load_annotated_set(cfg)
    dataset = Path(cfg.embeddings) / cfg.backbone / cfg.split
    labels = load_labels(cfg.data)
    train = load_train(cfg.data)
    if cfg.group_by == "author" and "author" not in train.columns:
        raise DataError("--group-by author: train.csv has no author column")
    mode, index = resolve_zero_shot(cfg, labels)
    if needs_ranking(cfg) and index is None:  # the logits rank the windows, with the prior off
        if not has_logits(dataset):
            raise UsageError(
                "--window-keep / --confidence-weight rank a recording's windows by the backbone's logits, "
                f"but the shards in {dataset} have none; re-extract with extract.py --save-logits"
            )
        try:
            mode, index = "off", resolve_zero_shot(replace(cfg, zero_shot="features"), labels)[1]
        except DataError:  # no label the backbone knows: a detector score still ranks windows
            if cfg.window_score == "primary":
                raise
            mode, index = "off", np.full(len(labels), -1, np.int64)
    keys, X, L, parts = read_windows(cfg.embeddings, [cfg.backbone, *cfg.fuse], cfg.split, index is not None)
    Y, keep, report = build_targets(keys, train, labels, cfg.secondary_weight)
    if not keep.any():
        raise DataError(f"none of the {len(keys)} windows in {dataset} belongs to a file listed in train.csv")
    z = None if index is None else class_logits(L[keep], index)
    score = detector_score(L[keep], index, cfg.window_score) if needs_detector(cfg) else None
    extra = {"zero_shot": mode, "index": index, "z": z, "parts": parts, "score": score}
    prov = read_provenance(dataset)
    return keys[keep].reset_index(drop=True), X[keep], Y, labels, train, prov, report, extra


def check_prior(cfg) -> None:
    """Refuse a prior weight that is no number >= 0; say when ``--prior-weight`` goes unused."""
    import math

    w = cfg.prior_weight
    if isinstance(w, bool) or not (isinstance(w, int | float) and math.isfinite(w) and w >= 0):
        raise UsageError(f"--prior-weight must be a number >= 0, got {cfg.prior_weight!r}")
    chooser = "--prior-per-class" if cfg.prior_per_class else "--prior-choice cv"
    if (cfg.prior_per_class or cfg.prior_choice == "cv") and cfg.folds > 1 and w != FitConfig.prior_weight:
        print(f"[fit] --prior-weight {w:g} is not used: {chooser} chooses the blend on the out-of-fold "
              "windows (the weight applies only without cross-validation, --folds 0)",
              file=sys.stderr)  # fmt: skip


def run_fit(cfg: FitConfig) -> FitResult:
    """Cross-validate, refit on all data and save a head (see the module docstring).

    Returns:
        The saved folder, CV scores (empty without CV), the per-class table and the OOF predictions.

    Raises:
        DataError, StoreError, UsageError: unusable inputs, before anything is written.
    """
    from embedkit.heads import head_class
    from embedkit.predict.apply import Windows, uses_prior
    from embedkit.predict.model import save_model
    from embedkit.schemas import check_params as check_bounds
    from embedkit.train.annotations import class_folder_tables
    from embedkit.train.augmented import fold_of, read_augmented, training_rows
    from embedkit.train.cv import cross_validate, iterations, load_unlabelled, model_extras, prior_without_cv
    from embedkit.train.data import chunk_params, has_logits
    from embedkit.train.recipe import check_params, describe, fit_pipeline
    from embedkit.train.windows import needs_detector

    t0 = time.monotonic()
    head_class(cfg.head)  # unknown head → error before any work
    check_params(cfg.head, dict(cfg.params))  # unknown or ill-typed --params: before any data is read
    check_bounds(cfg.head, dict(cfg.params), "--params")  # sizes, threads, devices: before any allocation
    check_prior(cfg)
    cfg = class_folder_tables(cfg)  # --data DIR of class folders: train.csv / taxonomy.csv written for it
    asked = cfg.zero_shot
    if cfg.tune_on or cfg.tune_truth:
        from embedkit.train.tune import check_args

        check_args(cfg)
    other = [f for f, on in (("--annotations", cfg.annotations), ("--extra-labels", cfg.extra_labels),
                             ("--add-to", cfg.add_to)) if on]  # fmt: skip
    if other and needs_detector(cfg):
        raise UsageError(f"--window-score {cfg.window_score} ranks the windows of train.csv's recordings "
                         f"only; with {', '.join(other)} use --window-score primary")  # fmt: skip
    keys, X, Y, labels, train, prov, report, inputs = load_training_set(cfg)
    if cfg.extra_labels:
        from embedkit.train.extra import add_extra_labels

        keys, X, Y, inputs = add_extra_labels(cfg, keys, X, Y, labels, inputs)
    base = None
    if cfg.add_to:  # new labels only; saved with the base model as a composite (train/addto.py)
        from embedkit.train.addto import restrict_to_new

        base, labels, Y, inputs = restrict_to_new(cfg, labels, Y, inputs, prov)
    files = keys["file"].astype(str).to_numpy()
    cfg = replace(cfg, zero_shot=inputs["zero_shot"])
    cfg = replace(cfg, params=chunk_params(cfg, prov))  # proto on --pool concat shards: per chunk
    data = Windows(X, files, inputs["z"], Y, inputs.get("score"))
    mixed = read_augmented(cfg, labels, train, inputs)  # None: clean shards or --augmented clean
    aug = None if mixed is None else (mixed, np.zeros(len(mixed.X), np.int64))
    unlabelled = load_unlabelled(cfg, inputs)
    for line in report.lines():
        print(f"[fit] {line}", file=sys.stderr)
    dataset = Path(cfg.embeddings) / cfg.backbone / cfg.split
    for line in describe(cfg, asked, inputs, unlabelled, dataset, has_logits(dataset)):
        print(f"[fit] {line}", file=sys.stderr)
    oof, fold, scores, prior = None, None, {}, None
    per_class = per_class_table(labels, Y, files)
    if cfg.folds >= 2:
        groups = files
        if cfg.group_by == "author":
            author = dict(zip(train["filename"], train["author"], strict=True))
            groups = np.array([author.get(f, f) for f in files])
        fold = make_folds(groups, Y.argmax(1), cfg.folds, cfg.seed)
        if mixed is not None:  # a recording's variants go to its fold
            aug = (mixed, fold_of(mixed.files, files, fold))
        oof, prior = cross_validate(cfg, data, fold, unlabelled, t0, augmented=aug)
        scores = score_all(Y, oof)
        per_class = per_class_table(labels, Y, files, oof)
        print(
            f"[fit] {cfg.folds}-fold CV ({cfg.group_by}-grouped): ROC-AUC {scores['roc_auc']:.4f}  "
            f"cmAP(pad5) {scores['cmap_pad5']:.4f}  macro AP {scores['macro_ap']:.4f}"
        )
    print(f"[fit] refit on all {len(X)} windows ({iterations(cfg)}), {time.monotonic() - t0:.0f} s so far",
          file=sys.stderr)  # fmt: skip
    rows = training_rows(data, aug, None)
    scale = uses_prior(cfg) and prior is None  # no CV: the prior scaled by the refit head's own predictions
    head = fit_pipeline(replace(cfg, pseudo=0) if scale else cfg, rows, unlabelled, prior)
    if scale:
        prior = prior_without_cv(cfg, data, head)
        if cfg.pseudo > 0:  # self-training labels the unlabelled windows with the prior: fit again with it
            head = fit_pipeline(cfg, rows, unlabelled, prior)
    print(f"[fit] refit done, {time.monotonic() - t0:.0f} s", file=sys.stderr)
    tuned = {}
    if cfg.tune_on:  # prior weight and smoothing learned on labelled soundscapes
        from embedkit.train.tune import tune_model

        prior, tuning = tune_model(cfg, data, head, prior, unlabelled, inputs, labels)
        tuned = {"tuning": tuning, "smooth": tuning["smooth"]}
    name = cfg.name or f"{'+'.join([cfg.backbone, *cfg.fuse])}-{cfg.head}"  # fused: birdnet+onnx-logreg
    meta = {
        "params": head.get_params(),
        "config": to_dict(cfg),
        "cv": scores,
        "priors": Y.mean(0),
        "report": vars(report),
        "n_windows": len(X),
        "n_augmented": 0 if mixed is None else len(mixed.X),
        "fit_seconds": time.monotonic() - t0,
        **model_extras(cfg, inputs, prior),
        **tuned,
    }
    extra = {"cv_per_class.csv": lambda p: per_class.to_csv(p, index=False)}
    if oof is not None:
        extra["oof.parquet"] = lambda p: _write_oof(p, keys, fold, Y, oof)
    if base is not None:
        from embedkit.train.addto import save_extended

        name = cfg.name or f"{Path(cfg.add_to).name}-extended"
        save_new = lambda dst: save_model(dst, head, cfg.head, labels, prov, meta, extra)  # noqa: E731
        folder = save_extended(cfg, base, name, save_new)
    else:
        folder = save_model(Path(cfg.out) / name, head, cfg.head, labels, prov, meta, extra)
    elapsed = time.monotonic() - t0
    print(f"[fit] saved {folder} ({elapsed:.1f} s)", file=sys.stderr)
    return FitResult(folder=folder, scores=scores, per_class=per_class, oof=oof, elapsed_s=elapsed)


def _write_oof(path: Path, keys: pd.DataFrame, fold: np.ndarray, Y: np.ndarray, P: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def fixed(a):
        return pa.FixedSizeListArray.from_arrays(pa.array(a.astype(np.float32).ravel()), a.shape[1])

    table = pa.table(
        {
            "file": keys["file"].astype(str),
            "window": keys["window"].to_numpy(np.int32),
            "row_id": keys["row_id"].astype(str),
            "fold": fold.astype(np.int32),
            "y": fixed(Y),
            "oof": fixed(P),
        }
    )
    pq.write_table(table, path)


def read_oof(folder: str | Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Out-of-fold predictions of a saved model: (keys with fold, Y [N, C], P [N, C])."""
    import pyarrow.parquet as pq

    t = pq.read_table(Path(folder) / "oof.parquet")
    c = t.num_columns and t.column("y").type.list_size
    Y = t.column("y").combine_chunks().values.to_numpy().reshape(-1, c)
    P = t.column("oof").combine_chunks().values.to_numpy().reshape(-1, c)
    return t.select(["file", "window", "row_id", "fold"]).to_pandas(), Y, P


def main(cfg: FitConfig) -> int:
    """CLI body of ``fit``."""
    run_fit(cfg)
    return 0

"""Labelled windows (a hits table with its ``label`` column filled) → extra training rows for ``fit.py``.

``fit.py --extra-labels labelled.csv`` reads the table with :func:`load_labels`: each row marks one window
(``dataset``, ``file``, ``window``) as a positive (``y``) or an explicit negative (``n``) of ``species``;
blank / ``skip`` rows are ignored. :func:`add_extra_labels` then

* sets the target of ``species`` to 1 / 0 on a window that is already a training window (e.g. ``n`` on a
  window of a focal recording that does not hold its bird: a window-level negative);
* adds every other labelled window (e.g. from ``train_soundscapes``) as a new training row whose target is 1
  for the species marked ``y`` on it and 0 for every other label (as ``--weak-negatives`` treats unlabelled
  windows). Its embedding is read from its own dataset, whose provenance must match the training shards. New
  rows are grouped by their recording in cross-validation (file name prefixed by the dataset's name).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.errors import UsageError

POSITIVE = frozenset({"y", "yes", "1", "true", "+", "pos", "positive"})
NEGATIVE = frozenset({"n", "no", "0", "false", "-", "neg", "negative"})
SKIPPED = frozenset({"", "s", "skip", "?", "nan"})
LABEL_COLUMNS = ["dataset", "file", "window", "species", "y"]


def parse_label(value) -> float | None:
    """A ``label`` cell → 1.0 (positive), 0.0 (negative) or None (not labelled); others raise ValueError."""
    v = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip().lower()
    if v in POSITIVE:
        return 1.0
    if v in NEGATIVE:
        return 0.0
    if v in SKIPPED:
        return None
    raise ValueError(v)


def load_labels(path: str | os.PathLike, dataset: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read a labelled hits table.

    Args:
        path: CSV with columns ``file``, ``window``, ``species``, ``label`` and (unless ``dataset`` is given)
            ``dataset``, the shard folder of each window, as ``embedkit search`` writes it.
        dataset: shard folder for rows without a ``dataset`` value.

    Returns:
        One row per labelled (dataset, file, window, species) with :data:`LABEL_COLUMNS`; ``y`` is 1.0 or 0.0.

    Raises:
        UsageError: a missing file or column, an unknown label value, a labelled row without species, or
            one window marked both ``y`` and ``n`` for the same species.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"labels file not found: {p}")
    try:
        df = pd.read_csv(
            p, dtype={"file": str, "species": str, "label": str, "dataset": str}, keep_default_na=False
        )
    except (ValueError, pd.errors.ParserError) as e:
        raise UsageError(f"{p}: not a readable CSV ({' '.join(str(e).split())[:160]})") from None
    need = ["file", "window", "species", "label"] + ([] if dataset is not None else ["dataset"])
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise UsageError(f"{p}: missing column(s) {missing}; expected a hits table from embedkit search")
    from embedkit.schemas import HITS, check_table

    check_table(df, HITS, str(p))  # window counts, finite start_s / end_s, relative file names
    if "dataset" not in df.columns:
        df["dataset"] = ""
    ys = []
    for i, v in enumerate(df["label"]):
        try:
            ys.append(parse_label(v))
        except ValueError:
            raise UsageError(f"{p}: row {i + 2}: label {v!r} is not one of y / n / skip (or blank)") from None
    df["y"] = pd.array(ys, dtype="Float64")
    df = df[df["y"].notna()].copy()
    blank = df["species"].str.strip() == ""
    if blank.any():
        raise UsageError(
            f"{p}: row {int(df.index[blank][0]) + 2} is labelled but has no species; fill the "
            f"species column (or pass --species to embedkit search / label)"
        )
    df["dataset"] = [str(Path(d if d else (dataset or "")).resolve()) for d in df["dataset"]]
    if not pd.api.types.is_integer_dtype(df["window"]):
        raise UsageError(f"{p}: the window column must hold integers")
    df["y"] = df["y"].astype(np.float32)
    df = df[LABEL_COLUMNS].drop_duplicates()
    clash = df.duplicated(["dataset", "file", "window", "species"], keep=False)
    if clash.any():
        r = df[clash].iloc[0]
        raise UsageError(f"{p}: {r['file']} window {r['window']} is marked both y and n for {r['species']}")
    return df.reset_index(drop=True)


def add_extra_labels(cfg, keys: pd.DataFrame, X: np.ndarray, Y: np.ndarray, labels: list[str], inputs: dict):
    """Apply ``cfg.extra_labels`` to a training set (see the module docstring).

    Args:
        cfg: the :class:`~embedkit.config.FitConfig` (``extra_labels``, ``embeddings``, ``backbone``,
            ``split``, ``fuse``).
        keys: training windows [N] (``file``, ``window``, ...).
        X: embeddings float32 [N, D].
        Y: targets float32 [N, C].
        labels: the C label codes.
        inputs: the fit's inputs dict (``z``, ``index``, ``parts``); ``z`` gets the new rows' logits.

    Returns:
        ``(keys [N + M], X [N + M, D], Y [N + M, C], inputs)`` with M added windows.
    """
    train_ds = (Path(cfg.embeddings) / cfg.backbone / cfg.split).resolve()
    lab = load_labels(cfg.extra_labels, dataset=train_ds)
    unknown = sorted(set(lab["species"]) - set(labels))
    if unknown:
        raise UsageError(f"--extra-labels: species {unknown[:5]} are not labels of this fit")
    col = {c: i for i, c in enumerate(labels)}
    Y = Y.copy()
    mine = lab["dataset"] == str(train_ds)
    pos = pd.Series(np.arange(len(keys)), index=pd.MultiIndex.from_frame(keys[["file", "window"]]))
    at = pos.reindex(pd.MultiIndex.from_frame(lab[["file", "window"]])).to_numpy()
    hit = mine.to_numpy() & ~np.isnan(at)
    for r, s, y in zip(at[hit].astype(np.int64), lab["species"][hit], lab["y"][hit], strict=True):
        Y[r, col[s]] = y
    new = lab[~hit]
    parts_k, parts_x, parts_y, parts_z = [keys], [X], [Y], [inputs.get("z")]
    for ds, grp in new.groupby("dataset", sort=True):
        if cfg.fuse:
            raise UsageError("--extra-labels with --fuse: only windows of the training set can be labelled")
        k2, X2, Z2 = _dataset_rows(ds, grp, inputs)
        T = np.zeros((len(k2), Y.shape[1]), np.float32)
        w_at = {kw: i for i, kw in enumerate(zip(k2["file"], k2["window"], strict=True))}
        for f, w, s, y in zip(grp["file"], grp["window"], grp["species"], grp["y"], strict=True):
            T[w_at[(f, w)], col[s]] = y
        k2 = k2.assign(file=[f"{Path(ds).name}/{f}" for f in k2["file"]])
        parts_k.append(k2)
        parts_x.append(X2)
        parts_y.append(T)
        parts_z.append(Z2)
    print(
        f"[fit] extra labels: {int((lab['y'] == 1).sum())} positive, {int((lab['y'] == 0).sum())} negative; "
        f"{int(hit.sum())} training windows relabelled, {sum(map(len, parts_k[1:]))} windows added",
        file=sys.stderr,
    )
    if len(parts_k) > 1:
        keys = pd.concat(parts_k, ignore_index=True)
        X = np.vstack(parts_x).astype(np.float32)
        Y = np.vstack(parts_y)
        if inputs.get("z") is not None:
            inputs = {**inputs, "z": np.vstack(parts_z).astype(np.float32)}
    return keys, X, Y, inputs


def _dataset_rows(ds: str, grp: pd.DataFrame, inputs: dict):
    """(keys [M], X [M, D], zero-shot logits [M, C] or None) of the labelled windows of another dataset."""
    from embedkit.store import read_embeddings
    from embedkit.train.data import has_logits
    from embedkit.zeroshot import class_logits

    want_z = inputs.get("z") is not None
    if want_z and not has_logits(ds):
        raise UsageError(
            f"--extra-labels: {ds} holds no logits, which this fit's zero-shot mode needs; "
            f"re-extract it with --save-logits or fit with --zero-shot off"
        )
    out = read_embeddings(ds, expect=inputs["parts"][0]["provenance"], logits=want_z)
    keys, X = out[0], out[1]
    pos = pd.Series(np.arange(len(keys)), index=pd.MultiIndex.from_frame(keys[["file", "window"]]))
    wanted = grp[["file", "window"]].drop_duplicates()
    at = pos.reindex(pd.MultiIndex.from_frame(wanted)).to_numpy()
    if np.isnan(at).any():
        r = wanted[np.isnan(at)].iloc[0]
        raise UsageError(f"--extra-labels: {r['file']} window {r['window']} is not in {ds}")
    at = at.astype(np.int64)
    Z = class_logits(out[2][at], inputs["index"]) if want_z else None
    return keys.iloc[at].reset_index(drop=True), X[at], Z

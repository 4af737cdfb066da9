"""Labels from Raven selection tables (``fit.py --annotations``) and from class folders (``fit.py --data``).

``--annotations TABLES``: each table belongs to the audio file of the same relative path (``site/rec1`` +
``.selections.txt``, Raven's ``.Table.1.selections.txt`` and BirdNET's ``.BirdNET.selection.table.txt``
too; a table found by name alone matches the one recording of that stem). The windows of ``--split`` (extract
the annotated audio with ``extract.py --files AUDIO --name SPLIT``) get their targets from the boxes:

* a window is **positive** for a box's class when it covers at least ``--min-overlap`` of the box (of the
  window, for a box longer than the window);
* a window covering a box of class ``negative`` / ``noise`` / ``background`` that way, and no positive box,
  is an **explicit negative** (target 0 for every class);
* with ``--annotated-fully`` (every call of the annotated files is boxed), a window touching no box is a
  negative too;
* every other window (partly overlapping a box, or unannotated in a partly annotated file) is left out, as
  are the windows of files without a table.

``--data DIR`` with one sub-folder per class and no ``train.csv``: :func:`class_folder_tables` writes
``train.csv`` and ``taxonomy.csv`` for it (and says where), so extract + fit need no hand-written CSV.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.birdclef import DataError, TargetReport
from embedkit.errors import UsageError
from embedkit.tables import find_tables, read_raven, table_key

NEGATIVE_CLASSES = frozenset({"negative", "neg", "noise", "background", "none"})


def read_boxes(cfg, files: list[str]) -> pd.DataFrame:
    """Every box of the ``--annotations`` tables with the shard file it belongs to.

    Args:
        cfg: the fit config (``annotations``, ``annotation_column``).
        files: the relative paths of the recordings in the shards.

    Returns:
        Frame with ``file``, ``begin_s``, ``end_s``, ``label`` (unlabelled boxes dropped with a note).

    Raises:
        DataError: no table matches a recording of the shards.
    """
    by_key = {f.rsplit(".", 1)[0]: f for f in files}
    by_stem: dict[str, list[str]] = {}
    for f in files:
        by_stem.setdefault(Path(f).stem, []).append(f)
    frames, unmatched, blank = [], [], 0
    for table, root in find_tables(cfg.annotations):
        key = table_key(table, root)
        f = by_key.get(key) or (by_stem.get(Path(key).name) or [None, None])
        if isinstance(f, list):
            f = f[0] if len(f) == 1 else None
        if f is None:
            unmatched.append(str(table))
            continue
        t = read_raven(table, cfg.annotation_column)
        blank += int((t["label"] == "").sum())
        t = t[t["label"] != ""]
        frames.append(
            pd.DataFrame({"file": f, "begin_s": t["begin_s"], "end_s": t["end_s"], "label": t["label"]})
        )
    if unmatched:
        print(
            f"[fit] --annotations: {len(unmatched)} table(s) match no recording of the shards (extract their "
            f"audio into --split), ignored: {', '.join(unmatched[:3])}",
            file=sys.stderr,
        )
    if blank:
        print(f"[fit] --annotations: {blank} box(es) without a class, ignored", file=sys.stderr)
    if not frames:
        raise DataError(
            f"no selection table of {cfg.annotations} belongs to a recording of the shards "
            f"(e.g. {files[:2]}); name tables like the audio: rec1.wav -> rec1.selections.txt"
        )
    return pd.concat(frames, ignore_index=True)


def window_targets(
    starts: np.ndarray,
    ends: np.ndarray,
    boxes: pd.DataFrame,
    labels: list[str],
    min_overlap: float,
    fully: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Targets of one recording's windows from its boxes (see the module docstring).

    Args:
        starts: [W] window starts (s).
        ends: [W] window ends (s).
        boxes: the recording's boxes (``begin_s``, ``end_s``, ``label``).
        labels: the C classes.
        min_overlap: share of the box (or of the window, for longer boxes) a window must cover.
        fully: windows touching no box are negatives.

    Returns:
        ``(Y float32 [W, C], keep bool [W])``.
    """
    col = {c: i for i, c in enumerate(labels)}
    Y = np.zeros((len(starts), len(labels)), np.float32)
    pos, neg, touched = (np.zeros(len(starts), bool) for _ in range(3))
    for b0, b1, lab in zip(boxes["begin_s"], boxes["end_s"], boxes["label"], strict=True):
        ov = np.clip(np.minimum(ends, b1) - np.maximum(starts, b0), 0, None)
        if b1 > b0:
            share = ov / np.minimum(b1 - b0, ends - starts)
        else:  # a point annotation: inside or not
            share = ((starts <= b0) & (b0 <= ends)).astype(np.float64)
        hit = share >= min_overlap
        touched |= ov > 0
        if lab.lower() in NEGATIVE_CLASSES:
            neg |= hit
        else:
            Y[hit, col[lab]] = 1.0
            pos |= hit
    keep = pos | (neg & ~pos) | (~touched if fully else np.zeros(len(starts), bool))
    return Y, keep


def load_annotated_set(cfg):
    """Like :func:`embedkit.train.run.load_training_set`, with targets from ``cfg.annotations``."""
    from embedkit.store import read_provenance
    from embedkit.train.data import read_windows, resolve_zero_shot
    from embedkit.zeroshot import class_logits

    if cfg.group_by == "author":
        raise UsageError("--group-by author needs train.csv; --annotations groups by recording")
    if not 0 < cfg.min_overlap <= 1:
        raise UsageError(f"--min-overlap must be in (0, 1], got {cfg.min_overlap}")
    dataset = Path(cfg.embeddings) / cfg.backbone / cfg.split
    keys0 = read_windows(cfg.embeddings, [cfg.backbone], cfg.split)[0]
    boxes = read_boxes(cfg, sorted(set(keys0["file"].astype(str))))
    labels = sorted({c for c in boxes["label"] if c.lower() not in NEGATIVE_CLASSES})
    if not labels:
        raise DataError(f"--annotations: no box has a class other than {sorted(NEGATIVE_CLASSES)}")
    mode, index = resolve_zero_shot(cfg, labels)
    keys, X, L, parts = read_windows(cfg.embeddings, [cfg.backbone, *cfg.fuse], cfg.split, index is not None)
    Y = np.zeros((len(keys), len(labels)), np.float32)
    keep = np.zeros(len(keys), bool)
    files = keys["file"].astype(str).to_numpy()
    for f, grp in boxes.groupby("file"):
        rows = np.flatnonzero(files == f)
        s, e = keys["start_s"].to_numpy()[rows], keys["end_s"].to_numpy()[rows]
        Y[rows], keep[rows] = window_targets(s, e, grp, labels, cfg.min_overlap, cfg.annotated_fully)
    if not keep.any():
        raise DataError(f"--annotations: no window of {dataset} is labelled (lower --min-overlap?)")
    n_pos, n_neg = int((Y[keep].max(1) > 0).sum()), int((Y[keep].max(1) == 0).sum())
    print(
        f"[fit] --annotations: {len(boxes)} boxes in {boxes['file'].nunique()} recordings -> {n_pos} "
        f"positive and {n_neg} negative windows; {len(labels)} classes",
        file=sys.stderr,
    )
    if n_pos == 0:
        raise DataError("--annotations: no window covers a box enough to be positive (lower --min-overlap?)")
    z = None if index is None else class_logits(L[keep], index)
    rep = TargetReport(windows=int(keep.sum()), files=len(set(files[keep])))
    train = pd.DataFrame({"filename": sorted(set(files[keep])), "primary_label": labels[0]})
    extra = {"zero_shot": mode, "index": index, "z": z, "parts": parts}
    prov = read_provenance(dataset)
    return keys[keep].reset_index(drop=True), X[keep], Y[keep], labels, train, prov, rep, extra


def class_folder_tables(cfg):
    """``--data DIR`` of class folders, no CSV: ``train.csv`` and ``taxonomy.csv`` written for it.

    They go to ``OUT/data-<DIR name>/``; returns the config reading them (else ``cfg`` unchanged).
    """
    from embedkit.audio import list_audio

    root = Path(cfg.data)
    if (
        cfg.annotations
        or not root.is_dir()
        or any((root / n).is_file() for n in ("train.csv", "taxonomy.csv", "sample_submission.csv"))
    ):
        return cfg
    rels = [p.relative_to(root).as_posix() for p in list_audio(root)]
    nested = [r for r in rels if "/" in r]
    if not nested:
        return cfg
    if len(nested) < len(rels):
        print(
            f"[fit] --data {root}: {len(rels) - len(nested)} audio file(s) outside a class folder, ignored",
            file=sys.stderr,
        )
    labels = sorted({r.split("/", 1)[0] for r in nested})
    if len(labels) < 2 or {"train_audio", "train_soundscapes", "test_soundscapes"} & set(labels):
        return cfg  # a BirdCLEF root without its CSVs (or one class): the usual error follows
    out = Path(cfg.out) / f"data-{root.resolve().name}"
    out.mkdir(parents=True, exist_ok=True)
    train = pd.DataFrame(
        {"primary_label": [r.split("/", 1)[0] for r in nested], "secondary_labels": "[]", "filename": nested}
    )
    from embedkit.files import replace_atomically

    replace_atomically(out / "train.csv", lambda tmp: train.to_csv(tmp, index=False))
    replace_atomically(
        out / "taxonomy.csv", lambda tmp: pd.DataFrame({"primary_label": labels}).to_csv(tmp, index=False)
    )
    print(
        f"[fit] --data {root}: one folder per class ({len(labels)} classes, {len(nested)} files); wrote "
        f"{out / 'train.csv'} and {out / 'taxonomy.csv'} (edit them to add secondary labels; "
        f"pass --data {out} "
        f"to use them as they are)",
        file=sys.stderr,
    )
    return replace(cfg, data=str(out))


__all__ = ["NEGATIVE_CLASSES", "class_folder_tables", "load_annotated_set", "read_boxes", "window_targets"]

"""BirdCLEF specifics: the label space and multi-hot targets from ``train.csv``.

The label space is the ``sample_submission.csv`` columns after ``row_id`` (fallback: ``taxonomy.csv``
``primary_label`` in file order) — 206 codes for BirdCLEF 2025. Everything that reads competition tables
raises :class:`DataError` with a one-line message when a table is unusable, and counts (rather than
fails on) small inconsistencies such as unknown secondary labels.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.errors import EmbedkitError

REQUIRED_TRAIN = ("primary_label", "filename")


class DataError(EmbedkitError, ValueError):
    """A competition table is missing or unusable; the message names the file and the problem."""


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:
        raise DataError(f"{path}: cannot read CSV ({' '.join(str(e).split())[:160]})") from None


def load_labels(data_root: str | os.PathLike) -> list[str]:
    """Class codes in submission column order.

    Args:
        data_root: folder with ``sample_submission.csv`` and/or ``taxonomy.csv``.

    Returns:
        list of C label codes.

    Raises:
        DataError: neither file is usable, ``row_id`` is missing, labels repeat, or the two files disagree.
    """
    root = Path(data_root)
    sample, tax = root / "sample_submission.csv", root / "taxonomy.csv"
    labels = None
    if sample.is_file():
        labels = load_labels_from_sample(sample)
    if tax.is_file():
        tlabels = _read_csv(tax, "taxonomy.csv")
        if "primary_label" not in tlabels.columns:
            raise DataError(f"{tax}: no primary_label column")
        tl = list(tlabels["primary_label"])
        if labels is None:
            labels = tl
        elif set(tl) != set(labels):
            only_s, only_t = sorted(set(labels) - set(tl)), sorted(set(tl) - set(labels))
            raise DataError(
                f"taxonomy.csv and sample_submission.csv disagree: only in sample {only_s[:5]}, "
                f"only in taxonomy {only_t[:5]}"
            )
    if labels is None:
        raise DataError(f"no sample_submission.csv or taxonomy.csv in {root}: cannot tell the label space")
    if not labels:
        raise DataError(f"{sample}: no label columns after row_id")
    if len(set(labels)) != len(labels):
        raise DataError(
            f"label space has repeated codes: {sorted({c for c in labels if labels.count(c) > 1})[:5]}"
        )
    return labels


def load_labels_from_sample(sample: str | os.PathLike) -> list[str]:
    """Label columns of a sample submission; :class:`DataError` when ``row_id`` is not the first column."""
    path = Path(sample)
    if not path.is_file():
        raise DataError(f"sample submission not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes); expected a header row_id,<label>,…")
    try:
        cols = list(pd.read_csv(path, nrows=0).columns)
    except Exception as e:  # pandas raises several types (EmptyDataError, ParserError, UnicodeDecodeError)
        raise DataError(f"{path}: cannot read CSV ({' '.join(str(e).split())[:160]})") from None
    if not cols or cols[0] != "row_id":
        raise DataError(f"{sample}: first column must be row_id, found {cols[:1]}")
    dup = duplicated_header(path)
    if dup:
        raise DataError(f"{sample}: column(s) {dup[:5]} appear more than once in the header; fix the file")
    return [str(c) for c in cols[1:]]


def duplicated_header(path: str | os.PathLike) -> list[str]:
    """Names that repeat in a CSV's header row (pandas would read the second ``X`` as ``X.1``)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            head = next(csv.reader(f), [])
    except (OSError, csv.Error):
        return []
    return sorted({c for c in head if head.count(c) > 1})


def parse_secondary(value: object) -> list[str] | None:
    """Parse a ``secondary_labels`` cell (Python-literal list). ``None`` when malformed."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    s = str(value).strip()
    if s in ("", "[]", "['']"):
        return []
    try:
        v = ast.literal_eval(s)
    except (ValueError, SyntaxError):
        return None
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v):
        return None
    return [x for x in v if x]


def load_train(data_root: str | os.PathLike) -> pd.DataFrame:
    """``train.csv`` with the needed columns checked; duplicated filenames keep their first row.

    Raises:
        DataError: missing file or a missing required column.
    """
    path = Path(data_root) / "train.csv"
    df = _read_csv(path, "train.csv")
    missing = [c for c in REQUIRED_TRAIN if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    if "secondary_labels" not in df.columns:
        df["secondary_labels"] = "[]"
    df.attrs["duplicated_filenames"] = int(df["filename"].duplicated().sum())
    return df.drop_duplicates("filename", keep="first").reset_index(drop=True)


@dataclass
class TargetReport:
    """Counts of what did not fit while building targets."""

    windows: int = 0
    files: int = 0
    shard_files_not_in_train: int = 0
    train_rows_without_embeddings: int = 0
    unknown_secondary: int = 0
    malformed_secondary: int = 0
    duplicated_filenames: int = 0
    unknown_secondary_codes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable lines for the non-zero counts."""
        out = [f"{self.windows} windows from {self.files} files"]
        for k in (
            "shard_files_not_in_train",
            "train_rows_without_embeddings",
            "unknown_secondary",
            "malformed_secondary",
            "duplicated_filenames",
        ):
            if getattr(self, k):
                out.append(f"{k.replace('_', ' ')}: {getattr(self, k)}")
        if self.unknown_secondary_codes:
            out.append(f"unknown secondary codes (first 10): {self.unknown_secondary_codes[:10]}")
        return out


def build_targets(
    keys: pd.DataFrame, train: pd.DataFrame, labels: list[str], secondary_weight: float = 1.0
) -> tuple[np.ndarray, np.ndarray, TargetReport]:
    """Multi-hot targets per window.

    Args:
        keys: window keys [N] with a ``file`` column (path relative to ``train_audio`` = train.csv filename).
        train: ``train.csv`` rows (see :func:`load_train`).
        labels: label space, C codes.
        secondary_weight: target value of each secondary label (0 disables).

    Returns:
        ``(Y, keep, report)``: Y float32 [M, C] for the M windows whose file is in train.csv, ``keep`` the
        boolean mask [N] of those windows, and the report of counts.

    Raises:
        DataError: some primary labels are not in the label space.
    """
    index = {c: i for i, c in enumerate(labels)}
    unknown = sorted(set(train["primary_label"]) - set(index))
    if unknown:
        raise DataError(
            f"{len(unknown)} primary label(s) of train.csv are not in the label space "
            f"(sample_submission.csv/taxonomy.csv): {unknown[:8]}"
        )
    rep = TargetReport(duplicated_filenames=int(train.attrs.get("duplicated_filenames", 0)))
    rows = {}
    unk_codes: set[str] = set()
    for fn, prim, sec in zip(
        train["filename"], train["primary_label"], train["secondary_labels"], strict=True
    ):
        y = np.zeros(len(labels), dtype=np.float32)
        codes = parse_secondary(sec)
        if codes is None:
            rep.malformed_secondary += 1
            codes = []
        if secondary_weight > 0:
            for c in codes:
                if c in index:
                    y[index[c]] = max(y[index[c]], secondary_weight)
                else:
                    rep.unknown_secondary += 1
                    unk_codes.add(c)
        y[index[prim]] = 1.0
        rows[fn] = y
    files = keys["file"].astype(str).to_numpy()
    keep = np.fromiter((f in rows for f in files), bool, len(files))
    uniq = set(files)
    rep.shard_files_not_in_train = len(uniq - set(rows))
    rep.train_rows_without_embeddings = len(set(rows) - uniq)
    rep.unknown_secondary_codes = sorted(unk_codes)
    kept = files[keep]
    Y = np.stack([rows[f] for f in kept]) if len(kept) else np.zeros((0, len(labels)), np.float32)
    rep.windows, rep.files = int(keep.sum()), len(set(kept))
    return Y, keep, rep

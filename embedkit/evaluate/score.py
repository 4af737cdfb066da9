"""``embedkit score``: the competition metric of a submission against your own labelled soundscapes.

The truth is a CSV in one of two forms:

* **wide** (as ``submission.csv``): ``row_id`` plus one 0/1 column per label (``test_truth.csv`` of the demo);
* **long** (as BirdCLEF's labelled train soundscapes): one row per labelled stretch with ``filename``,
  ``start``, ``end`` (seconds, or ``HH:MM:SS``) and ``primary_label`` (several labels separated by ``;``);
  every 5 s window ``<stem>_<end>`` that a stretch overlaps is positive for its labels. Every window of a
  listed file up to its last labelled end is scored; windows of the file not listed are negatives.

The score is :func:`embedkit.metrics.birdclef_score` (macro ROC-AUC over the labels with a positive and a
negative) over the truth's rows and the labels both files share (or ``--labels``), with a per-class table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.birdclef.truth import WINDOW_S, load_truth, long_to_wide  # noqa: F401 (re-exported)
from embedkit.errors import UsageError
from embedkit.files import replace_atomically


def score_tables(sub: pd.DataFrame, truth: pd.DataFrame, labels: list[str] | None = None):
    """Score a submission against a truth table (both indexed by row_id).

    Returns:
        ``(score, per-class DataFrame [label, positives, auc], windows scored)``.

    Raises:
        UsageError: truth rows missing from the submission, no shared label, or no scorable label.
    """
    from embedkit.metrics import birdclef_score, per_class_auc, scorable_classes

    missing = truth.index.difference(sub.index)
    if len(missing):
        raise UsageError(f"submission lacks {len(missing)} of the truth's rows, e.g. {missing[0]!r}")
    cols = [c for c in truth.columns if c in sub.columns]
    if labels is not None:
        unknown = [c for c in labels if c not in cols]
        if unknown:
            raise UsageError(f"--labels not in both submission and truth: {', '.join(unknown[:5])}")
        cols = list(labels)
    if not cols:
        raise UsageError("submission and truth share no label column")
    y = truth[cols].to_numpy(np.float32)
    p = sub.loc[truth.index, cols].to_numpy(np.float64)
    if not np.isfinite(p).all():
        raise UsageError("submission holds NaN or infinite values in the scored rows")
    if not scorable_classes(y).any():
        raise UsageError("no label has both a positive and a negative window in the truth")
    auc = per_class_auc(y, p)
    table = pd.DataFrame({"label": cols, "positives": (y >= 0.5).sum(0).astype(int), "auc": auc})
    return float(birdclef_score(y, p)), table, len(truth)


def _labels_arg(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    if len(values) == 1 and Path(values[0]).is_file():
        return [ln.strip() for ln in Path(values[0]).read_text().splitlines() if ln.strip()]
    return values


def add_args(p: argparse.ArgumentParser) -> None:
    """Flags of ``embedkit score``."""
    p.add_argument("submission", help="submission CSV (row_id + one probability column per label)")
    p.add_argument("--truth", required=True, help="truth CSV: wide (row_id + 0/1 columns) or long "
                   "(filename, start, end, primary_label)")  # fmt: skip
    p.add_argument("--labels", nargs="+", help="score only these labels (codes, or one text file of codes)")
    p.add_argument("--out", help="also write the per-class table to this CSV")


def cmd_score(args: argparse.Namespace) -> int:
    """CLI body of ``embedkit score``: per-class markdown table, then the score line."""
    sp = Path(args.submission)
    if not sp.is_file():
        raise UsageError(f"submission not found: {sp}")
    sub = pd.read_csv(sp)
    if "row_id" not in sub.columns:
        raise UsageError(f"{sp}: no row_id column")
    sub = sub.set_index("row_id")
    truth = load_truth(args.truth, list(sub.columns))
    score, table, n = score_tables(sub, truth, _labels_arg(args.labels))
    print("| label | positive windows | ROC-AUC |\n|---|---|---|")
    for r in table.itertuples():
        print(f"| {r.label} | {r.positives} | {'—' if r.auc != r.auc else f'{r.auc:.3f}'} |")
    if args.out:
        replace_atomically(args.out, lambda tmp: table.to_csv(tmp, index=False), sync=False)
    k = int(table["auc"].notna().sum())
    print(f"score {score:.4f}  (macro ROC-AUC over {k} of {len(table)} labels, {n} windows)")
    return 0


__all__ = ["add_args", "cmd_score", "load_truth", "long_to_wide", "score_tables"]

"""Labelled soundscapes as a table: truth CSVs in the wide or the long form, read as one wide table.

* **wide** (as ``submission.csv``): ``row_id`` plus one 0/1 column per label (``test_truth.csv`` of the demo,
  ``truth.csv`` of ``embedkit compose``); columns that are not labels (``source``) are kept but not scored;
* **long** (as BirdCLEF's labelled train soundscapes): one row per labelled stretch with ``filename``,
  ``start``, ``end`` (seconds, or ``HH:MM:SS``) and ``primary_label`` (several labels separated by ``;``);
  every 5 s window ``<stem>_<end>`` that a stretch overlaps is positive for its labels. Every window of a
  listed file up to its last labelled end is scored; windows of the file not listed are negatives.

Read by ``embedkit score`` and by ``fit.py --tune-truth``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.errors import UsageError

WINDOW_S = 5


def _seconds(v) -> float:
    s = str(v).strip()
    if ":" in s:
        parts = [float(p) for p in s.split(":")]
        return sum(p * 60**i for i, p in enumerate(reversed(parts)))
    return float(s)


def long_to_wide(df: pd.DataFrame, labels: list[str], window_s: int = WINDOW_S) -> pd.DataFrame:
    """Long truth (filename, start, end, primary_label) → wide truth (row_id + one 0/1 column per label)."""
    rows: dict[str, set[str]] = {}
    for f, g in df.groupby(df["filename"].astype(str), sort=True):
        stem = Path(f).stem
        last = int(np.ceil(max(_seconds(e) for e in g["end"]) / window_s)) * window_s
        wins = {w: set() for w in range(window_s, last + window_s, window_s)}
        for s, e, lab in zip(g["start"], g["end"], g["primary_label"], strict=True):
            s, e = _seconds(s), _seconds(e)
            for w in wins:
                if min(e, w) - max(s, w - window_s) > 0:
                    wins[w] |= {x.strip() for x in str(lab).split(";") if x.strip()}
        rows.update({f"{stem}_{w}": v for w, v in wins.items()})
    out = pd.DataFrame(0, index=list(rows), columns=labels, dtype=np.float32)
    for rid, labs in rows.items():
        known = [x for x in labs if x in out.columns]
        out.loc[rid, known] = 1.0
    return out.rename_axis("row_id").reset_index()


def load_truth(path: str | Path, labels: list[str]) -> pd.DataFrame:
    """Truth CSV (wide or long, see the module docstring) as a wide table indexed by row_id."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"truth file not found: {p}")
    df = pd.read_csv(p)
    if "row_id" in df.columns:
        return df.set_index("row_id")
    if {"filename", "start", "end", "primary_label"} <= set(df.columns):
        return long_to_wide(df, labels).set_index("row_id")
    raise UsageError(f"{p}: truth needs a row_id column (wide) or filename, start, end, primary_label (long)")


__all__ = ["WINDOW_S", "load_truth", "long_to_wide"]

"""Search hits as Raven selection tables, and back (``embedkit search --raven``, ``embedkit label``).

``search --raven DIR`` writes one table per source recording, ``DIR/<file without suffix>.selections.txt``:
the standard columns, ``Annotation`` (the species), ``Label`` (empty: a reviewer types ``y`` / ``n`` in
Raven), ``Score``, ``Rank``, ``Window``, ``Begin File`` (the recording's relative path), ``Dataset`` and
``Audio``. ``embedkit label --hits DIR`` reads such tables as a hits table (:func:`read_raven_hits`), and
``label --raven DIR2`` writes the labelled hits as tables for ``fit.py --annotations DIR2``
(:func:`write_labelled_tables`): ``y`` → a box of the species, ``n`` → a box of class ``negative``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.errors import UsageError
from embedkit.tables import TableError, find_tables, raven_frame, read_raven, write_raven
from embedkit.train.extra import parse_label

NEGATIVE = "negative"


def _table_path(folder: Path, file: str) -> Path:
    return folder / (file.rsplit(".", 1)[0] + ".selections.txt")


def write_hit_tables(hits: pd.DataFrame, folder: str | os.PathLike, high_hz: float = 0.0) -> list[Path]:
    """One Raven table per source recording of ``hits`` (see the module docstring); the paths written."""
    out = []
    for file, g in hits.groupby("file", sort=True):
        g = g.sort_values("start_s")
        extra = {
            "Label": g["label"].fillna("").astype(str).to_numpy() if "label" in g else "",
            "Score": g["score"].to_numpy(),
            "Rank": g["rank"].to_numpy(),
            "Window": g["window"].to_numpy(),
            "Begin File": file,
            "Dataset": g["dataset"].to_numpy() if "dataset" in g else "",
            "Audio": g["audio"].to_numpy() if "audio" in g else "",
        }
        species = g["species"].fillna("").astype(str) if "species" in g else pd.Series([""] * len(g))
        t = raven_frame(g["start_s"], g["end_s"], species.to_numpy(), 0.0, high_hz, extra)
        out.append(write_raven(_table_path(Path(folder), str(file)), t))
    return out


def read_raven_hits(path: str | os.PathLike) -> pd.DataFrame:
    """Hit tables written by :func:`write_hit_tables` (a folder or one file) → one hits table.

    Raises:
        UsageError: no table, or a table without the ``Window`` / ``Begin File`` columns search writes.
    """
    frames = []
    try:
        tables = find_tables(path)
        for t, _ in tables:
            df = read_raven(t, "Annotation")
            missing = [c for c in ("Window", "Begin File") if c not in df.columns]
            if missing:
                raise UsageError(f"{t}: no {missing} column; expected a table of embedkit search --raven")
            frames.append(
                pd.DataFrame(
                    {
                        "rank": pd.to_numeric(df.get("Rank", pd.Series(np.arange(len(df)) + 1))),
                        "score": pd.to_numeric(df.get("Score", np.nan)),
                        "file": df["Begin File"],
                        "window": pd.to_numeric(df["Window"]).astype(np.int64),
                        "start_s": df["begin_s"],
                        "end_s": df["end_s"],
                        "audio": df.get("Audio", ""),
                        "dataset": df.get("Dataset", ""),
                        "species": df["label"],
                        "label": df.get("Label", "").str.strip() if "Label" in df else "",
                    }
                )
            )
    except TableError as e:
        raise UsageError(str(e)) from None
    return pd.concat(frames, ignore_index=True).sort_values("rank", kind="stable").reset_index(drop=True)


def write_labelled_tables(hits: pd.DataFrame, folder: str | os.PathLike) -> list[Path]:
    """Labelled hits → one Raven table per recording for ``fit.py --annotations``.

    ``y`` rows become boxes of their species, ``n`` rows boxes of class ``negative``; unlabelled rows are
    left out. Returns the paths written.
    """
    ys = np.array([parse_label(v) for v in hits["label"]], dtype=object)
    lab = hits[ys != None].assign(y=[float(v) for v in ys[ys != None]])  # noqa: E711 - elementwise
    out = []
    for file, g in lab.groupby("file", sort=True):
        g = g.sort_values("start_s")
        ann = np.where(g["y"] == 1.0, g["species"].astype(str), NEGATIVE)
        t = raven_frame(g["start_s"], g["end_s"], ann, 0.0, 0.0, {"Begin File": file, "Score": g["score"]})
        out.append(write_raven(_table_path(Path(folder), str(file)), t))
    return out


__all__ = ["NEGATIVE", "read_raven_hits", "write_hit_tables", "write_labelled_tables"]

"""Detection tables: one row per (window, label) whose score reaches a threshold, in the field's formats.

The canonical frame has ``file`` (path relative to the analysed folder), ``start_s``, ``end_s``, ``label``,
``score``. :func:`write_detections` writes it as

* ``raven``: a Raven selection table (``*.selections.txt``, :mod:`embedkit.tables.raven`): the standard
  columns, ``Annotation`` (the label), ``Score``, ``Begin File``, ``File Offset (s)``;
* ``audacity``: an Audacity label track (``*.labels.txt``: ``start<TAB>end<TAB>label (score)``);
* ``csv``: the canonical columns (``*.csv``);
* ``kaleidoscope``: the CSV BirdNET-Analyzer writes for Kaleidoscope (``INDIR,FOLDER,IN FILE,OFFSET,DURATION,
  scientific_name,common_name,confidence,lat,lon,week,overlap,sensitivity``; ``*.kaleidoscope.csv``);
* ``parquet``: the canonical columns (``*.parquet``).

:func:`read_detections` reads every format back into the canonical frame.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from embedkit.tables.raven import TableError, raven_frame, read_raven

COLUMNS = ["file", "start_s", "end_s", "label", "score"]
#: format → per-recording file ending
FORMATS = {
    "raven": ".selections.txt",
    "audacity": ".labels.txt",
    "csv": ".csv",
    "kaleidoscope": ".kaleidoscope.csv",
    "parquet": ".parquet",
}
KALEIDOSCOPE = [
    "INDIR", "FOLDER", "IN FILE", "OFFSET", "DURATION", "scientific_name", "common_name", "confidence",
    "lat", "lon", "week", "overlap", "sensitivity",
]  # fmt: skip


def detections(
    file: str, starts: np.ndarray, ends: np.ndarray, probs: np.ndarray, labels: list[str], min_score: float
) -> pd.DataFrame:
    """The detections of one recording.

    Args:
        file: the recording's relative path.
        starts: [W] window starts (s).
        ends: [W] window ends (s).
        probs: [W, C] scores.
        labels: the C labels.
        min_score: keep scores >= this.

    Returns:
        Canonical frame (:data:`COLUMNS`), by start time, then by score (highest first).
    """
    w, c = np.nonzero(np.asarray(probs) >= min_score)
    df = pd.DataFrame(
        {
            "file": file,
            "start_s": np.asarray(starts, np.float64)[w],
            "end_s": np.asarray(ends, np.float64)[w],
            "label": np.asarray(labels, dtype=object)[c] if len(c) else np.array([], dtype=object),
            "score": np.asarray(probs, np.float64)[w, c].round(6),
        },
        columns=COLUMNS,
    )
    return df.sort_values(["start_s", "score"], ascending=[True, False], kind="stable").reset_index(drop=True)


def write_detections(
    path: str | os.PathLike,
    det: pd.DataFrame,
    fmt: str,
    high_hz: float = 0.0,
    overlap_s: float = 0.0,
    root: str = "",
) -> Path:
    """Write one table atomically in format ``fmt`` (see the module docstring).

    Args:
        path: output file.
        det: canonical frame.
        fmt: one of :data:`FORMATS`.
        high_hz: upper frequency of the Raven boxes (the backbone's Nyquist frequency).
        overlap_s: window overlap (Kaleidoscope's ``overlap`` column).
        root: the analysed folder (Kaleidoscope's ``INDIR``).
    """
    from embedkit.files import replace_atomically

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "raven":
        t = raven_frame(
            det["start_s"], det["end_s"], det["label"], 0.0, high_hz,
            {"Score": det["score"].to_numpy(), "Begin File": det["file"].to_numpy(),
             "File Offset (s)": det["start_s"].to_numpy()},
        )  # fmt: skip
        return replace_atomically(p, lambda tmp: t.to_csv(tmp, sep="\t", index=False, float_format="%.6g"))
    if fmt == "audacity":
        lines = [
            f"{a:.6g}\t{b:.6g}\t{c} ({s:.3f})\n" for a, b, c, s in det[COLUMNS[1:]].itertuples(index=False)
        ]
        return replace_atomically(p, lambda tmp: Path(tmp).write_text("".join(lines)))
    if fmt == "kaleidoscope":
        rel = [PurePosixPath(f) for f in det["file"]]
        k = pd.DataFrame(
            {
                "INDIR": root,
                "FOLDER": [str(r.parent) if str(r.parent) != "." else "" for r in rel],
                "IN FILE": [r.name for r in rel],
                "OFFSET": det["start_s"].to_numpy(),
                "DURATION": (det["end_s"] - det["start_s"]).to_numpy(),
                "scientific_name": det["label"].to_numpy(),
                "common_name": det["label"].to_numpy(),
                "confidence": det["score"].to_numpy(),
                "lat": -1, "lon": -1, "week": -1, "overlap": overlap_s, "sensitivity": 1.0,
            },
            columns=KALEIDOSCOPE,
        )  # fmt: skip
        return replace_atomically(p, lambda tmp: k.to_csv(tmp, index=False, float_format="%.6g"))
    if fmt == "csv":
        return replace_atomically(p, lambda tmp: det[COLUMNS].to_csv(tmp, index=False, float_format="%.6g"))
    if fmt == "parquet":
        return replace_atomically(p, lambda tmp: det[COLUMNS].to_parquet(tmp, index=False))
    raise TableError(f"unknown detection format {fmt!r}; one of {', '.join(FORMATS)}")


def read_detections(path: str | os.PathLike, fmt: str, file: str) -> pd.DataFrame:
    """A table written by :func:`write_detections` back as the canonical frame (``file`` fills it in)."""
    p = Path(path)
    if fmt == "raven":
        t = read_raven(p, "Annotation")
        score = pd.to_numeric(t["Score"], errors="coerce") if "Score" in t else np.nan
        df = pd.DataFrame({"start_s": t["begin_s"], "end_s": t["end_s"], "label": t["label"], "score": score})
    elif fmt == "audacity":
        rows = []
        for line in p.read_text().splitlines():
            if line.strip() and not line.startswith("\\"):
                a, b, text = line.split("\t", 2)
                lab, _, s = text.rpartition(" (")
                rows.append((float(a), float(b), lab, float(s.rstrip(")"))))
        df = pd.DataFrame(rows, columns=COLUMNS[1:])
    elif fmt == "kaleidoscope":
        k = pd.read_csv(p, dtype={"scientific_name": str}, keep_default_na=False)
        df = pd.DataFrame(
            {"start_s": k["OFFSET"], "end_s": k["OFFSET"] + k["DURATION"], "label": k["scientific_name"],
             "score": k["confidence"]}
        )  # fmt: skip
    elif fmt == "csv":
        df = pd.read_csv(p, dtype={"label": str, "file": str}, keep_default_na=False).drop(columns="file")
    elif fmt == "parquet":
        df = pd.read_parquet(p).drop(columns="file")
    else:
        raise TableError(f"unknown detection format {fmt!r}; one of {', '.join(FORMATS)}")
    df.insert(0, "file", file)
    return df.astype({"start_s": np.float64, "end_s": np.float64, "score": np.float64, "label": str})[COLUMNS]


def summary(det: pd.DataFrame) -> pd.DataFrame:
    """Per file × label: ``max_score``, ``detections`` and ``minutes``.

    ``minutes``: minutes of the recording that hold a detection (overlap one of its windows).

    Args:
        det: canonical frame of any number of recordings.
    """
    rows = []
    for (f, lab), g in det.groupby(["file", "label"], sort=True):
        mins = set()
        for a, b in zip(g["start_s"], g["end_s"], strict=True):
            last = max(int(np.floor(a / 60)), int(np.ceil(b / 60)) - 1)
            mins.update(range(int(np.floor(a / 60)), last + 1))
        rows.append((f, lab, float(g["score"].max()), len(g), len(mins)))
    return pd.DataFrame(rows, columns=["file", "label", "max_score", "detections", "minutes"])


__all__ = ["COLUMNS", "FORMATS", "detections", "read_detections", "summary", "write_detections"]

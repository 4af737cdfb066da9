"""Raven Pro selection tables: read (any Raven, BirdNET-Analyzer or embedkit table) and write.

A selection table is tab-separated text with a header row. The standard columns are ``Selection``,
``View``, ``Channel``, ``Begin Time (s)``, ``End Time (s)``, ``Low Freq (Hz)``, ``High Freq (Hz)``; users and
tools add an annotation column (``Annotation``, ``Species``, ``Species Code``, ``Common Name``, ...). Raven
writes each selection once per view (``Waveform 1`` and ``Spectrogram 1``): :func:`read_raven` keeps one
row per selection. OpenSoundscape's ``BoxedAnnotations.from_raven_files`` reads what :func:`write_raven`
writes (its ``annotation_column`` is ``Annotation``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.errors import EmbedkitError

STANDARD = [
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
]
#: annotation columns looked for, in order, when none is named
ANNOTATION_COLUMNS = ("Annotation", "Species", "Species Code", "Label", "Class", "Common Name", "Sound Type")
#: table name endings stripped to find the audio file a table belongs to (Raven, BirdNET-Analyzer, embedkit)
TABLE_SUFFIXES = (
    ".BirdNET.selection.table.txt",
    ".selection.table.txt",
    ".selections.txt",
    ".txt",
)


class TableError(EmbedkitError, ValueError):
    """A selection table is missing or unusable; the message names the file and the problem."""


def read_raven(path: str | os.PathLike, annotation_column: str | None = None) -> pd.DataFrame:
    """One Raven selection table as a frame.

    Args:
        path: tab-separated selection table.
        annotation_column: column holding each box's class (default: the first of
            :data:`ANNOTATION_COLUMNS` present).

    Returns:
        One row per selection, with ``begin_s``, ``end_s``, ``low_hz``, ``high_hz`` (NaN when the table has
        no frequencies), ``label`` (str, "" when the table has no annotation column) and the original
        columns.

    Raises:
        TableError: unreadable file, no ``Begin Time (s)`` / ``End Time (s)``, an unknown annotation column,
            non-numeric times or a box that ends before it begins.
    """
    p = Path(path)
    try:
        df = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise TableError(f"selection table not found: {p}") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise TableError(
            f"{p}: not a tab-separated selection table ({' '.join(str(e).split())[:160]})"
        ) from None
    df.columns = [str(c).strip() for c in df.columns]
    lower = {c.lower(): c for c in df.columns}
    for need in ("Begin Time (s)", "End Time (s)"):
        if need.lower() not in lower:
            raise TableError(f"{p}: no {need!r} column; found {list(df.columns)[:8]}")
    if "view" in lower and "selection" in lower:  # Raven: one row per view of each selection
        views = df[lower["view"]].str.lower()
        spec = views.str.startswith("spectrogram")
        if spec.any():
            df = df[spec | ~df[lower["selection"]].isin(df.loc[spec, lower["selection"]])]
    df = df.reset_index(drop=True)

    def num(name: str, required: bool) -> np.ndarray:
        col = lower.get(name.lower())
        if col is None:
            return np.full(len(df), np.nan)
        v = pd.to_numeric(df[col].str.strip(), errors="coerce").to_numpy(np.float64)
        bad = np.isnan(v) & (df[col].str.strip() != "").to_numpy() | (required & np.isnan(v))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise TableError(f"{p}: row {r + 2}: {col} {df[col].iloc[r]!r} is not a number")
        return v

    out = df.copy()
    out["begin_s"], out["end_s"] = num("Begin Time (s)", True), num("End Time (s)", True)
    out["low_hz"], out["high_hz"] = num("Low Freq (Hz)", False), num("High Freq (Hz)", False)
    back = out["end_s"] < out["begin_s"]
    if back.any():
        r = int(np.flatnonzero(back.to_numpy())[0])
        raise TableError(f"{p}: row {r + 2}: the box ends ({out['end_s'][r]:g} s) before it begins")
    col = annotation_column
    if col is not None and col.lower() not in lower:
        raise TableError(f"{p}: no annotation column {col!r}; found {list(df.columns)[:12]}")
    if col is None:
        col = next((c for c in ANNOTATION_COLUMNS if c.lower() in lower), None)
    out["label"] = df[lower[col.lower()]].str.strip() if col is not None else ""
    return out


def table_key(table: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """The audio file a table belongs to, without suffix: ``site/rec1.selections.txt`` → ``site/rec1``.

    Also strips Raven's ``.Table.1`` (``rec1.Table.1.selections.txt``). ``root``: the path is taken relative
    to it (else only the name is used).
    """
    p = Path(table)
    rel = p.relative_to(root).as_posix() if root is not None and p.is_relative_to(root) else p.name
    for suf in TABLE_SUFFIXES:
        if rel.endswith(suf):
            rel = rel[: -len(suf)]
            break
    if ".Table." in rel:
        rel = rel[: rel.rindex(".Table.")]
    return rel


def find_tables(paths: list[str | os.PathLike] | str | os.PathLike) -> list[tuple[Path, Path]]:
    """Selection tables among files and folders (folders searched recursively for ``*.txt``).

    Returns:
        ``(table, root)`` pairs, ``root`` = the folder it was found under (its own folder for a file).

    Raises:
        TableError: a path that does not exist, or no table at all.
    """
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    found: list[tuple[Path, Path]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found += [(t, p) for t in sorted(p.rglob("*.txt")) if not t.name.startswith(".")]
        elif p.is_file():
            found.append((p, p.parent))
        else:
            raise TableError(f"selection table(s) not found: {p} (no such file or folder)")
    if not found:
        raise TableError(f"no selection tables (*.txt) in {', '.join(map(str, items))}")
    return found


def raven_frame(
    begin_s, end_s, label, low_hz=0.0, high_hz=None, extra: dict[str, object] | None = None
) -> pd.DataFrame:
    """A selection table frame with the standard columns, then ``Annotation`` and ``extra`` columns.

    Args:
        begin_s: [N] begin times (s).
        end_s: [N] end times (s).
        label: [N] classes (the ``Annotation`` column).
        low_hz: lower frequency of each box (scalar or [N]).
        high_hz: upper frequency (scalar or [N]; default 0, Raven then shows the whole band).
        extra: more columns (name → scalar or [N]), e.g. ``{"Score": scores}``.
    """
    n = len(begin_s)
    df = pd.DataFrame(
        {
            "Selection": np.arange(1, n + 1),
            "View": "Spectrogram 1",
            "Channel": 1,
            "Begin Time (s)": np.round(np.asarray(begin_s, np.float64), 6),
            "End Time (s)": np.round(np.asarray(end_s, np.float64), 6),
            "Low Freq (Hz)": low_hz,
            "High Freq (Hz)": 0.0 if high_hz is None else high_hz,
            "Annotation": list(label),
        },
        index=range(n),
    )
    for k, v in (extra or {}).items():
        df[k] = v
    return df


def write_raven(path: str | os.PathLike, table: pd.DataFrame) -> Path:
    """Write a selection table (e.g. from :func:`raven_frame`) atomically, tab-separated, UTF-8."""
    from embedkit.files import replace_atomically

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return replace_atomically(p, lambda tmp: table.to_csv(tmp, sep="\t", index=False, float_format="%.6g"))


__all__ = [
    "ANNOTATION_COLUMNS",
    "STANDARD",
    "TableError",
    "find_tables",
    "raven_frame",
    "read_raven",
    "table_key",
    "write_raven",
]

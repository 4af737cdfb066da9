"""What ``embedkit analyze`` reads and writes around the models.

The recordings, the label subset, the run's settings, each recording's table path and the combined tables.

Recordings are named by their path relative to the analysed folder (``site1/20240501_060000.wav``), never by
their stem, so same-named files of different folders keep their own tables (``OUT/site1/20240501_060000``
+ the format's ending).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd

from embedkit.audio import AUDIO_SUFFIXES, list_audio
from embedkit.errors import UsageError
from embedkit.files import replace_atomically
from embedkit.tables.detections import COLUMNS, FORMATS, read_detections, summary

SETTINGS = "analysis.json"


def list_recordings(items: list[str], recursive: bool) -> tuple[Path, list[Path], list[str]]:
    """(base folder, audio files, their relative paths) of the ``--audio`` folders and files.

    One folder: paths are relative to it. Several items: relative to their common folder.

    Raises:
        UsageError: a path that does not exist, a file that is not audio, or two recordings that would
            share a table (same path but for the audio suffix).
    """
    if not items:
        raise UsageError("no --audio given")
    files: list[Path] = []
    dirs = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            dirs.append(p)
            found = (
                list_audio(p)
                if recursive
                else sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in AUDIO_SUFFIXES)
            )
            files += found
        elif p.is_file():
            if p.suffix.lower() not in AUDIO_SUFFIXES:
                raise UsageError(f"--audio {p}: not an audio file ({', '.join(sorted(AUDIO_SUFFIXES))})")
            files.append(p)
        else:
            raise UsageError(f"--audio {p}: no such file or folder")
    if len(items) == 1 and dirs:
        base = dirs[0]
    else:
        base = Path(
            os.path.commonpath([str((d if d.is_dir() else d.parent).absolute()) for d in map(Path, items)])
        )
        files = [f.absolute() for f in files]
    files = sorted(set(files))
    rels = [f.relative_to(base).as_posix() for f in files]
    seen: dict[str, str] = {}
    for r in rels:
        key = r.rsplit(".", 1)[0]
        if key in seen:
            raise UsageError(f"{seen[key]} and {r} would share one table; rename one or analyse them apart")
        seen[key] = r
    return base, files, rels


def table_path(out: Path, rel: str, fmt: str) -> Path:
    """Where the table of recording ``rel`` goes: ``OUT/<rel without audio suffix><format ending>``."""
    return out / (rel.rsplit(".", 1)[0] + FORMATS[fmt])


def select_labels(given: list[str], labels: list[str]) -> list[str]:
    """The output labels: all, or ``--labels`` (codes, or text files of codes, one per line), in model order.

    Raises:
        UsageError: a code that no model knows.
    """
    if not given:
        return labels
    want: list[str] = []
    for g in given:
        p = Path(g)
        if p.is_file():
            want += [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        else:
            want.append(g)
    unknown = sorted(set(want) - set(labels))
    if unknown:
        raise UsageError(f"--labels: {unknown[:8]} are not labels of the model(s) (e.g. {labels[:5]})")
    return [c for c in labels if c in set(want)]


def check_settings(out: Path, settings: dict, overwrite: bool) -> bool:
    """Record the run's settings in ``OUT/analysis.json``; whether tables already there may be reused.

    Raises:
        UsageError: ``OUT`` holds tables made with other settings (and not ``overwrite``).
    """
    path = out / SETTINGS
    old = json.loads(path.read_text()) if path.is_file() else None
    out.mkdir(parents=True, exist_ok=True)
    if old is not None and old != settings and not overwrite:
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        raise UsageError(
            f"{out} holds an analysis with other settings ({', '.join(diff)}); "
            "use another --out or --overwrite"
        )
    replace_atomically(path, lambda tmp: Path(tmp).write_text(json.dumps(settings, indent=1)))
    return not overwrite


def combine(out: Path, rels: list[str], fmt: str) -> tuple[Path, Path, int]:
    """Write the combined ``OUT/detections.csv`` (``.parquet`` too for that format) and ``OUT/summary.csv``.

    They hold every recording's table present (all parts of a ``--part`` run that have finished so far).

    Returns:
        ``(detections path, summary path, recordings with a table)``.
    """
    frames, n = [], 0
    for r in rels:
        t = table_path(out, r, fmt)
        if t.is_file():
            frames.append(read_detections(t, fmt, r))
            n += 1
    det = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    det_path = out / "detections.csv"
    replace_atomically(det_path, lambda tmp: det.to_csv(tmp, index=False, float_format="%.6g"))
    if fmt == "parquet":
        replace_atomically(out / "detections.parquet", lambda tmp: det.to_parquet(tmp, index=False))
    summ = summary(det)
    sum_path = out / "summary.csv"
    replace_atomically(sum_path, lambda tmp: summ.to_csv(tmp, index=False, float_format="%.6g"))
    if n < len(rels):
        print(
            f"[analyze] combined tables cover {n} of {len(rels)} recordings (the others are not done yet)",
            file=sys.stderr,
        )
    return det_path, sum_path, n


__all__ = ["check_settings", "combine", "list_recordings", "select_labels", "table_path"]

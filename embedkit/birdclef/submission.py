"""BirdCLEF submissions: columns from a sample submission, row ids of soundscapes, writing and validating.

A submission has ``row_id`` (``<file stem>_<end second>``) then one column per label in the sample
submission's order, values finite in [0, 1]. :func:`write_submission` writes atomically;
:func:`validate_submission` lists every problem (``embedkit validate`` and ``infer.py`` use it).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.birdclef.labels import DataError, duplicated_header, load_labels_from_sample


def submission_labels(sample: str | os.PathLike | None, fallback: list[str]) -> list[str]:
    """Submission columns after ``row_id``: from the sample submission ``sample``, or ``fallback`` when None.

    Raises:
        DataError: ``sample`` is given but is not a file, is empty or unreadable, or has no ``row_id``.
    """
    if sample is None:
        return list(fallback)
    if not Path(sample).is_file():
        raise DataError(f"sample submission not found: {sample}")
    return load_labels_from_sample(sample)


def _some(names: list[str], k: int = 5) -> str:
    return ", ".join(names[:k]) + (f", … ({len(names)} in all)" if len(names) > k else "")


def check_labels(
    labels: list[str], models: dict[str, list[str]], sample: str, allow: bool = False
) -> list[str]:
    """Compare the submission columns with each model's labels.

    Args:
        labels: submission columns (from ``sample``).
        models: model name → its labels (output order).
        sample: where ``labels`` came from (named in messages).
        allow: accept partly different labels (``--allow-label-mismatch``).

    Returns:
        One note per model whose labels differ (printed by the caller); empty when all match.

    Raises:
        DataError: a model shares no label with the submission (always), or labels differ and not ``allow``.
    """
    notes = []
    for name, mine in models.items():
        have, want = set(mine), set(labels)
        if not have & want:
            raise DataError(
                f"{sample} shares no label with model {name} (submission: {_some(labels, 3)}; model: "
                f"{_some(list(mine), 3)}); use the sample submission of the competition it was fitted for"
            )
        missing = [c for c in labels if c not in have]
        extra = [c for c in mine if c not in want]
        if missing or extra:
            notes.append(
                f"model {name}: {len(missing)} submission label(s) it does not know ({_some(missing)}); "
                f"{len(extra)} of its labels not in {sample}, dropped ({_some(extra)})"
            )
    if notes and not allow:
        raise DataError(
            f"labels differ from {sample}: {'; '.join(notes)}; pass --allow-label-mismatch to write the "
            "submission anyway (a column no model knows is 0)"
        )
    return notes


def write_submission(
    path: str | os.PathLike, row_ids: list[str], probs: np.ndarray, labels: list[str]
) -> Path:
    """Write ``submission.csv`` atomically (temp file + rename): ``row_id`` then the label columns.

    Args:
        path: output CSV.
        row_ids: N row ids.
        probs: [N, C] probabilities; non-finite values become 0 and all values are clipped to [0, 1].
        labels: C column names in order.
    """
    probs = np.clip(np.nan_to_num(np.asarray(probs, np.float64), nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    if probs.shape != (len(row_ids), len(labels)):
        raise ValueError(
            f"probabilities {probs.shape} do not match {len(row_ids)} rows x {len(labels)} labels"
        )
    df = pd.DataFrame(probs, columns=labels)
    df.insert(0, "row_id", row_ids)
    out = Path(path)
    tmp = out.with_name(f".tmp-{os.getpid()}-{out.name}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(tmp, index=False, float_format="%.6g")
        os.replace(tmp, out)
    except OSError as e:  # read-only or full output folder: one line, not a traceback
        raise DataError(f"cannot write {out}: {e.strerror or e}; choose another --out") from e
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return out


def soundscape_row_ids(path: str | os.PathLike, window_s: float = 5.0, hop_s: float = 5.0) -> list[str]:
    """Row ids of one soundscape: one per window of its header duration.

    A header that cannot be read, or that says the file holds no audio, counts as 60 s (a BirdCLEF test
    soundscape), so a broken file still gets its rows. Inference writes exactly these rows.
    """
    from embedkit.audio import AudioError, Windowing, duration_s, row_id, window_spans

    try:
        dur = duration_s(path)
    except AudioError:
        dur = 0.0
    spans = window_spans(dur if dur > 0 else 60.0, Windowing(window_s, hop_s))
    return [row_id(Path(path).stem, e) for _, e in spans]


def check_row_stems(files: list[str | os.PathLike]) -> None:
    """Refuse soundscapes that would share row ids: BirdCLEF's ``<stem>_<end>`` drops the folder.

    Raises:
        DataError: two files (e.g. ``site1/x.ogg`` and ``site2/x.ogg``) have the same stem.
    """
    seen: dict[str, str] = {}
    for p in files:
        stem = Path(p).stem
        if stem in seen:
            raise DataError(
                f"{seen[stem]} and {p} would share row ids ({stem}_5, ...): BirdCLEF row ids are "
                f"<file stem>_<end second>; rename one, or use embedkit analyze (it names files by path)"
            )
        seen[stem] = str(p)


def expected_row_ids(soundscapes: str | os.PathLike, window_s: float = 5.0, hop_s: float = 5.0) -> list[str]:
    """Row ids a submission must have for a folder of soundscapes (see :func:`soundscape_row_ids`)."""
    from embedkit.audio import list_audio

    folder = Path(soundscapes)
    files = list_audio(folder) if folder.is_dir() else []
    check_row_stems(files)
    return [r for p in files for r in soundscape_row_ids(p, window_s, hop_s)]


def validate_submission(
    sub: str | os.PathLike | pd.DataFrame, labels: list[str], row_ids: list[str] | None = None
) -> list[str]:
    """Check a submission; returns the problems found (empty list = valid).

    Checks the header (``row_id`` + ``labels`` in order), duplicated row ids, missing or unexpected row ids
    (when ``row_ids`` is given), and that every value is a finite number in [0, 1].
    """
    problems: list[str] = []
    if isinstance(sub, pd.DataFrame):
        df = sub
    else:
        try:
            df = pd.read_csv(sub)
        except Exception as e:
            return [f"cannot read {sub}: {' '.join(str(e).split())[:160]}"]
    cols = list(df.columns)
    if not isinstance(sub, pd.DataFrame) and duplicated_header(sub):
        problems.append(f"column(s) {duplicated_header(sub)[:5]} appear more than once in the header")
    if cols != ["row_id", *labels]:
        if not cols or cols[0] != "row_id":
            problems.append(f"first column must be row_id, found {cols[:1]}")
        if sorted(cols[1:]) != sorted(labels):
            problems.append(
                f"label columns differ: missing {sorted(set(labels) - set(cols))[:5]}, "
                f"unexpected {sorted(set(cols[1:]) - set(labels))[:5]}"
            )
        elif cols[1:] != labels:
            bad = next(i for i, (a, b) in enumerate(zip(cols[1:], labels, strict=True)) if a != b)
            problems.append(
                f"label columns out of order: column {bad + 1} is {cols[bad + 1]!r}, expected {labels[bad]!r}"
            )
    if "row_id" in df.columns:
        ids = df["row_id"].astype(str)
        dup = ids[ids.duplicated()]
        if len(dup):
            problems.append(f"{len(dup)} duplicated row_id(s), e.g. {dup.iloc[0]!r}")
        if row_ids is not None:
            missing, extra = set(row_ids) - set(ids), set(ids) - set(row_ids)
            if missing:
                problems.append(f"{len(missing)} row_id(s) missing, e.g. {sorted(missing)[0]!r}")
            if extra:
                problems.append(f"{len(extra)} unexpected row_id(s), e.g. {sorted(extra)[0]!r}")
    values = (
        df[[c for c in df.columns if c != "row_id"]]
        .apply(pd.to_numeric, errors="coerce")
        .to_numpy(np.float64)
    )
    if values.size:
        if not np.isfinite(values).all():
            problems.append(
                f"{int((~np.isfinite(values)).sum())} value(s) are missing, non-numeric or not finite"
            )
        finite = values[np.isfinite(values)]
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            problems.append(f"values outside [0, 1] (min {finite.min():.3g}, max {finite.max():.3g})")
        if values.size > 1 and finite.size == values.size and finite.min() == finite.max():
            problems.append(
                f"every probability is {finite.min():g}: the submission says nothing (a model that predicted "
                f"nothing usable, or non-finite settings)"
            )
    return problems

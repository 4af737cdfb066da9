"""Background files split between folds by site/recording (``embedkit evaluate --background-groups``).

Fold k's real-background soundscapes are composed over fold k's background files, and fold k's heads may learn
weak negatives from the *other* folds' files. If files of one site or one recording sat in two folds, a head
would train on negatives from the very site (or the very recording) its test backgrounds come from, an
advantage the backbone's own classifier never gets. So every file gets a **group** (its site or source
recording) and whole groups go to folds:

* ``auto`` (default): the file name up to its last ``_`` (``maad_S4A03895_20190522_001500.ogg`` →
  ``maad_S4A03895_20190522``; ``H02_20230420_074000.ogg`` → ``H02_20230420``; stretches
  ``rec_part003.ogg`` → ``rec``); a name without ``_`` is its own group;
* ``folder``: the file's sub-folder below the backgrounds folder (files at the top: ``auto``);
* ``file``: every file its own group (only when the files are known to be independent);
* a CSV path with columns ``file,group`` (``file`` relative to the folder, or its name); files it does not
  list fall back to ``auto`` (said on stderr).

Groups are assigned to folds greedily by duration (longest group first, to the fold with the least audio so
far; ties by name), so the folds hold similar amounts of background. A group longer than a fold's share stays
whole (on ``../shared/data/backgrounds`` the Jura forest series, 96 of 112 files and 58% of the audio, is
one fold's background on its own). A fold without a group (fewer groups than folds) is composed over all
files and gets **no** weak negatives (every other file may share its site).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RULES = ("auto", "folder", "file")


@dataclass(frozen=True)
class Backgrounds(os.PathLike):
    """A backgrounds folder with its grouping rule (usable wherever a folder path is: ``os.fspath``)."""

    folder: str
    groups: str = "auto"

    def __fspath__(self) -> str:
        return str(self.folder)

    def __str__(self) -> str:
        return str(self.folder)


@dataclass
class BackgroundSplit:
    """Which background file goes to which fold.

    Attributes:
        files: file paths relative to the folder [F] (the order of :func:`embedkit.audio.list_audio`).
        group: group per file [F]; fold: fold per file [F] (int); seconds: duration per file [F].
        n_folds: number of folds; rule: the grouping rule.
    """

    files: list[str]
    group: list[str]
    fold: np.ndarray
    seconds: np.ndarray
    n_folds: int
    rule: str

    def key(self) -> str:
        """Short hash of the assignment (part of the cache keys)."""
        ident = [self.rule, self.files, self.group, self.fold.tolist()]
        return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]

    def negatives_for(self, k: int) -> np.ndarray:
        """Mask [F] of the files fold k's heads may use as weak negatives (none when k has no group)."""
        if not (self.fold == k).any():
            return np.zeros(len(self.files), bool)
        mine = {g for g, f in zip(self.group, self.fold, strict=True) if f == k}
        return np.array([f != k and g not in mine for g, f in zip(self.group, self.fold, strict=True)])

    def test_files(self, k: int) -> np.ndarray:
        """Mask [F] of the files fold k's soundscapes are composed over (all when fold k has no group)."""
        m = self.fold == k
        return m if m.any() else np.ones(len(self.files), bool)

    def lines(self) -> list[str]:
        """One markdown line per fold: its groups, files and seconds."""
        out = [f"Background split ({self.rule} groups, {len(set(self.group))} groups, by duration):"]
        for k in range(self.n_folds):
            m = self.fold == k
            names = sorted({g for g, f in zip(self.group, self.fold, strict=True) if f == k})
            what = ", ".join(names) if names else "no group: composed over all files, no weak negatives"
            out.append(f"* fold {k}: {int(m.sum())} files, {self.seconds[m].sum():.0f} s: {what}")
        return out

    def to_json(self) -> str:
        """The split as JSON (cached beside the results)."""
        rows = zip(self.files, self.group, self.fold.tolist(), strict=True)
        files = {f: [g, k] for f, g, k in rows}
        return json.dumps({"rule": self.rule, "n_folds": self.n_folds, "files": files})


def auto_group(rel: str) -> str:
    """Default group of a file: its name (without suffix) up to the last ``_``; the whole stem without one."""
    stem = Path(rel).stem
    return stem.rsplit("_", 1)[0] if "_" in stem else stem


def file_groups(rels: list[str], rule: str) -> list[str]:
    """Group per file (paths relative to the backgrounds folder) by ``rule`` (see the module docstring).

    Raises:
        UsageError: an unknown rule that is not a CSV file, or a CSV without ``file`` and ``group`` columns.
    """
    from embedkit.errors import UsageError

    if rule == "auto":
        return [auto_group(r) for r in rels]
    if rule == "file":
        return [Path(r).with_suffix("").as_posix() for r in rels]
    if rule == "folder":
        return [Path(r).parent.as_posix() if Path(r).parent != Path(".") else auto_group(r) for r in rels]
    path = Path(rule)
    if not path.is_file():
        raise UsageError(f"--background-groups must be one of {', '.join(RULES)} or a CSV file, got {rule!r}")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"file", "group"} <= set(rows[0]):
        raise UsageError(f"--background-groups {rule}: needs a header with columns file,group")
    table = {r["file"].strip(): r["group"].strip() for r in rows}
    out, missing = [], []
    for r in rels:
        g = table.get(r, table.get(Path(r).name))
        if g is None:
            missing.append(r)
            g = auto_group(r)
        out.append(g)
    if missing:
        print(f"[evaluate] --background-groups {rule}: {len(missing)} files not listed (e.g. {missing[0]}), "
              "grouped by name (auto)", file=sys.stderr)  # fmt: skip
    return out


def assign_folds(groups: list[str], seconds: np.ndarray, n_folds: int) -> np.ndarray:
    """Fold per file [F]: whole groups, longest first, to the fold with the least audio (ties: first)."""
    total: dict[str, float] = {}
    for g, s in zip(groups, seconds, strict=True):
        total[g] = total.get(g, 0.0) + float(s)
    load = np.zeros(n_folds)
    where = {}
    for g in sorted(total, key=lambda g: (-round(total[g], 3), g)):
        k = int(np.argmin(load))
        where[g] = k
        load[k] += total[g]
    return np.array([where[g] for g in groups], dtype=np.int64)


def background_split(backgrounds, n_folds: int) -> BackgroundSplit:
    """The split of ``backgrounds`` (a folder or :class:`Backgrounds`) into ``n_folds`` folds."""
    import soundfile as sf

    from embedkit.audio import list_audio

    root = Path(backgrounds)
    rule = getattr(backgrounds, "groups", "auto") or "auto"
    paths = list_audio(root)
    rels = [p.relative_to(root).as_posix() for p in paths]
    secs = []
    for p in paths:
        try:
            info = sf.info(str(p))
            secs.append(info.frames / info.samplerate)
        except (RuntimeError, sf.LibsndfileError):  # undecodable by libsndfile (e.g. mp3 on old builds)
            secs.append(1.0)
    groups = file_groups(rels, rule)
    secs_a = np.asarray(secs, np.float64)
    return BackgroundSplit(rels, groups, assign_folds(groups, secs_a, n_folds), secs_a, n_folds, rule)


__all__ = ["RULES", "BackgroundSplit", "Backgrounds", "assign_folds", "auto_group", "background_split",
           "file_groups"]  # fmt: skip

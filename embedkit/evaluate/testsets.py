"""The soundscape tests of ``embedkit evaluate``: each kind of background, each composition seed, in one set.

Kinds: ``synthetic`` (quiet stretches of other held-out recordings + pink noise,
:func:`embedkit.evaluate.compose.compose`) always, and ``field`` (real field recordings of ``--backgrounds``,
:func:`embedkit.evaluate.field.compose_field`) when a folder is given. Every (kind, seed) set is composed and
embedded once and cached (:func:`embedkit.evaluate.data.soundscape_set`); the sets are concatenated so each
fold's head predicts all of them in one call.

**Scored per fold** (:meth:`TestSets.scored`): fold k's soundscapes (composed from fold k's recordings over
fold k's backgrounds) are scored alone, with the predictions of fold k's head, and the scores are averaged
over the folds, then over the seeds of a kind. One model scores one test set, as on Kaggle: an AUC pooled
over the folds would rank five heads' windows against each other, so a constant offset between two folds'
heads (or their priors' offsets) would move it though no model ranks its own test any differently, and it
would mix five sites' backgrounds in one ranking. BirdNET's own classifier is one model and is scored the
same way.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from embedkit.evaluate.data import ClipSet, SoundscapeSet, background_windows, soundscape_set

KINDS = {"synthetic": "sc", "field": "fd"}


@dataclass
class TestSets:
    """All soundscape windows [M] (files named ``<kind><seed>/<name>``) and which rows are which set.

    Attributes:
        scapes: the concatenated sets.
        sets: (kind, seed, bool mask [M]) per set.
        background: the background files' own windows (fold = the file's fold), with ``--backgrounds``.
        source: ``(clips, n, cache, threads, backgrounds)`` they were made from (for the shifted windows of
            :func:`embedkit.evaluate.tta.tta_windows`).
        split: the backgrounds' :class:`~embedkit.evaluate.groups.BackgroundSplit`, with ``--backgrounds``.
        strong: bool [C], the labels of the second test (:func:`embedkit.evaluate.scoring.strong_labels`).
    """

    scapes: SoundscapeSet
    sets: list[tuple[str, int, np.ndarray]]
    background: SoundscapeSet | None = None
    source: tuple | None = None
    split: object | None = None
    strong: np.ndarray | None = None

    def strong_rows(self, mask: np.ndarray) -> np.ndarray:
        """Rows of ``mask`` without a call of a label outside :attr:`strong` (the second test's windows)."""
        if self.strong is None:
            return np.zeros_like(mask)
        return mask & ~self.scapes.truth[:, ~self.strong].any(1)

    def negatives(self, k: int) -> np.ndarray | None:
        """Mask [B] over :attr:`background`'s windows: fold k's allowed weak negatives (None: none given)."""
        if self.background is None or self.split is None:
            return None
        ok = np.asarray(self.split.files)[self.split.negatives_for(k)]
        return np.isin(self.background.files, ok)

    def scored(self, kind: str) -> list[tuple[int, int, np.ndarray]]:
        """``(seed, fold, mask [M])`` of every ``kind`` set, split by fold: the windows one head predicted."""
        out = []
        for k, seed, mask in self.sets:
            if k == kind:
                folds = np.unique(self.scapes.fold[mask])
                out += [(seed, int(f), mask & (self.scapes.fold == f)) for f in folds]
        return out

    @property
    def kinds(self) -> list[str]:
        """Kinds present, in :data:`KINDS` order."""
        have = {k for k, _, _ in self.sets}
        return [k for k in KINDS if k in have]


def load_testsets(
    clips: ClipSet, n: int, seeds: list[int], cache=None, threads=None, backgrounds=None
) -> TestSets:
    """Every (kind, seed) soundscape set for ``clips``, concatenated (see the module docstring)."""
    parts: list[tuple[str, int, SoundscapeSet]] = []
    for kind in ("synthetic", "field") if backgrounds else ("synthetic",):
        for seed in seeds:
            bg = backgrounds if kind == "field" else None
            parts.append((kind, seed, soundscape_set(clips, n, seed, cache, threads, bg)))
    total = sum(len(s.X) for _, _, s in parts)
    sets, pos = [], 0
    for kind, seed, s in parts:
        mask = np.zeros(total, bool)
        mask[pos : pos + len(s.X)] = True
        sets.append((kind, seed, mask))
        pos += len(s.X)

    def cat(name):
        vals = [getattr(s, name) for _, _, s in parts]
        return None if any(v is None for v in vals) else np.concatenate(vals)

    files = np.concatenate([np.char.add(f"{k}{sd}/", s.files.astype(str)) for k, sd, s in parts])
    merged = SoundscapeSet(cat("X"), cat("L"), cat("truth"), cat("fold"), files, cat("window"))
    bgw, split = None, None
    if backgrounds:
        import sys

        from embedkit.evaluate.groups import background_split

        split = background_split(backgrounds, int(clips.fold.max()) + 1)
        print("[evaluate] " + "\n[evaluate] ".join(split.lines()), file=sys.stderr)
        bgw = background_windows(clips, backgrounds, cache, threads)
    from embedkit.evaluate.scoring import strong_labels

    src = (clips, n, cache, threads, backgrounds)
    return TestSets(merged, sets, bgw, src, split, strong_labels(clips))


def score_sets(tests: TestSets, P: np.ndarray, mapped: np.ndarray, scores) -> dict:
    """Scores of probabilities P [M, C] per kind, per fold (:meth:`TestSets.scored`), averaged over both.

    Args:
        tests: the test sets.
        P: probabilities of all soundscape windows [M, C] (post-processed).
        mapped: bool [C], labels the backbone knows.
        scores: ``(truth, P, mapped) → (all labels, mapped labels)``.

    Returns:
        ``{"sc": .., "sc_mapped": .., "fd": .., "fd_mapped": .., "st": .., "per_seed": {(kind, seed): (all,
        mapped)}}`` (``fd`` keys only with field sets; ``per_seed``: the seed's mean over its folds; ``st``:
        the second test, the field windows without a call of a label outside ``tests.strong``, scored over
        the strong labels; NaN without them).
    """
    out: dict = {"per_seed": {}}
    strong = tests.strong if tests.strong is not None else np.zeros(len(mapped), bool)
    with warnings.catch_warnings():  # a fold without a scorable label scores NaN, left out of the means
        warnings.simplefilter("ignore", RuntimeWarning)
        for kind in tests.kinds:
            by_seed: dict = {}
            st = []
            for seed, _, mask in tests.scored(kind):
                by_seed.setdefault(seed, []).append(scores(tests.scapes.truth[mask], P[mask], mapped))
                rows = tests.strong_rows(mask)
                if kind == "field" and strong.any() and rows.any():
                    t, p = tests.scapes.truth[rows][:, strong], P[rows][:, strong]
                    st.append(scores(t, p, strong[strong])[0])
            for seed, v in by_seed.items():
                mean = np.nanmean(np.array(v, float), axis=0)
                out["per_seed"][(kind, seed)] = (float(mean[0]), float(mean[1]))
            vals = np.array(list(out["per_seed"][(kind, s)] for s in by_seed), float)
            key = KINDS[kind]
            out[key] = float(np.nanmean(vals[:, 0]))
            out[f"{key}_mapped"] = float(np.nanmean(vals[:, 1]))
            if kind == "field":
                out["st"] = float(np.nanmean(st)) if st else float("nan")
    return out


__all__ = ["KINDS", "TestSets", "load_testsets", "score_sets"]

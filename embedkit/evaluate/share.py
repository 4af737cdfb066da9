"""A share of each label's training recordings (``embedkit evaluate --recordings-share``): the learning curve.

What more recordings would add is read off the same test with fewer: each label keeps ``round(share * n)``
(at least one) of its n recordings, drawn with a seed, and the windows of the others leave the clip set (no
head trains on them, no CV score counts them). The soundscape tests are composed before, from all recordings,
so every share is scored on the same windows.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np

from embedkit.errors import UsageError


def kept_recordings(clips, share: float, seed: int = 0) -> np.ndarray:
    """The recordings [R] that stay: per primary label ``max(1, round(share * n))`` of its n, seeded.

    Args:
        clips: a :class:`~embedkit.evaluate.data.ClipSet`.
        share: in (0, 1].
        seed: seed of the draw.
    """
    if not 0.0 < share <= 1.0:
        raise UsageError(f"--recordings-share must be in (0, 1], got {share:g}")
    files, first = np.unique(clips.files, return_index=True)
    label = clips.truth[first].argmax(axis=1)
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(label):
        own = files[label == c]
        keep.extend(rng.choice(own, max(1, round(share * len(own))), replace=False).tolist())
    return np.array(sorted(keep))


def take_recordings(clips, keep: np.ndarray):
    """``clips`` with only the windows of the recordings ``keep`` (folds and labels unchanged)."""
    m = np.isin(clips.files, keep)
    cut = {f: getattr(clips, f)[m] for f in ("X", "truth", "secondary", "files", "window", "fold")}
    return replace(clips, L=None if clips.L is None else clips.L[m], **cut)


def share_of(clips, share: float, seed: int = 0):
    """``clips`` cut to ``share`` of each label's recordings (:func:`kept_recordings`), said on stderr."""
    if share >= 1.0:
        return clips
    keep = kept_recordings(clips, share, seed)
    n = len(np.unique(clips.files))
    print(f"[evaluate] --recordings-share {share:g} (seed {seed}): {len(keep)} of {n} recordings train and "
          "are scored by CV; the soundscape tests are those of all recordings", file=sys.stderr)  # fmt: skip
    return take_recordings(clips, keep)


__all__ = ["kept_recordings", "share_of", "take_recordings"]

"""Test-time augmentation in ``embedkit evaluate``: the soundscape tests' windows shifted, embedded, cached.

A row with ``tta`` (e.g. ``"default, TTA ±1.25 s"``) predicts every soundscape window also shifted by
each offset (:mod:`embedkit.audio.tta`, clipped at the soundscape's ends as in ``infer.py --tta``) and
averages the probabilities after the head and the prior (:mod:`embedkit.predict.tta`), before the
post-processing. The shifted windows are cut from the same seeded soundscapes (recomposed:
:func:`embedkit.evaluate.data.compose_fold`) and cached beside them, one ``.npz`` per (kind, seed,
offsets). The CV columns stay on the clips' stored windows (no shifted clip windows are stored): TTA
changes the soundscape columns only.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from embedkit.files import replace_atomically


def shifted_set(clips, n: int, seed: int, offsets: tuple[float, ...], cache=None, threads=None,
                backgrounds=None) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """Embeddings [S, M, D] (and logits [S, M, K] or None) of one soundscape set's windows, shifted.

    Rows are in the order of :func:`embedkit.evaluate.data.soundscape_set` for the same arguments.
    """
    from embedkit.config import cache_dir
    from embedkit.evaluate.data import _cache_key

    folder = Path(cache) if cache else cache_dir() / "evaluate"
    tag = "_".join(f"{o:+g}" for o in offsets)
    path = folder / f"soundscapes-{_cache_key(clips, n, seed, backgrounds)}-tta{tag}.npz"
    if not path.is_file():
        X, L = _embed_shifted(clips, n, seed, offsets, threads, backgrounds)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"X": X.astype(np.float16)}
        if L is not None:
            arrays["L"] = L.astype(np.float16)
        replace_atomically(path, lambda tmp: np.savez(tmp, **arrays), sync=False)
    z = np.load(path, allow_pickle=False)
    return z["X"].astype(np.float32), (z["L"].astype(np.float32) if "L" in z.files else None)


def _embed_shifted(clips, n, seed, offsets, threads, backgrounds):
    from embedkit.audio import Windowing
    from embedkit.audio.tta import shifted_windows
    from embedkit.backbones.build import build_backbone
    from embedkit.evaluate.data import _load_backgrounds, compose_fold

    bb = build_backbone(clips.provenance, threads=threads)
    with_logits = hasattr(bb, "embed_with_logits") and clips.L is not None
    ws = clips.provenance.get("window_s", 5.0)
    win = int(round(ws * bb.sample_rate))
    bgs = _load_backgrounds(backgrounds, bb.sample_rate) if backgrounds else None
    split = None
    if backgrounds:
        from embedkit.evaluate.groups import background_split

        split = background_split(backgrounds, int(clips.fold.max()) + 1)
    X: list = [[] for _ in offsets]
    L: list = [[] for _ in offsets]
    t0 = time.monotonic()
    for k in range(int(clips.fold.max()) + 1):
        for sc in compose_fold(clips, k, n, seed, bb.sample_rate, bgs, split):
            audio = sc.audio[: len(sc.truth) * win]  # the windows the test scores, as in data._build
            V = shifted_windows(audio, bb.sample_rate, offsets, Windowing(ws, ws))  # [W, 1 + S, win]
            for s in range(len(offsets)):
                x = np.ascontiguousarray(V[:, s + 1])
                e, lg = bb.embed_with_logits(x) if with_logits else (bb.embed(x), None)
                X[s].append(e)
                L[s].append(lg)
        print(f"[evaluate] TTA {offsets} fold {k}: embedded, {time.monotonic() - t0:.0f} s", file=sys.stderr)
    bb.close()
    Xs = np.stack([np.concatenate(x) for x in X])
    Ls = np.stack([np.concatenate(v) for v in L]) if with_logits else None
    return Xs, Ls


def tta_windows(tests, offsets: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    """Shifted embeddings [S, M, D] and logits [S, M, K] of all of ``tests``' soundscape windows.

    Rows in the order of :class:`~embedkit.evaluate.testsets.TestSets`.
    """
    if tests.source is None:
        raise ValueError("these test sets were not loaded by load_testsets: no shifted windows")
    clips, n, cache, threads, backgrounds = tests.source
    Xs, Ls = [], []
    for kind, seed, _ in tests.sets:
        bg = backgrounds if kind == "field" else None
        x, lg = shifted_set(clips, n, seed, offsets, cache, threads, bg)
        Xs.append(x)
        Ls.append(lg)
    L = None if any(v is None for v in Ls) else np.concatenate(Ls, axis=1)
    return np.concatenate(Xs, axis=1), L


def with_shifted(tests, test, offsets: tuple[float, ...]):
    """``(Windows, fold)`` of the soundscape test extended by its shifted copies ([unshifted; o_1; ...])."""
    from embedkit.predict.apply import Windows

    w, fold = test
    if not offsets:
        return test
    Xs, Ls = tta_windows(tests, offsets)
    zs = None
    if w.z is not None:
        from embedkit.zeroshot import class_logits

        index = tests.source[0].index
        zs = np.concatenate([w.z, *(class_logits(L, index) for L in Ls)])
    X = np.concatenate([w.X, *Xs])
    files = np.tile(w.files, 1 + len(offsets))
    return Windows(X, files, zs), np.tile(fold, 1 + len(offsets))


def reduce_shifted(tp: np.ndarray, n_offsets: int, reduce: str = "mean") -> np.ndarray:
    """Probabilities [(1 + S) * M, C] of :func:`with_shifted`'s rows → [M, C] (mean over the variants)."""
    from embedkit.predict.tta import reduce_variants

    if not n_offsets:
        return tp
    return reduce_variants(tp.reshape(1 + n_offsets, -1, tp.shape[1]), reduce)


__all__ = ["reduce_shifted", "shifted_set", "tta_windows", "with_shifted"]

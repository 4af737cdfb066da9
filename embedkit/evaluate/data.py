"""Data of ``embedkit evaluate``: the labelled clip windows with their folds, and the soundscape test set.

Clip windows come from stored shards (with logits when the backbone has a classifier); targets follow the
fit config (secondary labels at ``secondary_weight``), while the *truth* they are scored against is the
recording's primary label on every window (the setting of the published numbers). Folds are
:func:`embedkit.train.run.make_folds` of the recordings, as in ``fit.py``.

The soundscape test set holds, for every fold, ``n`` one-minute soundscapes composed
(:func:`embedkit.evaluate.compose.compose`) from that fold's recordings only, decoded from
``DATA/train_audio``
and embedded with the backbone the shards were made with (rebuilt from their provenance); with
``backgrounds`` the soundscapes are composed over real field recordings instead
(:mod:`embedkit.evaluate.field`), and :func:`background_windows` embeds those recordings' own windows (the
unlabelled set of weak negatives). It is cached as
one ``.npz`` per setting under ``cache`` (default ``~/.cache/embedkit/evaluate``): composing and embedding
takes about a minute and a half for 5 folds x 12 soundscapes with BirdNET on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedkit.files import replace_atomically

COMPOSER_VERSION = 1


@dataclass
class ClipSet:
    """Labelled clip windows.

    Attributes:
        X: embeddings [N, D].
        L: backbone logits [N, K] or None.
        truth: bool [N, C], the recording's primary label on each window.
        secondary: bool [N, C], its secondary labels (see :meth:`targets`).
        files: recording per row [N]; window: window index within it [N]; fold: fold per row [N].
        labels: the C codes; index: label → backbone class (-1 unmapped), or None without logits.
        provenance: of the shards; data: the data root.
    """

    X: np.ndarray
    L: np.ndarray | None
    truth: np.ndarray
    secondary: np.ndarray
    files: np.ndarray
    window: np.ndarray
    fold: np.ndarray
    labels: list[str]
    index: np.ndarray | None
    provenance: dict
    data: str

    def targets(self, secondary_weight: float) -> np.ndarray:
        """Training targets float32 [N, C]: 1 for the primary label, ``secondary_weight`` for the others."""
        return np.where(self.truth, 1.0, self.secondary * secondary_weight).astype(np.float32)


@dataclass
class SoundscapeSet:
    """Embedded soundscapes: X [M, D], L [M, K] or None, truth [M, C], fold [M], files [M], window [M]."""

    X: np.ndarray
    L: np.ndarray | None
    truth: np.ndarray
    fold: np.ndarray
    files: np.ndarray
    window: np.ndarray


def load_clips(cfg) -> ClipSet:
    """Clip windows, labels and folds for a :class:`~embedkit.config.FitConfig` (its data, shards, folds)."""
    from embedkit.birdclef import build_targets, load_labels, load_train
    from embedkit.train.data import has_logits, read_windows
    from embedkit.train.run import make_folds
    from embedkit.zeroshot import species_map

    labels = load_labels(cfg.data)
    train = load_train(cfg.data)
    dataset = Path(cfg.embeddings) / cfg.backbone / cfg.split
    logits = has_logits(dataset)
    keys, X, L, parts = read_windows(cfg.embeddings, [cfg.backbone], cfg.split, logits)
    both, keep, _ = build_targets(keys, train, labels, 0.5)
    primary, _, _ = build_targets(keys, train, labels, 0.0)
    keys = keys[keep].reset_index(drop=True)
    files = keys["file"].astype(str).to_numpy()
    fold = make_folds(files, primary.argmax(1), cfg.folds, cfg.seed)
    prov = parts[0]["provenance"]
    zs = logits and (cfg.backbone == "birdnet" or bool(prov.get("classes")))
    index = species_map(cfg.data, labels, cfg.backbone, prov) if zs else None
    return ClipSet(
        X[keep], None if L is None else L[keep], primary >= 0.5, (both > 0) & (primary < 0.5), files,
        keys["window"].to_numpy(),
        fold, labels, index, parts[0]["provenance"], str(cfg.data),
    )  # fmt: skip


def _background_ident(backgrounds) -> list | None:
    if not backgrounds:
        return None
    from embedkit.audio import list_audio
    from embedkit.errors import UsageError

    paths = list_audio(backgrounds) if Path(backgrounds).is_dir() else []
    if not paths:
        raise UsageError(f"--backgrounds: no audio files in {backgrounds}")
    return [(p.name, p.stat().st_size) for p in paths]


def _cache_key(clips: ClipSet, n: int, seed: int, backgrounds=None) -> str:
    ident = {
        "data": str(Path(clips.data).resolve()),
        "files": sorted(set(clips.files.tolist())),
        "fold": [int(clips.fold[clips.files == f][0]) for f in sorted(set(clips.files.tolist()))],
        "n": n,
        "seed": seed,
        "backbone": {k: v for k, v in clips.provenance.items() if k not in ("created", "source", "split")},
        "composer": COMPOSER_VERSION,
    }
    if backgrounds:
        from embedkit.evaluate.groups import background_split

        ident["backgrounds"] = _background_ident(backgrounds)
        ident["background_split"] = background_split(backgrounds, int(clips.fold.max()) + 1).key()
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def soundscape_set(
    clips: ClipSet,
    n: int = 12,
    seed: int = 0,
    cache: str | Path | None = None,
    threads: int | None = None,
    backgrounds: str | Path | None = None,
) -> SoundscapeSet:
    """``n`` composed soundscapes per fold, embedded (see the module docstring); cached.

    Args:
        clips: the clip set (its folds decide which recordings make which fold's soundscapes).
        n: soundscapes per fold.
        seed: composition seed (fold k uses ``seed * 1000 + k``).
        cache: cache folder (default ``~/.cache/embedkit/evaluate``; ``$EMBEDKIT_CACHE`` moves it).
        threads: backbone threads.
        backgrounds: folder of real field recordings: compose over them
            (:func:`embedkit.evaluate.field.compose_field`) instead of quiet stretches + pink noise. The
            files are split between the folds by site/recording (:mod:`embedkit.evaluate.groups`; a
            :class:`~embedkit.evaluate.groups.Backgrounds` carries the grouping rule) and fold k's
            soundscapes use fold k's files only, so a head fit on the other folds may learn from the other
            folds' background files (:func:`background_windows`) without hearing its test site.
    """
    from embedkit.config import cache_dir

    folder = Path(cache) if cache else cache_dir() / "evaluate"
    path = folder / f"soundscapes-{_cache_key(clips, n, seed, backgrounds)}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        L = z["L"].astype(np.float32) if "L" in z.files else None
        return SoundscapeSet(z["X"].astype(np.float32), L, z["truth"], z["fold"], z["files"], z["window"])
    s = _build(clips, n, seed, threads, backgrounds)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "X": s.X.astype(np.float16),
        "truth": s.truth,
        "fold": s.fold,
        "files": s.files,
        "window": s.window,
    }
    if s.L is not None:
        arrays["L"] = s.L.astype(np.float16)
    if backgrounds:  # the background split, cached with the soundscapes it made
        from embedkit.evaluate.groups import background_split

        arrays["split"] = np.array(background_split(backgrounds, int(clips.fold.max()) + 1).to_json())
    replace_atomically(path, lambda tmp: np.savez(tmp, **arrays), sync=False)
    # the values the cache holds, so a first run scores exactly as the cached runs after it
    X, L = s.X.astype(np.float16).astype(np.float32), None if s.L is None else s.L.astype(np.float16)
    return SoundscapeSet(X, None if L is None else L.astype(np.float32), s.truth, s.fold, s.files, s.window)


def _load_backgrounds(folder, sample_rate: int) -> list[np.ndarray]:
    from embedkit.audio import list_audio, load_mono

    return [load_mono(p, sample_rate) for p in list_audio(folder)]


def compose_fold(clips: ClipSet, k: int, n: int, seed: int, sample_rate: int, bgs=None, split=None) -> list:
    """Fold ``k``'s ``n`` soundscapes (seeded: the same audio every call), over ``bgs`` if given.

    ``bgs`` are all background recordings (in :func:`embedkit.audio.list_audio` order) and ``split`` their
    :class:`~embedkit.evaluate.groups.BackgroundSplit`: fold k uses its own groups' files only.
    """
    from embedkit.audio import load_mono
    from embedkit.evaluate.compose import compose
    from embedkit.evaluate.field import compose_field

    prim = clips.truth.argmax(1)
    root = Path(clips.data) / "train_audio"
    recs = []
    for f in sorted(set(clips.files[clips.fold == k].tolist())):
        recs.append((load_mono(root / f, sample_rate), int(prim[clips.files == f][0]), f))
    kw = {"sample_rate": sample_rate, "seed": seed * 1000 + k, "prefix": f"fold{k}",
          "window_s": clips.provenance.get("window_s", 5.0)}  # fmt: skip
    if bgs is None:
        return compose(recs, len(clips.labels), n, **kw)
    if split is None:
        raise ValueError("compose_fold over backgrounds needs their split (embedkit.evaluate.groups)")
    use = split.test_files(k)
    if not (split.fold == k).any():
        msg = f"fewer background groups than folds: fold {k} composed over all files (its heads get no"
        print(f"[evaluate] {msg} weak negatives)", file=sys.stderr)
    return compose_field(recs, [b for b, u in zip(bgs, use, strict=True) if u], len(clips.labels), n, **kw)


def _build(clips: ClipSet, n: int, seed: int, threads: int | None, backgrounds=None) -> SoundscapeSet:
    import time

    from embedkit.backbones.build import build_backbone

    bb = build_backbone(clips.provenance, threads=threads)
    with_logits = hasattr(bb, "embed_with_logits") and clips.L is not None
    win = int(round(clips.provenance.get("window_s", 5.0) * bb.sample_rate))
    out: dict[str, list] = {k: [] for k in ("X", "L", "truth", "fold", "files", "window")}
    bgs = _load_backgrounds(backgrounds, bb.sample_rate) if backgrounds else None
    t0 = time.monotonic()
    n_folds = int(clips.fold.max()) + 1
    split = None
    if backgrounds:
        from embedkit.evaluate.groups import background_split

        split = background_split(backgrounds, n_folds)
    for k in range(n_folds):
        for sc in compose_fold(clips, k, n, seed, bb.sample_rate, bgs, split):
            batch = sc.audio[: len(sc.truth) * win].reshape(len(sc.truth), win)
            e, lg = bb.embed_with_logits(batch) if with_logits else (bb.embed(batch), None)
            out["X"].append(e)
            out["L"].append(lg)
            out["truth"].append(sc.truth >= 0.5)
            out["fold"].append(np.full(len(e), k))
            out["files"].append(np.full(len(e), sc.name))
            out["window"].append(np.arange(len(e)))
        print(f"[evaluate] soundscapes of fold {k}: {n} composed and embedded, {time.monotonic() - t0:.0f} s",
              file=sys.stderr)  # fmt: skip
    bb.close()
    cat = {k: (np.concatenate(v) if v and v[0] is not None else None) for k, v in out.items()}
    return SoundscapeSet(
        cat["X"], cat["L"], cat["truth"], cat["fold"], cat["files"].astype(str), cat["window"]
    )


def background_windows(clips: ClipSet, backgrounds, cache=None, threads: int | None = None) -> SoundscapeSet:
    """The 5 s windows of every background file, embedded; ``fold`` is the file's fold (see soundscape_set).

    For weak negatives / self-training in ``embedkit evaluate --backgrounds``: fold k's head may use the
    windows of the files :meth:`~embedkit.evaluate.groups.BackgroundSplit.negatives_for` allows (other
    folds' groups). ``files`` are paths relative to the folder. Cached like the soundscapes.
    """
    from embedkit.audio import list_audio, load_mono
    from embedkit.backbones.build import build_backbone
    from embedkit.config import cache_dir
    from embedkit.evaluate.groups import background_split

    folder = Path(cache) if cache else cache_dir() / "evaluate"
    prov = {k: v for k, v in clips.provenance.items() if k not in ("created", "source", "split")}
    split = background_split(backgrounds, int(clips.fold.max()) + 1)
    ident = {"bg": _background_ident(backgrounds), "split": split.key(), "backbone": prov}
    key = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = folder / f"backgrounds-{key}.npz"
    if not path.is_file():
        bb = build_backbone(clips.provenance, threads=threads)
        win = int(round(clips.provenance.get("window_s", 5.0) * bb.sample_rate))
        out: dict[str, list] = {k: [] for k in ("X", "L", "fold", "files", "window")}
        for i, p in enumerate(list_audio(backgrounds)):
            a = load_mono(p, bb.sample_rate)
            m = max(1, len(a) // win)
            a = np.pad(a, (0, max(0, m * win - len(a))))[: m * win].reshape(m, win)
            e, lg = bb.embed_with_logits(a) if hasattr(bb, "embed_with_logits") else (bb.embed(a), None)
            for k, v in (("X", e), ("L", lg), ("fold", np.full(m, split.fold[i])),
                         ("files", np.full(m, split.files[i])), ("window", np.arange(m))):  # fmt: skip
                out[k].append(v)
        bb.close()
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.concatenate(v) for k, v in out.items() if v[0] is not None}
        arrays["split"] = np.array(split.to_json())  # the split, cached with the windows
        arrays["X"] = arrays["X"].astype(np.float16)
        if "L" in arrays:
            arrays["L"] = arrays["L"].astype(np.float16)
        replace_atomically(path, lambda tmp: np.savez(tmp, **arrays), sync=False)
    z = np.load(path, allow_pickle=False)
    L = z["L"].astype(np.float32) if "L" in z.files else None
    truth = np.zeros((len(z["X"]), len(clips.labels)), bool)
    return SoundscapeSet(z["X"].astype(np.float32), L, truth, z["fold"], z["files"].astype(str), z["window"])


__all__ = ["ClipSet", "SoundscapeSet", "background_windows", "load_clips", "soundscape_set"]

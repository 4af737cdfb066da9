"""Augmented training windows for ``embedkit evaluate`` (what ``extract.py --augment-background`` adds).

Honest by construction: fold k's heads are scored on soundscapes composed over fold k's background files
(whole site/recording groups per fold, :mod:`embedkit.evaluate.groups`), so the training windows of fold j
are mixed with **fold j's** background files only (:func:`embedkit.audio.augment.augment_window`), and a mixup
partner (probability ``mixup``) is a window of another species of the same fold. A head fit on folds j ≠ k
then never hears fold k's test backgrounds. Variant v of fold k draws from ``default_rng([seed, v, k])``, so
K = 2 reuses the cached variant 1 of K = 1. Each variant is embedded once with the shards' backbone and
cached as one ``.npz`` (no pickle) beside the soundscape sets.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from embedkit.audio.augment import Augment, augment_window
from embedkit.files import replace_atomically

#: the augmentation ``embedkit evaluate`` measures (``extract.py`` defaults: SNR -5..10 dB, no gain/shift)
EVAL_AUGMENT = Augment(snr_db=(-5.0, 10.0))
AUGMENT_VERSION = 1


@dataclass
class AugmentedSet:
    """Augmented copies of clip windows.

    Attributes:
        X: embeddings float32 [M, D]; L: logits [M, K] or None.
        row: the clip row each copy was made from [M]; mix: the clip row mixed in, -1 for none [M].
        fold: fold of each copy [M] (its clip row's); variant: 1..K [M].
    """

    X: np.ndarray
    L: np.ndarray | None
    row: np.ndarray
    mix: np.ndarray
    fold: np.ndarray
    variant: np.ndarray

    def targets(self, clip_targets: np.ndarray) -> np.ndarray:
        """Targets float32 [M, C]: the clip row's, united (max) with the mixed-in row's."""
        Y = clip_targets[self.row].copy()
        m = self.mix >= 0
        Y[m] = np.maximum(Y[m], clip_targets[self.mix[m]])
        return Y


def _windows(audio: np.ndarray, w: int, hop: int, win: int) -> np.ndarray:
    a = audio[w * hop : w * hop + win]
    return np.pad(a, (0, win - len(a))).astype(np.float32)


def _variant(clips, bgs, v: int, seed: int, aug: Augment, bb, win: int, hop: int, split) -> dict:
    """Embed variant ``v`` of every clip window, fold by fold (see the module docstring)."""
    from embedkit.audio import load_mono

    n_folds = int(clips.fold.max()) + 1
    prim = clips.truth.argmax(1)
    root = Path(clips.data) / "train_audio"
    out: dict[str, list] = {k: [] for k in ("X", "L", "row", "mix")}
    with_logits = clips.L is not None and hasattr(bb, "embed_with_logits")
    for k in range(n_folds):
        rows = np.flatnonzero(clips.fold == k)
        audio = {f: load_mono(root / f, bb.sample_rate) for f in sorted(set(clips.files[rows].tolist()))}
        mine = [b for b, f in zip(bgs, split.fold, strict=True) if f == k] or bgs
        rng = np.random.default_rng([seed, v, k])
        batch: list[np.ndarray] = []
        for i in rows:
            x = _windows(audio[clips.files[i]], int(clips.window[i]), hop, win)
            cand = rows[prim[rows] != prim[i]]
            j = int(rng.choice(cand)) if aug.mixup > 0 and len(cand) else -1
            other = _windows(audio[clips.files[j]], int(clips.window[j]), hop, win) if j >= 0 else None
            y, mixed = augment_window(x, mine, rng, aug, bb.sample_rate, other)
            batch.append(y)
            out["row"].append(i)
            out["mix"].append(j if mixed else -1)
            if len(batch) == 64 or i == rows[-1]:
                xb = np.stack(batch)
                e, lg = bb.embed_with_logits(xb) if with_logits else (bb.embed(xb), None)
                out["X"].append(e.astype(np.float16))
                out["L"].append(None if lg is None else lg.astype(np.float16))
                batch = []
    arrays = {"X": np.concatenate(out["X"]), "row": np.array(out["row"]), "mix": np.array(out["mix"])}
    if with_logits:
        arrays["L"] = np.concatenate(out["L"])
    return arrays


def _key(clips, backgrounds, v: int, seed: int, aug: Augment) -> str:
    from embedkit.evaluate.data import _background_ident
    from embedkit.evaluate.groups import background_split

    ident = {
        "data": str(Path(clips.data).resolve()),
        "rows": hashlib.sha256(
            json.dumps([clips.files.tolist(), clips.window.tolist(), clips.fold.tolist()]).encode()
        ).hexdigest(),
        "backbone": {k: v for k, v in clips.provenance.items() if k not in ("created", "source", "split")},
        "backgrounds": _background_ident(backgrounds),
        "split": background_split(backgrounds, int(clips.fold.max()) + 1).key(),
        "variant": v,
        "seed": seed,
        "augment": asdict(aug),
        "version": AUGMENT_VERSION,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def augmented_set(
    clips,
    backgrounds,
    variants: int = 2,
    aug: Augment = EVAL_AUGMENT,
    seed: int = 0,
    cache=None,
    threads=None,
) -> AugmentedSet:
    """``variants`` augmented copies of every clip window, embedded, cached per variant.

    Args:
        clips: the clip set (:class:`~embedkit.evaluate.data.ClipSet`, its folds and provenance).
        backgrounds: folder of background recordings (the ``--backgrounds`` of the real-background test).
        variants: K, copies per window.
        aug: the augmentation.
        seed: augmentation seed.
        cache: cache folder (default ``~/.cache/embedkit/evaluate``).
        threads: backbone threads.
    """
    from embedkit.backbones.build import build_backbone
    from embedkit.config import cache_dir
    from embedkit.evaluate.data import _load_backgrounds
    from embedkit.evaluate.groups import background_split

    folder = Path(cache) if cache else cache_dir() / "evaluate"
    parts, bb, bgs = [], None, None
    for v in range(1, variants + 1):
        path = folder / f"augmented-{_key(clips, backgrounds, v, seed, aug)}.npz"
        if not path.is_file():
            t0 = time.monotonic()
            if bb is None:
                bb = build_backbone(clips.provenance, threads=threads)
                bgs = _load_backgrounds(backgrounds, bb.sample_rate)
            win = int(round(clips.provenance.get("window_s", 5.0) * bb.sample_rate))
            hop = int(round(clips.provenance.get("hop_s", 5.0) * bb.sample_rate))
            split = background_split(backgrounds, int(clips.fold.max()) + 1)
            arrays = _variant(clips, bgs, v, seed, aug, bb, win, hop, split)
            folder.mkdir(parents=True, exist_ok=True)
            replace_atomically(path, lambda tmp, a=arrays: np.savez(tmp, **a), sync=False)
            print(f"[evaluate] augmented variant {v}: {len(arrays['X'])} windows embedded, "
                  f"{time.monotonic() - t0:.0f} s", file=sys.stderr)  # fmt: skip
        parts.append((v, np.load(path, allow_pickle=False)))
    if bb is not None:
        bb.close()
    L = None if any("L" not in z.files for _, z in parts) else np.concatenate([z["L"] for _, z in parts])
    row = np.concatenate([z["row"] for _, z in parts])
    return AugmentedSet(
        np.concatenate([z["X"] for _, z in parts]).astype(np.float32),
        None if L is None else L.astype(np.float32),
        row,
        np.concatenate([z["mix"] for _, z in parts]),
        clips.fold[row],
        np.concatenate([np.full(len(z["row"]), v) for v, z in parts]),
    )


def training_copies(cfg, augmented: AugmentedSet | None, clips, data):
    """``(Windows [M], fold [M])`` of the augmented copies for ``cross_validate``, or None.

    None unless ``cfg.augmented == "clean+mixed"``. Targets: the clip rows' (``data.Y``), united with the
    mixed-in rows'; zero-shot logits when the clean rows have them.

    Raises:
        UsageError: ``clean+mixed`` without an augmented set (evaluate without ``--backgrounds``).
    """
    from embedkit.errors import UsageError
    from embedkit.predict.apply import Windows
    from embedkit.zeroshot import class_logits

    if cfg.augmented != "clean+mixed":
        return None
    if augmented is None:
        raise UsageError("augmented rows need the augmented set (embedkit evaluate --backgrounds DIR)")
    z = None if data.z is None or augmented.L is None else class_logits(augmented.L, clips.index)
    Y = augmented.targets(data.Y)
    score = None
    if data.score is not None and augmented.L is not None:  # the mixed rows ranked like the clean ones
        from embedkit.train.windows import detector_score

        score = detector_score(augmented.L, clips.index, cfg.window_score)
    return Windows(augmented.X, clips.files[augmented.row], z, Y, score), augmented.fold


__all__ = ["EVAL_AUGMENT", "AugmentedSet", "augmented_set", "training_copies"]

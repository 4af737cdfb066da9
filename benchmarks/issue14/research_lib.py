# ruff: noqa  (research scripts, see README.md here)
"""Research helpers: per-fold head predictions on clips and soundscape sets, cached; prior/smoothing combos."""
import json, hashlib, sys, time
from dataclasses import replace
from pathlib import Path
import numpy as np
from embedkit.config import FitConfig
from embedkit.evaluate.data import load_clips, soundscape_set
from embedkit.evaluate.run import postprocess, _scores
from embedkit.predict.apply import Windows, predict_pipeline
from embedkit.train.recipe import fit_pipeline
from embedkit.zeroshot import class_logits, apply_prior

BG = "/work/shared/data/backgrounds"
CACHE = "/work/cache14/evcache"
SETS = [("field", 0), ("field", 1), ("synthetic", 0), ("synthetic", 1), ("field", 2)]


def load(pool):
    cfg = FitConfig(data="/work/shared/data/xc-pr-birds", embeddings=f"/work/cache14/emb_{pool}", backbone="birdnet")
    clips = load_clips(cfg)
    from embedkit.evaluate.data import _cache_key
    sets = {}
    for kind, seed in SETS:
        bg = BG if kind == "field" else None
        if (Path(CACHE) / f"soundscapes-{_cache_key(clips, 12, seed, bg)}.npz").is_file():
            sets[(kind, seed)] = soundscape_set(clips, 12, seed, CACHE, 2, bg)
        else:
            print("missing", pool, kind, seed, file=sys.stderr)
    return clips, sets


def head_preds(name, head, params, pool, clips, sets, sets_keys=None, extra=None):
    """oof [N,C], {set: P [M,C]} for a plain head (no prior), cached on disk."""
    path = Path(f"/work/cache14/preds/{name}-{pool}.npz")
    if path.is_file():
        z = np.load(path)
        if all(f"{k[0]}{k[1]}" in z.files for k in sets):
            return z["oof"], {k: z[f"{k[0]}{k[1]}"] for k in sets}
    cfg = FitConfig(head=head, params=params, zero_shot="off", backbone="birdnet")
    Y = clips.targets(0.0)
    data = Windows(clips.X, clips.files, None, Y)
    oof = np.zeros(Y.shape, np.float32)
    out = {k: np.zeros((len(s.X), Y.shape[1]), np.float32) for k, s in sets.items()}
    t = time.time()
    for k in range(int(clips.fold.max()) + 1):
        tr = clips.fold != k
        h = fit_pipeline(cfg, data.take(tr))
        oof[~tr] = predict_pipeline(h, data.take(~tr), False)
        for key, s in sets.items():
            r = s.fold == k
            out[key][r] = predict_pipeline(h, Windows(s.X[r], s.files[r]), False)
    print(f"{name}-{pool}: {time.time()-t:.0f}s", file=sys.stderr)
    np.savez(path, oof=oof, **{f"{k[0]}{k[1]}": v for k, v in out.items()})
    return oof, out


def blend(P, z, fold, zc_train_by_fold, w):
    """apply prior with per-fold offsets (mean training-clip logit of fold != k)."""
    out = P.copy()
    for k, off in zc_train_by_fold.items():
        r = fold == k
        ww = np.where(np.abs(z).sum(0) > 0, w, 0.0)
        out[r] = apply_prior(P[r], z[r], ww, off)
    return out


def offsets(clips, zc):
    return {k: zc[clips.fold != k].mean(0).astype(np.float64) for k in range(int(clips.fold.max()) + 1)}

# ruff: noqa  (research scripts, see README.md here)
"""Issue 14 item 5 with an unlabelled set that holds the species: weak negatives / self-training (gated or
not) when fold k's unlabelled windows are the other folds' background files *and* the other folds'
real-background soundscapes (unlabelled: calls of fold k's training recordings over other backgrounds),
like BirdCLEF's train_soundscapes, which hold the target species. Fold k's test never enters its pool.

    python benchmarks/issue14/research6.py CACHE [ROW ...]
"""
import sys
import time
from dataclasses import replace

import numpy as np

from embedkit import config as C
from embedkit.config import FitConfig, InferConfig
from embedkit.evaluate.data import SoundscapeSet, load_clips
from embedkit.evaluate.run import run_config
from embedkit.evaluate.testsets import load_testsets

DATA, EMB, BG = "/work/shared/data/xc-pr-birds", "/work/cache14/emb_max", "/work/shared/data/backgrounds"
ROWS = {
    "bg only (default)": ({}, False),
    "bg+scapes weak negatives": ({}, True),
    "bg+scapes self-training 0.99": ({"pseudo": 1}, True),
    "bg+scapes self-training 0.9": ({"pseudo": 1, "pseudo_threshold": 0.9}, True),
    "bg+scapes gated 0.5 / 0.9": ({"pseudo": 1, "pseudo_gate": 0.5, "pseudo_gated_threshold": 0.9}, True),
    "bg+scapes gated 0.5 / 0.7": ({"pseudo": 1, "pseudo_gate": 0.5, "pseudo_gated_threshold": 0.7}, True),
    "bg+scapes gated 0.5 / 0.5": ({"pseudo": 1, "pseudo_gate": 0.5, "pseudo_gated_threshold": 0.5}, True),
    "bg+scapes gated 0.5 / 0.7, weak neg 0.3": (
        {"pseudo": 1, "pseudo_gate": 0.5, "pseudo_gated_threshold": 0.7, "weak_negatives": 0.3}, True),
}

cache = sys.argv[1]
names = sys.argv[2:] or list(ROWS)
fit = C.load(FitConfig, C.CONFIG_DIR / "fit.toml", data=DATA, embeddings=EMB)
inf = C.load(InferConfig, C.CONFIG_DIR / "infer.toml")
clips = load_clips(fit)
tests = load_testsets(clips, 12, [0, 1], cache, None, BG)
s, b = tests.scapes, tests.background
field = np.zeros(len(s.X), bool)
for kind, _, mask in tests.sets:
    field |= mask & (kind == "field")
pool = SoundscapeSet(
    np.concatenate([b.X, s.X[field]]), np.concatenate([b.L, s.L[field]]),
    np.zeros((len(b.X) + field.sum(), s.truth.shape[1]), bool), np.concatenate([b.fold, s.fold[field]]),
    np.concatenate([b.files, np.char.add("scape/", s.files[field])]), np.concatenate([b.window, s.window[field]]),
)
with_scapes = replace(tests, background=pool)
for name in names:
    change, scapes = ROWS[name]
    post = {"smooth": inf.smooth, "file_max": inf.file_max, "tta": ()}
    t0 = time.monotonic()
    r = run_config(replace(fit, **change), post, clips, with_scapes if scapes else tests, None)
    ps = r["per_seed"]
    print(f"{name:40s} CV {r['cv']:.4f}/{r['cv_mapped']:.4f}  synth {r['sc']:.4f}/{r['sc_mapped']:.4f}  "
          f"real {r['fd']:.4f}/{r['fd_mapped']:.4f}  real22 seeds {ps[('field', 0)][1]:.4f} "
          f"{ps[('field', 1)][1]:.4f}  real26 seeds {ps[('field', 0)][0]:.4f} {ps[('field', 1)][0]:.4f}  "
          f"({time.monotonic() - t0:.0f} s)", flush=True)

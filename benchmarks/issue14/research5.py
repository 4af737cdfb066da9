# ruff: noqa  (research scripts, see README.md here)
"""Issue 14 items 4 and 5: TTA (mean / max over the shifted windows) and BirdNET-gated self-training rows,
scored per seed on both soundscape tests, every row through ``embedkit.evaluate.run.run_config``.

    python benchmarks/issue14/research5.py CACHE [ROW ...]     # CACHE: a copy of the evaluate cache
"""
import sys
import time
from dataclasses import replace

from embedkit import config as C
from embedkit.config import FitConfig, InferConfig
from embedkit.evaluate.data import load_clips
from embedkit.evaluate.run import run_config
from embedkit.evaluate.testsets import load_testsets

DATA, EMB, BG = "/work/shared/data/xc-pr-birds", "/work/cache14/emb_max", "/work/shared/data/backgrounds"
ROWS = {
    "no TTA (the default before)": ({}, {}),
    "tta mean": ({}, {"tta": (1.25,)}),
    "tta max": ({}, {"tta": (1.25,), "tta_reduce": "max"}),
    "tta mean, smoothing 0.25": ({}, {"tta": (1.25,), "smooth": 0.25}),
    "tta mean, no smoothing": ({}, {"tta": (1.25,), "smooth": 0.0}),
    "tta 0.625 mean": ({}, {"tta": (0.625,)}),
    "tta 2.5 mean": ({}, {"tta": (2.5,)}),
    "weak negatives off": ({"weak_negatives": 0.0}, {}),
    "self-training 0.99": ({"pseudo": 1}, {}),
    "self-training 0.9 ungated": ({"pseudo": 1, "pseudo_threshold": 0.9}, {}),
    "gated 0.5 / 0.9": ({"pseudo": 1, "pseudo_gate": 0.5, "pseudo_gated_threshold": 0.9}, {}),
    "gated 0.5 / 0.7": ({"pseudo": 1, "pseudo_gate": 0.5, "pseudo_gated_threshold": 0.7}, {}),
    "gated 0.8 / 0.5": ({"pseudo": 1, "pseudo_gate": 0.8, "pseudo_gated_threshold": 0.5}, {}),
    "gated 0.5 / 0.9, 2 rounds": ({"pseudo": 2, "pseudo_gate": 0.5, "pseudo_gated_threshold": 0.9}, {}),
}

cache = sys.argv[1]
names = sys.argv[2:] or list(ROWS)
fit = C.load(FitConfig, C.CONFIG_DIR / "fit.toml", data=DATA, embeddings=EMB)
inf = C.load(InferConfig, C.CONFIG_DIR / "infer.toml")
clips = load_clips(fit)
tests = load_testsets(clips, 12, [0, 1], cache, None, BG)
memo = {}
for name in names:
    change, pchange = ROWS[name]
    post = {"smooth": inf.smooth, "file_max": inf.file_max, "tta": (), **pchange}
    t0 = time.monotonic()
    r = run_config(replace(fit, **change), post, clips, tests, memo)
    ps = r["per_seed"]
    print(f"{name:28s} CV {r['cv']:.4f}/{r['cv_mapped']:.4f}  synth {r['sc']:.4f}/{r['sc_mapped']:.4f}  "
          f"real {r['fd']:.4f}/{r['fd_mapped']:.4f}  real22 seeds {ps[('field', 0)][1]:.4f} "
          f"{ps[('field', 1)][1]:.4f}  real26 seeds {ps[('field', 0)][0]:.4f} {ps[('field', 1)][0]:.4f}  "
          f"synth22 seeds {ps[('synthetic', 0)][1]:.4f} {ps[('synthetic', 1)][1]:.4f}  "
          f"({time.monotonic() - t0:.0f} s)", flush=True)

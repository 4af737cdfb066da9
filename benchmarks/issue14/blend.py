# ruff: noqa  (research script, see README.md here)
"""Blend of the default head (logreg) and mil, both with the default post-processing, at weights 0..1:
CV and both soundscape tests (the cache and shard paths are those of research_lib.py / the table run)."""
import numpy as np
from dataclasses import replace
from embedkit.config import FitConfig, InferConfig
from embedkit.evaluate.data import load_clips
from embedkit.evaluate.testsets import load_testsets, score_sets
from embedkit.evaluate.run import run_config, _scores
fit = FitConfig(data="/work/shared/data/xc-pr-birds", embeddings="/work/cache14/emb_lmax", backbone="birdnet")
clips = load_clips(fit)
tests = load_testsets(clips, 12, [0, 1], "/work/cache-final", None, "/work/shared/data/backgrounds")
post = {"smooth": 0.5, "file_max": 0.0, "tta": (1.25,)}
memo = {}
a = run_config(fit, post, clips, tests, memo)
b = run_config(replace(fit, head="mil"), post, clips, tests, memo)
mapped = clips.index >= 0
for w in (0.0, 0.3, 0.5, 0.7, 1.0):
    tp = w * a["test"] + (1 - w) * b["test"]
    oof = w * a["oof"] + (1 - w) * b["oof"]
    sc = score_sets(tests, tp, mapped, _scores)
    print(w, "cv", [round(v, 4) for v in _scores(clips.truth, oof, mapped)], {k: (round(v, 4) if isinstance(v, float) else "") for k, v in sc.items()}, flush=True)

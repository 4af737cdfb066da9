"""Benchmark the heads: fit / predict time and held-out macro ROC-AUC on synthetic BirdCLEF-shaped embeddings.

Data: ``rows`` x 1024 float32 embeddings for the 206 BirdCLEF 2025 classes; per-class row counts are
proportional to ``n_train_recordings`` in ``../shared/data/birdclef2025-labels/taxonomy_derived.csv``
(every class gets at least 2 rows), 15 % of rows carry a second label, and 30 % of labels are "weak" (the
class is labelled but its signal is absent, like a recording-level label on a silent window). Embeddings are
a ReLU of a random projection of a 96-d latent holding one of two prototypes per present class plus noise.

Also times the naive ``OneVsRestClassifier(LGBMClassifier())`` (default parameters). By default it runs on
a subset of classes (``--naive-classes``) and its time is extrapolated linearly to all trained classes,
clearly labelled; ``--naive-full`` runs it on every class. Its AUC is compared with the lgbm head's on the
same classes.

    python benchmarks/bench_heads.py                    # rows 5000 20000 50000
    python benchmarks/bench_heads.py --quick            # 5000 rows, fewer naive classes
    python benchmarks/bench_heads.py --rows 20000 --heads lgbm --param lgbm.feature_fraction=0.2

Wall times depend on what else runs on the machine; CPU time (all threads of this process) is printed too.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from embedkit.heads import get_head  # noqa: E402
from embedkit.metrics import birdclef_score  # noqa: E402

TAXONOMY = REPO.parent / "shared" / "data" / "birdclef2025-labels" / "taxonomy_derived.csv"


def class_counts() -> np.ndarray:
    """``n_train_recordings`` of the 206 classes, or a Zipf-like stand-in when the file is missing."""
    if TAXONOMY.is_file():
        with TAXONOMY.open(newline="") as f:
            return np.array([float(r["n_train_recordings"]) for r in csv.DictReader(f)])
    print(f"warning: {TAXONOMY} not found; using Zipf-like class counts", file=sys.stderr)
    return np.maximum(2.0, 1000.0 / np.arange(1, 207) ** 0.9)


def synth(n: int, counts: np.ndarray, dim: int = 1024, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic embeddings ``X`` float32 [n, dim] and multi-hot labels ``Y`` float32 [n, C]."""
    rng = np.random.default_rng(seed)
    C = len(counts)
    p = counts / counts.sum()
    primary = np.concatenate([np.repeat(np.arange(C), 2), rng.choice(C, n - 2 * C, p=p)])
    rng.shuffle(primary)
    Y = np.zeros((n, C), np.float32)
    Y[np.arange(n), primary] = 1
    second = rng.random(n) < 0.15
    Y[np.flatnonzero(second), rng.choice(C, second.sum(), p=p)] = 1
    k = 96
    protos = rng.standard_normal((C, 2, k)).astype(np.float32)
    present = Y * (rng.random((n, C)) >= 0.3)  # weak labels: 30 % of labelled classes leave no trace
    mode = rng.integers(0, 2, (n, C))
    strength = rng.uniform(0.4, 1.2, (n, C)).astype(np.float32) * present
    latent = rng.standard_normal((n, k)).astype(np.float32) * 1.2
    for m in (0, 1):
        latent += (strength * (mode == m)) @ protos[:, m]
    proj = rng.standard_normal((k, dim)).astype(np.float32) / np.sqrt(k)
    X = latent @ proj + 0.3 * rng.standard_normal((n, dim)).astype(np.float32)
    return np.maximum(X, 0.0, out=X), Y


def timed(fn):
    """Run ``fn()``; return ``(result, wall seconds, CPU seconds of this process)``."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def parse_value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def naive_subset(Ytr: np.ndarray, Yte: np.ndarray, k: int) -> np.ndarray:
    """``k`` classes spread over the frequency range among those with positives in train and test."""
    ok = np.flatnonzero((Ytr.sum(0) > 0) & (Yte.sum(0) > 0) & (Yte.sum(0) < len(Yte)))
    ok = ok[np.argsort(Ytr[:, ok].sum(0), kind="stable")]
    if k >= len(ok):
        return ok
    return np.sort(ok[np.linspace(0, len(ok) - 1, k).round().astype(int)])


def run_naive(Xtr, Ytr, Xte, cols, n_jobs=None):
    from lightgbm import LGBMClassifier
    from sklearn.multiclass import OneVsRestClassifier

    model = OneVsRestClassifier(LGBMClassifier(verbose=-1, n_jobs=n_jobs))
    _, fit_w, fit_c = timed(lambda: model.fit(Xtr, Ytr[:, cols]))
    P, pred_w, _ = timed(lambda: model.predict_proba(Xte))
    return P, fit_w, fit_c, pred_w


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[5000, 20000, 50000],
                    help="total rows per size (--test-fraction held out; the table shows training rows)")
    ap.add_argument("--quick", action="store_true", help="5000 rows only, 6 naive classes")
    ap.add_argument("--heads", nargs="+", default=["logreg", "mlp", "lgbm"])
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--naive-classes", type=int, default=16, help="classes timed for the naive baseline")
    ap.add_argument("--naive-full", action="store_true", help="run the naive baseline on every class (slow)")
    ap.add_argument("--naive-jobs", type=int, default=None,
                    help="LightGBM threads for the naive baseline (default: LightGBM's, all cores); 1 gives "
                         "cleaner CPU times on a busy machine, where OpenMP threads waste CPU waiting")
    ap.add_argument("--no-naive", action="store_true")
    ap.add_argument("--naive-rows", type=int, nargs="+", metavar="N",
                    help="run the naive baseline only at these --rows values (default: at all of them)")
    ap.add_argument("--param", action="append", default=[], metavar="HEAD.KEY=VALUE",
                    help="head parameter, e.g. lgbm.feature_fraction=0.2 or mlp.n_jobs=1 (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:
        args.rows, args.naive_classes = [5000], 6
    head_params: dict[str, dict] = {name: {} for name in args.heads}
    for item in args.param:
        key, value = item.split("=", 1)
        name, key = key.split(".", 1)
        head_params.setdefault(name, {})[key] = parse_value(value)

    counts = class_counts()
    print(f"cores: {len(os.sched_getaffinity(0))}, load average at start: {os.getloadavg()[0]:.1f}, "
          f"dim {args.dim}, {len(counts)} classes, head params: {head_params}")
    header = f"{'train':>6} {'head':<18} {'fit s':>8} {'fit cpu s':>9} {'pred s':>7} {'macro AUC':>9}"
    print(header + "\n" + "-" * len(header))
    ratio_line = None
    for n in args.rows:
        X, Y = synth(n, counts, args.dim, args.seed)
        n_te = int(round(args.test_fraction * n))
        Xtr, Ytr, Xte, Yte = X[n_te:], Y[n_te:], X[:n_te], Y[:n_te]
        n_train = len(Xtr)
        probs, fit_times, fit_cpu = {}, {}, {}
        for name in args.heads:
            head = get_head(name, **head_params[name])
            _, fit_w, fit_c = timed(lambda h=head, X=Xtr, Y=Ytr: h.fit(X, Y))
            P, pred_w, _ = timed(lambda h=head, X=Xte: h.predict_proba(X))
            probs[name], fit_times[name], fit_cpu[name] = P, fit_w, fit_c
            auc = birdclef_score(Yte, P)
            print(f"{n_train:>6} {name:<18} {fit_w:>8.1f} {fit_c:>9.1f} {pred_w:>7.2f} {auc:>9.4f}",
                  flush=True)
        if args.no_naive or (args.naive_rows and n not in args.naive_rows):
            continue
        n_trained = int((Ytr.sum(0) > 0).sum())
        if args.naive_full:
            cols = np.flatnonzero(Ytr.sum(0) > 0)
        else:
            cols = naive_subset(Ytr, Yte, args.naive_classes)
        P, fit_w, fit_c, pred_w = run_naive(Xtr, Ytr, Xte, cols, args.naive_jobs)
        scale = n_trained / len(cols)
        label = "naive OvR(LGBM)" + ("" if args.naive_full else f" x{scale:.1f}*")
        auc_naive = birdclef_score(Yte[:, cols], P)
        print(f"{n_train:>6} {label:<18} {fit_w * scale:>8.1f} {fit_c * scale:>9.1f} {pred_w * scale:>7.2f} "
              f"{auc_naive:>9.4f}", flush=True)
        if not args.naive_full:
            print(f"{'':>6} * timed on {len(cols)} of {n_trained} trained classes, times extrapolated "
                  f"linearly (x{scale:.1f}); AUC on those {len(cols)} classes")
        if "lgbm" in probs:
            auc_lgbm = birdclef_score(Yte[:, cols], probs["lgbm"][:, cols])
            speedup = fit_w * scale / fit_times["lgbm"]
            cpu_speedup = fit_c * scale / fit_cpu["lgbm"]
            print(f"{'':>6} lgbm head AUC on the same {len(cols)} classes: {auc_lgbm:.4f}; "
                  f"fit speedup {speedup:.1f}x wall, {cpu_speedup:.1f}x CPU")
            ratio_line = f"lgbm speedup vs naive: {speedup:.1f}x (AUC diff {auc_lgbm - auc_naive:+.3f})"
            how = "all classes" if args.naive_full else f"{len(cols)} classes, time extrapolated"
            ratio_line += (f"  [{n_train} training rows; wall time; CPU-time speedup {cpu_speedup:.1f}x; "
                           f"naive {how}]")
        print(flush=True)
    if ratio_line is not None:
        print(ratio_line)


if __name__ == "__main__":
    main()

"""LightGBM accuracy parity: the fast ``lgbm`` head vs the naive ``OneVsRestClassifier(LGBMClassifier())``.

``bench_heads.py`` times the naive baseline on a few classes and extrapolates; a few classes are far too few
to tell AUC differences of 0.005 apart (one class's held-out AUC moves by several hundredths with the bagging
seed). This script trains the naive baseline on *every* class, once, and compares per class:

- same synthetic BirdCLEF-shaped data as ``bench_heads.py`` (206 classes, imbalance from
  ``taxonomy_derived.csv``), a training part of ``--train`` rows and a large held-out part (``--test``, cheap:
  prediction only), so that most classes have several held-out positives;
- the naive model's held-out probabilities are cached in ``benchmarks/.cache/`` (keyed by the data and
  LightGBM version): it takes ~15 CPU minutes at 4k training rows, the variants seconds each;
- for each variant of the fast head (``--variant name:key=value,...``, several seeds), the macro AUC on the
  classes that have held-out positives and negatives, the paired per-class difference to the naive model
  with its standard error over classes, and the fit CPU time ratio.

    python benchmarks/bench_lgbm_parity.py                       # 4k train rows, defaults + variants
    python benchmarks/bench_lgbm_parity.py --train 16000 --seeds 0
    python benchmarks/bench_lgbm_parity.py --real EMB_DIR --data ../shared/data/xc-pr-birds

``--real``: embeddings extracted from a labelled dataset (``extract.py --split train_audio``) instead of the
synthetic data; out-of-fold predictions of both models in 5 folds grouped by recording, per-class AUC over
the pooled out-of-fold windows.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_heads import class_counts, naive_subset, parse_value, synth, timed  # noqa: E402

from embedkit.heads import get_head  # noqa: E402
from embedkit.metrics import per_class_auc  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
VARIANTS = [
    "default:",
    "no neg. bagging:neg_bagging_fraction=1.0",
    "ff 0.3:feature_fraction=0.3",
    "ff 0.3, 63 bins:feature_fraction=0.3,max_bin=63",
]


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        k, v = item.split("=", 1)
        params[k] = parse_value(v)
    return name or rest, params


def naive_model():
    """The naive baseline: ``OneVsRestClassifier(LGBMClassifier())``, default parameters, 1 thread per class.

    Fit it under ``joblib.parallel_backend("threading")``: classes then train in threads of this process
    (LightGBM releases the GIL), so this process's CPU time is the baseline's whole CPU time.
    """
    from lightgbm import LGBMClassifier
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(LGBMClassifier(verbose=-1, n_jobs=1), n_jobs=len(os.sched_getaffinity(0)))


def naive_probs(Xtr, Ytr, Xte, cols, key: str, cache: bool = True) -> tuple[np.ndarray, float]:
    """Held-out probabilities [n_test, len(cols)] of the naive model and its fit CPU seconds (cached)."""
    import lightgbm

    path = CACHE / f"naive-{key}-lgb{lightgbm.__version__}.npz"
    if cache and path.is_file():
        z = np.load(path)
        print(f"naive baseline: cached {path.name} (fit {float(z['cpu']):.0f} CPU s when it ran)", flush=True)
        return z["P"], float(z["cpu"])
    print(f"naive baseline: fitting OvR(LGBMClassifier()) on {len(cols)} classes ...", flush=True)
    from joblib import parallel_backend

    model = naive_model()
    with parallel_backend("threading"):
        _, wall, cpu_s = timed(lambda: model.fit(Xtr, Ytr[:, cols]))
    P = model.predict_proba(Xte)
    CACHE.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, P=P, cpu=cpu_s, wall=wall)
    os.replace(tmp, path)
    return P, cpu_s


def real_data(emb: str, data: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X [N, D], Y [N, C], groups [N])`` from shards of a labelled dataset and its train.csv."""
    from embedkit.birdclef import build_targets, load_labels, load_train
    from embedkit.store import read_embeddings

    keys, X = read_embeddings(emb)
    Y, keep, _ = build_targets(keys, load_train(data), load_labels(data))
    return X[keep], Y, keys["file"].to_numpy()[keep]


def oof(make, X, Y, groups, folds: int = 5) -> tuple[np.ndarray, float]:
    """Out-of-fold probabilities [N, C] of ``make()`` fitted per fold (grouped), and the fit CPU seconds."""
    from sklearn.model_selection import GroupKFold

    P, cpu = np.zeros(Y.shape, np.float32), 0.0
    for tr, te in GroupKFold(folds).split(X, Y, groups):
        cols = np.flatnonzero(Y[tr].sum(0) > 0)
        model = make()
        _, _, c = timed(lambda m=model, tr=tr, cols=cols: m.fit(X[tr], Y[tr][:, cols]))
        cpu += c
        P[np.ix_(te, cols)] = model.predict_proba(X[te])
    return P, cpu


def main_real(args) -> None:
    from joblib import parallel_backend

    X, Y, groups = real_data(args.real, args.data)
    Y = (Y >= 0.5).astype(np.float32)
    scored = np.flatnonzero((Y.sum(0) > 0) & (Y.sum(0) < len(Y)))
    print(f"{len(X)} windows x {X.shape[1]} dims from {len(set(groups))} recordings, {len(scored)} classes; "
          f"5 folds grouped by recording", flush=True)
    with parallel_backend("threading"):
        Pn, naive_cpu = oof(naive_model, X, Y, groups)
    auc_n = per_class_auc(Y[:, scored], Pn[:, scored])
    print(f"| head | seed | fit CPU s (5 folds) | CPU speed-up | macro AUC (OOF) | AUC diff vs naive |\n"
          f"|---|---|---|---|---|---|\n| naive OvR(LGBMClassifier()) | - | {naive_cpu:.0f} | 1.0x | "
          f"{auc_n.mean():.4f} | |", flush=True)
    for seed in args.seeds:
        P, cpu = oof(lambda s=seed: get_head("lgbm", seed=s), X, Y, groups)
        d = per_class_auc(Y[:, scored], P[:, scored]) - auc_n
        print(f"| lgbm default | {seed} | {cpu:.0f} | {naive_cpu / cpu:.1f}x | {(auc_n + d).mean():.4f} | "
              f"{d.mean():+.4f} ± {d.std(ddof=1) / np.sqrt(len(d)):.4f} |", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=4000, help="training rows")
    ap.add_argument("--test", type=int, default=16000, help="held-out rows")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the fast head")
    ap.add_argument("--variant", action="append", metavar="NAME:KEY=VALUE,...",
                    help=f"fast-head variants (default: {VARIANTS})")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--no-cache", action="store_true",
                    help="fit the naive baseline in this run even if a cached one exists (make bench)")
    ap.add_argument("--naive-classes", type=int, default=0,
                    help="train the naive baseline on this many classes spread over the frequency range (its "
                         "CPU time extrapolated to all); 0 = every class")
    ap.add_argument("--real", metavar="EMB_DIR",
                    help="shards of a labelled dataset instead of synthetic data")
    ap.add_argument("--data",
                    help="with --real: the data root (train.csv, taxonomy.csv or sample_submission.csv)")
    args = ap.parse_args(argv)
    if args.real:
        return main_real(args)
    variants = [parse_variant(v) for v in (args.variant or VARIANTS)]

    counts = class_counts()
    X, Y = synth(args.train + args.test, counts, args.dim, args.data_seed)
    Xtr, Ytr, Xte, Yte = X[: args.train], Y[: args.train], X[args.train :], Y[args.train :]
    trained = np.flatnonzero(Ytr.sum(0) > 0)
    cols = naive_subset(Ytr, Yte, args.naive_classes) if args.naive_classes else trained
    scale = len(trained) / len(cols)  # naive CPU time x scale = its time for every trained class
    scored = np.flatnonzero((Yte[:, cols].sum(0) > 0) & (Yte[:, cols].sum(0) < len(Yte)))
    what = f"{args.train}-{args.test}-{args.dim}-{args.data_seed}-{len(counts)}"
    what += f"-{args.naive_classes}" if args.naive_classes else ""
    key = hashlib.sha1(what.encode()).hexdigest()
    print(f"cores: {len(os.sched_getaffinity(0))}, load average at start: {os.getloadavg()[0]:.1f}; "
          f"{args.train} training rows, {args.test} held-out rows, {args.dim} dims, {len(trained)} classes "
          f"trained, naive on {len(cols)}, {len(scored)} scored (held-out positives and negatives; median "
          f"{int(np.median(Yte[:, cols[scored]].sum(0)))} held-out positives per class)", flush=True)
    Pn, naive_cpu = naive_probs(Xtr, Ytr, Xte, cols, key[:12], cache=not args.no_cache)
    naive_cpu *= scale
    auc_n = per_class_auc(Yte[:, cols[scored]], Pn[:, scored])
    rows = [("naive OvR(LGBMClassifier())", "-", naive_cpu, 1.0, float(np.mean(auc_n)), 0.0, 0.0)]
    for name, params in variants:
        for seed in args.seeds:
            head = get_head("lgbm", **{"seed": seed, **params})
            _, _, fit_c = timed(lambda h=head: h.fit(Xtr, Ytr))
            P = head.predict_proba(Xte)[:, cols]
            auc = per_class_auc(Yte[:, cols[scored]], P[:, scored])
            d = auc - auc_n
            rows.append((name, seed, fit_c, naive_cpu / fit_c, float(np.mean(auc)), float(d.mean()),
                         float(d.std(ddof=1) / np.sqrt(len(d)))))
            print(f"  {name} seed {seed}: fit {fit_c:.0f} CPU s, AUC {rows[-1][4]:.4f} "
                  f"(diff {rows[-1][5]:+.4f} +- {rows[-1][6]:.4f})", flush=True)
    extrapolated = f" (timed on {len(cols)} classes, x{scale:.1f})" if scale > 1 else ""
    print(f"\nFast lgbm head vs naive OvR(LGBMClassifier()), {args.train} training rows, macro ROC-AUC over "
          f"{len(scored)} classes on {args.test} held-out rows; naive fit CPU s for all {len(trained)} "
          f"classes{extrapolated}; diff = mean paired per-class difference "
          f"+- its standard error over classes; CPU s = fit CPU time (all threads / worker processes).\n")
    print("| head | seed | fit CPU s | CPU speed-up | macro AUC | AUC diff vs naive |")
    print("|---|---|---|---|---|---|")
    for name, seed, cpu, sp, auc, d, se in rows:
        diff = "" if seed == "-" else f"{d:+.4f} ± {se:.4f}"
        print(f"| {name} | {seed} | {cpu:.0f} | {sp:.1f}x | {auc:.4f} | {diff} |")
    for name, _ in variants:
        mine = [r for r in rows if r[0] == name]
        d = np.mean([r[5] for r in mine])
        se = np.mean([r[6] for r in mine])
        sp = np.mean([r[3] for r in mine])
        ok = "met" if d >= -0.005 and sp >= 8 else "NOT met"
        print(f"ratio: lgbm '{name}' vs naive: {sp:.1f}x less fit CPU, AUC diff {d:+.4f} (standard error "
              f"~{se:.3f} over {len(scored)} classes, mean of {len(mine)} seeds; goal >= 8x within 0.005: "
              f"{ok})")


if __name__ == "__main__":
    main()

"""Heads at BirdCLEF scale: fit / predict time, peak RSS and held-out AUC of every head as windows grow.

Data (synthetic, BirdCLEF-shaped, seeded): recordings of the 206 BirdCLEF 2025 classes drawn in proportion to
``n_train_recordings`` of ``../shared/data/birdclef2025-labels/taxonomy_derived.csv`` (long tail: many classes
have a handful of recordings); windows per recording log-normal (median 8, capped at 120); 15 % of recordings
carry a secondary label; every window of a recording shares the recording's label (the "weak label" of focal
recordings), and 30 % of windows hold no call of it. An embedding is a ReLU of a random projection of a 96-d
latent: the recording's call type (one of two prototypes of its class) times a strength, plus a recording
offset (site, microphone), plus noise. Windows are written as float16 shards (``ShardWriter``, the extraction
default) and read back through ``read_embeddings``, as ``fit`` does. The held-out set is 20k windows of other
recordings (macro ROC-AUC over classes with positives).

Each (size, head) runs in its own child process under ``nice`` with the head's default parameters; the peak
RSS is the child's ``ru_maxrss`` (reading the shards included) and is compared with the float32 size of the
embeddings (goal: <= 3x). The growth exponent between two sizes is ``log(t2 / t1) / log(n2 / n1)`` (1 =
linear). Sizes run sequentially; the machine's load average is printed, as other work shares the cores.

    python benchmarks/bench_scale.py                           # 50k 200k 500k windows, every head
    python benchmarks/bench_scale.py --sizes 50000 200000 --heads logreg mlp
    python benchmarks/bench_scale.py --tiny                    # seconds: the CI smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import VENV_PY, header, last_json, load, run_child, table  # noqa: E402
from bench_heads import class_counts  # noqa: E402

HEADS = ["proto", "logreg", "mlp", "mil", "lgbm"]
NO_SECOND = 999


def recordings(n_windows: int, counts: np.ndarray, rng: np.random.Generator):
    """Recordings covering ``n_windows``: (primary class [R], secondary class or 999 [R], windows [R])."""
    p = counts / counts.sum()
    lengths = np.clip(np.round(rng.lognormal(np.log(8.0), 0.9, n_windows // 4 + 10)), 1, 120).astype(int)
    R = int(np.searchsorted(np.cumsum(lengths), n_windows)) + 1
    lengths = lengths[:R]
    lengths[-1] -= int(lengths.sum() - n_windows)
    primary = rng.choice(len(counts), R, p=p)
    primary[: min(R, len(counts))] = np.arange(min(R, len(counts)))  # every class has a recording
    second = np.where(rng.random(R) < 0.15, rng.choice(len(counts), R, p=p), NO_SECOND)
    second[second == primary] = NO_SECOND
    return primary, second, lengths


def write_dataset(folder: Path, n: int, dim: int, seed: int, rec0: int = 0) -> None:
    """Write ``n`` synthetic windows as float16 shards into ``folder`` (chunk by chunk; see the docstring).

    Written into ``folder.partial`` and renamed when complete, so a run killed while writing never leaves a
    short dataset that a later ``--data-dir`` run would take for a whole one.
    """
    import shutil

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    _write_rows(partial, n, dim, seed, rec0)
    partial.rename(folder)


def _write_rows(folder: Path, n: int, dim: int, seed: int, rec0: int) -> None:
    import pandas as pd

    from embedkit.store import ShardWriter

    counts = class_counts()
    C, k = len(counts), 96
    world = np.random.default_rng(12345)  # prototypes and projection: the same "species" for every set
    protos = world.standard_normal((C, 2, k)).astype(np.float32)
    proj = (world.standard_normal((k, dim)) / np.sqrt(k)).astype(np.float32)
    rng = np.random.default_rng(seed)
    primary, second, lengths = recordings(n, counts, rng)
    prov = {"backbone": "synthetic", "dim": dim, "sample_rate": 32000, "weights": f"world-12345-{dim}",
            "window_s": 5.0, "hop_s": 5.0}
    w = ShardWriter(folder, prov, dtype="float16", row_group_size=8192)
    starts = np.r_[0, np.cumsum(lengths)]
    r = 0
    while r < len(lengths):
        r2 = int(np.searchsorted(starts, starts[r] + 16384, side="right")) - 1
        r2 = max(r2, r + 1)
        rec = np.repeat(np.arange(r, r2), lengths[r:r2])
        m = len(rec)
        mode = rng.integers(0, 2, r2 - r)[rec - r]
        offset = (0.5 * rng.standard_normal((r2 - r, k))).astype(np.float32)[rec - r]
        latent = offset + 1.2 * rng.standard_normal((m, k), dtype=np.float32)
        calls = (rng.random(m) >= 0.3) * rng.uniform(0.4, 1.2, m)
        latent += calls[:, None].astype(np.float32) * protos[primary[rec], mode]
        has2 = second[rec] != NO_SECOND
        calls2 = has2 * (rng.random(m) >= 0.3) * rng.uniform(0.4, 1.2, m)
        latent += calls2[:, None].astype(np.float32) * protos[np.where(has2, second[rec], 0), 1 - mode]
        X = latent @ proj
        X += 0.3 * rng.standard_normal((m, dim), dtype=np.float32)
        np.maximum(X, 0, out=X)
        files = [f"c{primary[i]:03d}/XC{rec0 + i:07d}_s{second[i]:03d}.ogg" for i in range(r, r2)]
        window = np.concatenate([np.arange(n_) for n_ in lengths[r:r2]])
        keys = pd.DataFrame({"file": np.repeat(files, lengths[r:r2]), "window": window,
                             "start_s": window * 5.0, "end_s": window * 5.0 + 5})
        keys["row_id"] = keys["file"].str.slice(5, 14) + "_" + (window * 5 + 5).astype(str)
        w.write(keys, X)
        r = r2


def load_xy(folder: Path):
    """Shards → (X float32 [N, D], Y float32 [N, 206], groups int [N]); labels are in the file names."""
    from embedkit.store import read_embeddings

    keys, X = read_embeddings(folder, columns=[])
    codes, uniq = keys["file"].factorize()
    prim = np.array([int(f[1:4]) for f in uniq])
    sec = np.array([int(f.split("_s")[1][:3]) for f in uniq])
    Y = np.zeros((len(keys), len(class_counts())), np.float32)
    Y[np.arange(len(keys)), prim[codes]] = 1
    has = sec[codes] != NO_SECOND
    Y[np.flatnonzero(has), sec[codes][has]] = 1
    return X, Y, codes


def child(args) -> None:
    """One head on one dataset: print a JSON line with times, peak RSS and held-out AUC."""
    print(json.dumps(measure(args.head, Path(args.train), Path(args.test), json.loads(args.params or "{}"))))


def measure(name: str, train: Path, test: Path, params: dict) -> dict:
    """Read ``train``, fit head ``name``, predict ``test``: times, RSS (of this process) and held-out AUC."""
    import torch  # noqa: F401 - in the baseline RSS, as in any fit process

    from embedkit.heads import get_head
    from embedkit.metrics import birdclef_score

    rss_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t = time.perf_counter()
    X, Y, groups = load_xy(train)
    read_s = time.perf_counter() - t
    rss_read = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    head = get_head(name, **params)
    t, c = time.perf_counter(), time.process_time()
    if name == "mil":
        head.fit(X, Y, groups=groups)
    else:
        head.fit(X, Y)
    fit_s, fit_cpu = time.perf_counter() - t, time.process_time() - c
    n, d = X.shape
    del X, Y, groups
    Xte, Yte, _ = load_xy(test)
    t = time.perf_counter()
    P = head.predict_proba(Xte)
    pred_s = time.perf_counter() - t
    return {"head": name, "n": n, "dim": d, "read_s": read_s, "fit_s": fit_s, "fit_cpu_s": fit_cpu,
            "predict_s": pred_s, "predict_rows": len(Xte), "rss_base_gb": rss_base, "rss_read_gb": rss_read,
            "rss_peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "auc": birdclef_score(Yte, P), "epochs": getattr(head, "n_epochs_", None)}


def exponent(rows: list[dict], key: str, head: str) -> list[str]:
    """Growth exponents of ``key`` between consecutive sizes of ``head``."""
    pts = sorted((r["n"], r[key]) for r in rows if r["head"] == head and r.get(key))
    return [f"{math.log(b[1] / a[1]) / math.log(b[0] / a[0]):.2f}" for a, b in zip(pts, pts[1:], strict=False)
            if a[0] != b[0]]


def report(rows: list[dict], sizes: list[int], heads: list[str], budget_s: float) -> None:
    out = []
    for r in rows:
        f32 = r["n"] * r["dim"] * 4 / 2**30
        out.append({"windows": r["n"], "head": r["head"], "fit s": r["fit_s"], "fit CPU s": r["fit_cpu_s"],
                    "predict s (held-out)": r["predict_s"], "peak RSS GiB": r["rss_peak_gb"],
                    "RSS / float32 X": r["rss_peak_gb"] / f32,
                    "(RSS - interpreter) / float32 X": (r["rss_peak_gb"] - r["rss_base_gb"]) / f32,
                    "held-out AUC": r["auc"]})
    print(table(out) + "\n")
    grow = [{"head": h, "fit-time exponents": " ".join(exponent(rows, "fit_s", h)) or "-",
             "peak-RSS exponents": " ".join(exponent(rows, "rss_peak_gb", h)) or "-"} for h in heads]
    print(f"Growth exponents between consecutive sizes ({' -> '.join(map(str, sizes))}):\n")
    print(table(grow) + "\n")
    big = max(sizes)
    for h in heads:
        got = [r for r in rows if r["head"] == h and r["n"] == big]
        if got:
            r = got[0]
            ok = r["fit_s"] <= budget_s and r["rss_peak_gb"] <= 3 * big * r["dim"] * 4 / 2**30
            print(f"ratio: {h} at {big} windows: fit {r['fit_s']:.0f} s (goal <= {budget_s:.0f} s), peak RSS "
                  f"{r['rss_peak_gb'] / (big * r['dim'] * 4 / 2**30):.2f}x float32 X (goal <= 3x): "
                  f"{'met' if ok else 'NOT met'}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 500_000])
    ap.add_argument("--heads", nargs="+", default=HEADS)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--test-rows", type=int, default=20_000)
    ap.add_argument("--data-dir", default=None, help="keep generated shards here (reused across runs)")
    ap.add_argument("--param", action="append", default=[], metavar="HEAD.KEY=JSON")
    ap.add_argument("--budget-s", type=float, default=900.0)
    ap.add_argument("--tiny", action="store_true",
                    help="CI smoke run: 2 small sizes, 32 dims, cheap params, heads in this process")
    ap.add_argument("--json-out", default=None, help="also write the rows as JSON here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--head", help=argparse.SUPPRESS)
    ap.add_argument("--train", help=argparse.SUPPRESS)
    ap.add_argument("--test", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    params: dict[str, dict] = {h: {} for h in args.heads}
    if args.tiny:
        args.sizes, args.dim, args.test_rows = [1500, 3000], 32, 1000
        params.update(mlp={"epochs": 3}, mil={"epochs": 3}, lgbm={"n_estimators": 3})
    for item in args.param:
        key, value = item.split("=", 1)
        h, k = key.split(".", 1)
        params.setdefault(h, {})[k] = json.loads(value)
    tmp = tempfile.TemporaryDirectory(prefix="bench-scale-") if args.data_dir is None else None
    root = Path(args.data_dir or tmp.name)
    header("Heads at scale", f"{args.dim} dims, 206 classes (long-tailed, grouped recordings), float16 "
           f"shards read with read_embeddings; {args.test_rows} held-out windows; heads' default parameters "
           f"{'(tiny: cheap params) ' if args.tiny else ''}in a child process each, under nice.")
    test = root / f"test-{args.test_rows}-{args.dim}"
    if not test.is_dir():
        write_dataset(test, args.test_rows, args.dim, seed=999, rec0=9_000_000)
    rows = []
    for n in args.sizes:
        train = root / f"train-{n}-{args.dim}"
        if not train.is_dir():
            t = time.perf_counter()
            write_dataset(train, n, args.dim, seed=n)
            print(f"  wrote {n} windows in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        for h in args.heads:
            print(f"  {n} {h}: load average {load()}", file=sys.stderr, flush=True)
            if args.tiny:  # a smoke run: in this process (RSS is then this process's running peak)
                r = measure(h, train, test, params.get(h, {}))
            else:
                argv_c = ["nice", "-n", "5", VENV_PY, __file__, "--child", "--head", h, "--train", str(train),
                          "--test", str(test), "--params", json.dumps(params.get(h, {}))]
                env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
                r = last_json(run_child(argv_c, env=env).out)
            print(f"  {json.dumps(r)}", file=sys.stderr, flush=True)
            rows.append(r)
            if args.json_out:
                Path(args.json_out).write_text(json.dumps(rows, indent=1))
    report(rows, args.sizes, args.heads, args.budget_s)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()

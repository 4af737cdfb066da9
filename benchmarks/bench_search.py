"""Search: the usearch HNSW index of ``embedkit index`` vs brute force (numpy), and vs faiss-cpu HNSW.

Vectors are synthetic but clustered like embeddings (N/50 random centres, each vector a centre plus noise
of 0.6x its scale, rounded to float16 as the shards store them, read back as float32); queries are stored
vectors with a little noise. 1M windows use 256 dims (1M x 1024 float32 would be 4 GB before the graph:
over this machine's 6 GB share), 100k use BirdNET's 1024. ``--real DIR`` adds the real BirdNET windows of a
shard dataset. Per size: build time (all cores) and index file size, recall@10 against exact search, and
the median latency of one query on one thread against numpy brute force (``X @ q``, ``argpartition``) over
the same float32 matrix in memory. The CPU is shared with other work: times are load-dependent.

    nice python benchmarks/bench_search.py                      # 100k x 1024 and 1M x 256
    nice python benchmarks/bench_search.py --sizes 100000:1024 --compare faiss --real emb/birdnet/train_audio
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import header, table  # noqa: E402


def clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Synthetic embeddings float32 [n, d] (see the module docstring), built in blocks to bound memory."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(n // 50, 1), d), dtype=np.float32)
    X = np.empty((n, d), np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        block = centres[rng.integers(0, len(centres), m)] + 0.6 * rng.standard_normal(
            (m, d), dtype=np.float32
        )
        X[s : s + m] = block.astype(np.float16)
    return X


def queries(X: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Q = X[rng.choice(len(X), n, replace=False)].copy()
    return Q + 0.1 * Q.std() * rng.standard_normal(Q.shape, dtype=np.float32)


def truth_topk(X: np.ndarray, Q: np.ndarray, k: int = 10) -> np.ndarray:
    from embedkit.search.ann import exact_topk, normalise

    Xn = normalise(X)
    return np.vstack([exact_topk(Xn, Q[i : i + 50], k)[0] for i in range(0, len(Q), 50)])


def brute_ms(X: np.ndarray, Q: np.ndarray, k: int = 10, reps: int = 20) -> float:
    """Median ms of one brute-force query over unit rows ``X`` (normalised once, as an exact index would)."""
    from threadpoolctl import threadpool_limits

    from embedkit.search.ann import normalise

    Xn = normalise(X)
    ts = []
    with threadpool_limits(1):  # one thread, as the index's queries
        for q in normalise(Q[:reps]):
            t0 = time.perf_counter()
            s = Xn @ q
            top = np.argpartition(-s, k)[:k]
            top[np.argsort(-s[top])]
            ts.append(time.perf_counter() - t0)
    del Xn
    return 1000 * float(np.median(ts))


def bench_usearch(X, Q, truth, tmp: Path, expansions=(64,)) -> list[dict]:
    """Build once; recall and latency for each query-time candidate-list size (``expansion_search``)."""
    from embedkit.search import ann

    t0 = time.perf_counter()
    g = ann.new_graph(X.shape[1])
    for s in range(0, len(X), 100_000):  # add in blocks, as build_index adds shard by shard
        ann.add(g, s, X[s : s + 100_000])
    build = time.perf_counter() - t0
    ann.save_graph(g, tmp / "g.usearch")
    out = []
    for es in expansions:
        g.expansion_search = es
        got = ann.graph_topk(g, Q, 10)[0]
        out.append(
            {
                "engine": f"{ann.library_version()} HNSW f16, expansion_search {es}",
                "build_s": build,
                "mb": (tmp / "g.usearch").stat().st_size / 1e6,
                "recall": recall(got, truth),
                "q_ms": latency(lambda q: ann.graph_topk(g, q[None], 10, threads=1), Q),
            }
        )
    return out


def bench_faiss(X, Q, truth, tmp: Path) -> dict:
    import faiss

    from embedkit.search.ann import PARAMS, normalise

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    idx = faiss.IndexHNSWFlat(X.shape[1], PARAMS["connectivity"], faiss.METRIC_INNER_PRODUCT)
    idx.hnsw.efConstruction = PARAMS["expansion_add"]
    for s in range(0, len(X), 100_000):
        idx.add(normalise(X[s : s + 100_000]))
    build = time.perf_counter() - t0
    idx.hnsw.efSearch = PARAMS["expansion_search"]
    faiss.write_index(idx, str(tmp / "g.faiss"))
    Qn = normalise(Q)
    got = idx.search(Qn, 10)[1]
    faiss.omp_set_num_threads(1)
    return {
        "engine": f"faiss-cpu {faiss.__version__} HNSWFlat f32",
        "build_s": build,
        "mb": (tmp / "g.faiss").stat().st_size / 1e6,
        "recall": recall(got, truth),
        "q_ms": latency(lambda q: idx.search(q[None], 10), Qn),
    }


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(got, truth, strict=True)]))


def latency(fn, Q: np.ndarray) -> float:
    ts = []
    for q in Q:
        t0 = time.perf_counter()
        fn(q)
        ts.append(time.perf_counter() - t0)
    return 1000 * float(np.median(ts))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["100000:1024", "1000000:256"], help="N:D pairs")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--compare", nargs="*", default=[], help="other engines: faiss")
    ap.add_argument("--real", help="a BirdNET shard dataset: also its real windows")
    ap.add_argument(
        "--expansion-search",
        type=int,
        nargs="+",
        default=[64, 128, 256],
        help="query-time candidate-list sizes to measure (one build)",
    )
    args = ap.parse_args(argv)
    header("Search: usearch HNSW vs brute force", __doc__.split("\n\n")[1].replace("\n", " "))
    sets = []
    if args.real:
        from embedkit.store import read_embeddings

        sets.append(("real BirdNET windows", read_embeddings(args.real)[1]))
    for spec in args.sizes:
        n, d = (int(v) for v in spec.split(":"))
        sets.append((f"synthetic {n:,} x {d}", (n, d)))
    rows, ratios = [], []
    for name, X in sets:
        X = clustered(*X) if isinstance(X, tuple) else X
        Q = queries(X, min(args.queries, len(X)))
        truth = truth_topk(X, Q)
        bf = brute_ms(X, Q)
        with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
            runs = bench_usearch(X, Q, truth, Path(tmp), args.expansion_search)
            if "faiss" in args.compare:
                runs.append(bench_faiss(X, Q, truth, Path(tmp)))
        for r in runs:
            rows.append(
                {
                    "vectors": name,
                    "engine": r["engine"],
                    "build s": f"{r['build_s']:.1f}",
                    "index MB": f"{r['mb']:.0f}",
                    "recall@10": f"{r['recall']:.4f}",
                    "query ms (1 thread)": f"{r['q_ms']:.2f}",
                    "brute force ms": f"{bf:.1f}",
                    "speed-up": f"{bf / r['q_ms']:.0f}x",
                }
            )
            print(f"# {name} {r['engine']}: {rows[-1]}", file=sys.stderr, flush=True)
        from embedkit.search.ann import PARAMS

        d = next((r for r in runs if r["engine"].endswith(f" {PARAMS['expansion_search']}")), runs[0])
        ratios.append(
            f"ratio: search {name} ({d['engine']}): {bf / d['q_ms']:.0f}x faster than brute "
            f"force, recall@10 {d['recall']:.3f}"
        )
        del X
    print(table(rows) + "\n")
    for r in ratios:
        print(r)


if __name__ == "__main__":
    main()

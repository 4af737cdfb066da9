"""The nearest-neighbour engine: usearch HNSW (cosine, float16 vectors) and exact search in numpy.

All library-specific code lives here, so the rest of :mod:`embedkit.search` sees three verbs: build a graph
from rows (:func:`new_graph`, :func:`add`), save/load it (:func:`save_graph`, :func:`load_graph`: usearch's
own binary format, never pickle) and query it (:func:`graph_topk`). :func:`exact_topk` is the brute-force
reference the ANN results are checked against.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embedkit.errors import UsageError

#: HNSW parameters: graph degree, candidate-list size when adding and when searching. 16/64/128 gives
#: recall@10 0.997 on the real BirdNET windows, 0.998 on 100k x 1024 and 0.96 on 1M x 256 synthetic ones, at
#: ~150x the speed of brute force (benchmarks/RESULTS.md, "Search"); 64 search candidates give 0.90 at 1M.
PARAMS = {"connectivity": 16, "expansion_add": 64, "expansion_search": 128}
#: how vectors are held inside the graph (BirdNET shards are float16 already: no precision is lost)
GRAPH_DTYPE = "f16"
INSTALL_HINT = "embedding search needs the package 'usearch': pip install usearch"


def _usearch():
    try:
        from usearch.index import Index
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return Index


def library_version() -> str:
    """``usearch <version>`` (recorded in the index metadata)."""
    import usearch

    return f"usearch {usearch.__version__}"


def new_graph(dim: int, params: dict | None = None):
    """An empty cosine HNSW graph for ``dim``-D vectors."""
    index_cls = _usearch()
    p = {**PARAMS, **(params or {})}
    return index_cls(ndim=int(dim), metric="cos", dtype=GRAPH_DTYPE, **p)


def add(graph, first_key: int, X: np.ndarray, threads: int | None = None) -> None:
    """Add rows ``X`` float32 [n, D] under keys ``first_key .. first_key + n - 1``."""
    if len(X):
        keys = np.arange(first_key, first_key + len(X), dtype=np.uint64)
        graph.add(keys, np.ascontiguousarray(X, np.float32), threads=threads or 0)


def save_graph(graph, path: Path) -> None:
    """Write the graph to ``path`` (usearch's binary format) and fsync it; the caller renames it."""
    graph.save(str(path))
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def load_graph(path: Path, dim: int, params: dict | None = None):
    """Load a graph saved by :func:`save_graph` (the caller has checked its SHA-256)."""
    graph = new_graph(dim, params)
    graph.load(str(path))
    graph.expansion_search = {**PARAMS, **(params or {})}["expansion_search"]  # a query-time setting
    return graph


def graph_topk(graph, q: np.ndarray, k: int, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top-``k`` rows for each query.

    Args:
        graph: a loaded graph.
        q: queries float32 [Q, D].
        k: neighbours per query.
        threads: search threads (default: all cores).

    Returns:
        ``(rows int64 [Q, k'], cosine similarity float32 [Q, k'])``, best first; ``k' = min(k, size)``.
    """
    k = min(int(k), len(graph))
    if k == 0:
        return np.zeros((len(q), 0), np.int64), np.zeros((len(q), 0), np.float32)
    m = graph.search(np.ascontiguousarray(q, np.float32), k, threads=threads or 0)
    keys = np.asarray(m.keys).astype(np.int64).reshape(len(q), -1)
    sims = 1.0 - np.asarray(m.distances, dtype=np.float32).reshape(len(q), -1)
    found = np.asarray(getattr(m, "counts", [len(m.keys)])).reshape(-1, 1)  # fewer than k: the rest is -1
    short = np.arange(keys.shape[1])[None, :] >= found
    keys[short], sims[short] = -1, -np.inf
    return keys, sims


def normalise(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero): float32 [n, D]."""
    X = np.asarray(X, np.float32)
    n = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(n > 0, n, 1.0)


def exact_topk(X: np.ndarray, q: np.ndarray, k: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force cosine top-``k`` of queries ``q`` [Q, D] over rows ``X`` [N, D], rows numbered from offset.

    Returns:
        ``(rows int64 [Q, k'], cosine similarity float32 [Q, k'])``, best first; ``k' = min(k, N)``.
    """
    k = min(int(k), len(X))
    S = normalise(q) @ normalise(X).T  # [Q, N]
    if k == 0:
        return np.zeros((len(q), 0), np.int64), np.zeros((len(q), 0), np.float32)
    part = (
        np.argpartition(-S, k - 1, axis=1)[:, :k]
        if k < S.shape[1]
        else np.tile(np.arange(S.shape[1]), (len(q), 1))
    )
    top = np.take_along_axis(S, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    rows = np.take_along_axis(part, order, axis=1)
    return rows.astype(np.int64) + offset, np.take_along_axis(top, order, axis=1).astype(np.float32)


def merge_topk(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], k: int):
    """Merge two per-query top lists (rows, sims) [Q, *] into one top-``k`` (for shard-by-shard search)."""
    rows = np.concatenate([a[0], b[0]], axis=1)
    sims = np.concatenate([a[1], b[1]], axis=1)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(rows, order, axis=1), np.take_along_axis(sims, order, axis=1)

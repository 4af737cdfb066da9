"""Search as active learning: several example clips, the query's own recording left out, a head's ranking.

* Several queries (``--query A --query B``): ``combine="mean"`` searches with the mean of their unit-length
  embeddings (one prototype); ``"any"`` searches with each and keeps, per window, its best similarity to any
  of them (nearest to any example), ranked by that.
* ``exclude_source``: the windows of the query's own recording(s) are skipped (a clip's file, matched by its
  path relative to the extraction's source folder, else by its file name; a ``--row-id`` window's file), so
  the hits are new material; enough extra neighbours are fetched that ``k`` hits remain.
* ``rank_by_head``: no query; every window of the index is scored by a saved model for one species and
  ranked by that score (``uncertain``: by ``|p - threshold|``, the windows the head is least sure about
  first, which are the ones worth labelling). The model must have been fit on the index's embeddings; one
  with the zero-shot prior also reads the shards' logits (``extract.py --save-logits``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embedkit.errors import UsageError
from embedkit.search import ann


def query_list(query) -> list[str]:
    """Clip specs of ``query``: None, one spec, or several."""
    if query is None:
        return []
    if isinstance(query, str | os.PathLike):
        return [str(query)]
    return [str(q) for q in query]


def source_files(index, specs: list[str], row_id: str | None, audio_root=None) -> set[str]:
    """Index ``file`` values of the recordings the queries (clips, or a stored window) come from."""
    from embedkit.search.query import parse_clip

    files = set(index.rows["file"].astype(str))
    out = set()
    if row_id is not None:
        hit = index.rows["row_id"] == row_id
        out.add(str(index.rows.loc[hit, "file"].iloc[0]) if hit.any() else row_id.rpartition(":")[0])
    src = Path(str(audio_root or index.provenance.get("source", "") or ".")).resolve()
    for spec in specs:
        path = parse_clip(spec)[0].resolve()
        rel = os.path.relpath(path, src)
        if rel in files:
            out.add(rel)
        else:  # a copy elsewhere: the same file name
            out |= {f for f in files if Path(f).name == path.name}
    return out


def multi_search(index, Q: np.ndarray, k: int, combine: str, skip: np.ndarray | None, exact: bool,
                 threads: int | None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Top ``k`` rows and similarities for queries ``Q`` [n, D] (see the module docstring).

    Args:
        index: the search index.
        Q: query vectors float32 [n, D].
        k: hits wanted.
        combine: ``mean`` or ``any``.
        skip: bool [rows] of the index, windows never returned, or None.
        exact: brute force instead of the ANN graph.
        threads: search threads.

    Returns:
        ``(rows int64 [<= k], similarity float32 [<= k])``, best first.
    """
    from embedkit.search.query import exact_search

    if combine not in ("mean", "any"):
        raise UsageError(f"--combine must be mean or any, got {combine!r}")
    if combine == "mean" or len(Q) == 1:
        Q = ann.normalise(Q).mean(0, keepdims=True).astype(np.float32)
    fetch = min(len(index), k + (0 if skip is None else int(skip.sum())))
    rows, sims = exact_search(index, Q, fetch) if exact else ann.graph_topk(index.graph, Q, fetch, threads)
    best: dict[int, float] = {}
    for r, s in zip(rows.ravel(), sims.ravel(), strict=True):
        if r >= 0 and (skip is None or not skip[r]) and s > best.get(int(r), -np.inf):
            best[int(r)] = float(s)
    order = sorted(best, key=lambda r: -best[r])[:k]
    return np.array(order, np.int64), np.array([best[r] for r in order], np.float32)


def head_hits(index, model_dir, species: str | None, k: int, uncertain: bool, threshold: float,
              audio_root=None):  # fmt: skip
    """The index's windows ranked by a saved model's probability of ``species`` (see the module docstring).

    Returns:
        A hits table (:data:`~embedkit.search.query.HIT_COLUMNS`) whose ``score`` is the probability.

    Raises:
        UsageError: no or an unknown species, a model of other embeddings, or one that needs logits.
    """
    from embedkit.predict.model import load_model
    from embedkit.search.index import shard_vectors
    from embedkit.search.query import hits_table

    model = load_model(model_dir)
    if not species or species not in model.labels:
        shown = ", ".join(model.labels[:8]) + (" ..." if len(model.labels) > 8 else "")
        raise UsageError(f"--rank-by-head needs --species, one of the model's labels ({shown}): {species!r}")
    model.check(index.provenance, where=f"index {index.dataset}")
    c = model.labels.index(species)
    ids, probs = [], []
    for shard in dict.fromkeys(index.rows["shard"]):
        if model.meta.get("needs_logits"):  # the zero-shot prior: the shards' own logits
            rows, X, L = _with_logits(index, shard, model_dir)
        else:
            (rows, X), L = shard_vectors(index, shard), None
        ids.append(rows)
        probs.append(model.predict(X, L)[:, c])
    rows, p = np.concatenate(ids), np.concatenate(probs).astype(np.float64)
    key = np.abs(p - threshold) if uncertain else -p
    top = np.lexsort((rows, key))[: int(k)]
    return hits_table(index, rows[top], p[top], species, audio_root)


def _with_logits(index, shard: str, model_dir) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index rows [n], embeddings [n, D], the backbone's logits [n, K]) of one indexed shard."""
    import pandas as pd
    import pyarrow.parquet as pq

    from embedkit.store import StoreError, read_embeddings

    if "logits" not in pq.read_schema(index.dataset / shard).names:
        raise UsageError(
            f"--rank-by-head {model_dir}: the model blends the backbone's own logits, but {shard} holds none "
            f"(extract with --save-logits, or rank with a model fit with --zero-shot off)"
        )
    keys, X, L = read_embeddings(index.dataset / shard, expect=index.provenance, logits=True)
    mine = index.rows[index.rows["shard"] == shard]
    pos = pd.Series(np.arange(len(keys)), index=pd.MultiIndex.from_frame(keys[["file", "window"]]))
    at = pos.reindex(pd.MultiIndex.from_frame(mine[["file", "window"]])).to_numpy()
    if np.isnan(at).any():
        raise StoreError(f"{shard} no longer holds every window the index lists; rebuild the index")
    at = at.astype(np.int64)
    return mine.index.to_numpy(np.int64), X[at], L[at]


__all__ = ["head_hits", "multi_search", "query_list", "source_files"]

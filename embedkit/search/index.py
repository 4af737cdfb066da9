"""A search index over one shard dataset: its format, finding and loading it with hash checks, its vectors.

An index folder (default ``DATASET/index/``, beside the shards it covers) holds three files:

* ``vectors-<sha>.usearch``: the HNSW graph with the vectors (usearch's binary format; no pickle);
* ``rows-<sha>.parquet``: row k of the graph → ``shard``, ``file``, ``window``, ``start_s``, ``end_s``,
  ``row_id``;
* ``index.json``: format, the shards' provenance, the shard list (name, bytes, rows), the engine and its
  parameters, and the SHA-256 of the two files above, which :func:`load_index` checks before loading.

``index.json`` is written last (temp name, fsync, rename) and names the content-addressed files, so a run
killed at any point leaves the previous index intact. Building, adding new shards and saving are in
:mod:`embedkit.search.index_build`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from embedkit.files import sha256_file
from embedkit.search import ann
from embedkit.store import StoreError, read_embeddings, shard_paths

FORMAT = "embedkit-search-index"
VERSION = 1
META = "index.json"
ROW_COLUMNS = ["shard", "file", "window", "start_s", "end_s", "row_id"]


@dataclass
class SearchIndex:
    """A loaded index.

    Attributes:
        folder: the index folder.
        dataset: the shard folder it covers.
        meta: the contents of ``index.json``.
        rows: one row per graph key [N] with :data:`ROW_COLUMNS`.
        graph: the usearch graph (N vectors of ``meta["dim"]``).
    """

    folder: Path
    dataset: Path
    meta: dict[str, Any]
    rows: pd.DataFrame
    graph: Any

    @property
    def provenance(self) -> dict[str, Any]:
        """Provenance of the indexed embeddings (as in the shards)."""
        return self.meta["provenance"]

    @property
    def dim(self) -> int:
        """Vector length D."""
        return int(self.meta["dim"])

    def __len__(self) -> int:
        return len(self.rows)


def default_folder(dataset: str | os.PathLike) -> Path:
    """Where the index of a shard dataset lives: ``DATASET/index``."""
    return Path(dataset) / "index"


def find_index(path: str | os.PathLike) -> Path:
    """The index folder for ``path``: an index folder itself, or a dataset folder holding ``index/``."""
    p = Path(path)
    for cand in (p, default_folder(p)):
        if (cand / META).is_file():
            return cand
    if not p.exists():
        raise StoreError(f"no such index folder: {p}")
    raise StoreError(f"no search index in {p}; build one with: embedkit index --embeddings DATASET_FOLDER")


def load_index(path: str | os.PathLike) -> SearchIndex:
    """Load an index (folder of the index, or the dataset folder holding it), checking every file's SHA-256.

    A load that fails while ``index.json`` changed (``embedkit index`` added shards and removed the files the
    old one named) is retried, so it gets the old or the new index whole, never a missing file.

    Raises:
        StoreError: no index, another format, a missing or altered file.
    """
    from embedkit.store.versions import retry_on_change

    folder = find_index(path)
    try:
        return retry_on_change(folder / META, lambda: _load_once(folder), (StoreError, OSError, RuntimeError))
    except OSError as e:
        raise StoreError(f"{folder}: cannot read the index ({e}); embedkit index --rebuild") from None


def _load_once(path: str | os.PathLike) -> SearchIndex:
    """One attempt of :func:`load_index`."""
    import pyarrow.parquet as pq

    from embedkit.schemas import INDEX_ROWS, SchemaError, check_table, index_meta, inside, read_json
    from embedkit.search.graph_check import check_graph

    folder = find_index(path)
    try:
        meta = read_json(folder / META, META)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise StoreError(f"{folder}: not an embedkit search index of version {VERSION}; rebuild it")
        index_meta(meta, str(folder / META))
        where = f"{folder / META}: files.{{}}.name"
        paths = {k: inside(folder, meta["files"][k]["name"], where.format(k)) for k in ("graph", "rows")}
    except SchemaError as e:
        raise StoreError(f"refused: {e}; rebuild it: embedkit index --embeddings DATASET --rebuild") from None
    for key in ("graph", "rows"):
        f = paths[key]
        if not f.is_file():
            raise StoreError(
                f"{folder}: index file {f.name} is missing; rebuild with embedkit index --rebuild"
            )
        if sha256_file(f) != meta["files"][key]["sha256"]:
            raise StoreError(
                f"{f}: SHA-256 differs from index.json (corrupt or altered); "
                f"rebuild with embedkit index --embeddings DATASET --rebuild"
            )
    check_graph(paths["graph"], meta["files"]["graph"]["sha256"], meta["dim"], meta["n"], meta["params"])
    try:
        rows = pq.read_table(paths["rows"]).to_pandas()
        missing = [c for c in ROW_COLUMNS if c not in rows.columns]
        if missing:
            raise SchemaError(f"{paths['rows']}: missing column(s) {missing}")
        check_table(rows, INDEX_ROWS, str(paths["rows"]), line_offset=0)
        graph = ann.load_graph(paths["graph"], meta["dim"], meta["params"])
    except SchemaError as e:
        raise StoreError(f"refused: {e}; rebuild the index (embedkit index --rebuild)") from None
    except FileNotFoundError:  # a file gone meanwhile (a concurrent add): the caller's business
        raise
    except (OSError, ValueError, RuntimeError) as e:  # pyarrow / usearch on bytes that match their hash
        reason = " ".join(str(e).split())[:160] or type(e).__name__
        raise StoreError(f"{folder}: cannot read the index ({reason}); rebuild it (--rebuild)") from None
    if len(graph) != len(rows) or len(rows) != meta["n"]:
        raise StoreError(f"{folder}: graph has {len(graph)} vectors but {len(rows)} rows; rebuild it")
    dataset = (folder / meta["dataset"]).resolve()
    return SearchIndex(folder, dataset, meta, rows, graph)


def unindexed_shards(index: SearchIndex) -> list[str]:
    """Shards of the dataset that the index does not cover yet (run ``embedkit index`` again to add them)."""
    known = {s["name"] for s in index.meta["shards"]}
    return [p.name for p in shard_paths(index.dataset) if p.name not in known]


def shard_vectors(index: SearchIndex, shard: str) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of one indexed shard, read from the shard itself (exact values, not the graph's float16).

    Returns:
        ``(rows int64 [n], X float32 [n, D])``: index row numbers and their vectors.
    """
    keys, X = read_embeddings(index.dataset / shard, expect=index.provenance)
    mine = index.rows[index.rows["shard"] == shard]
    pos = pd.Series(np.arange(len(keys)), index=pd.MultiIndex.from_frame(keys[["file", "window"]]))
    at = pos.reindex(pd.MultiIndex.from_frame(mine[["file", "window"]])).to_numpy()
    if np.isnan(at).any():
        raise StoreError(f"{shard} no longer holds every window the index lists; rebuild the index")
    return mine.index.to_numpy(np.int64), X[at.astype(np.int64)]

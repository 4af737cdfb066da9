"""A search index over one shard dataset: build, add new shards, save atomically, load with hash checks.

An index folder (default ``DATASET/index/``, beside the shards it covers) holds three files:

* ``vectors-<sha>.usearch``: the HNSW graph with the vectors (usearch's binary format; no pickle);
* ``rows-<sha>.parquet``: row k of the graph → ``shard``, ``file``, ``window``, ``start_s``, ``end_s``,
  ``row_id``;
* ``index.json``: format, the shards' provenance, the shard list (name, bytes, rows), the engine and its
  parameters, and the SHA-256 of the two files above, which :func:`load_index` checks before loading.

``index.json`` is written last (temp name, fsync, rename) and names the content-addressed files, so a run
killed at any point leaves the previous index intact. :func:`build_index` on a folder that already has an
index adds only the shards it does not list (no rebuild); a shard whose size changed or that vanished triggers
a full rebuild, and shards of another provenance are refused, as :func:`embedkit.store.read_embeddings` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from embedkit.files import sha256_file
from embedkit.progress import track
from embedkit.search import ann
from embedkit.store import StoreError, check_provenance, read_embeddings, read_meta, shard_paths

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


def _dataset_shards(dataset: Path) -> tuple[list[Path], dict[str, Any]]:
    """Shards of a dataset and their common provenance; mixed provenance is refused."""
    shards = shard_paths(dataset)
    if not shards:
        raise StoreError(
            f"no embedding shards (part-*.parquet) in {dataset}; give the dataset folder, "
            f"e.g. embeddings/birdnet/train_audio"
        )
    prov = read_meta(shards[0])
    for sp in shards[1:]:
        check_provenance(prov, read_meta(sp), what="shards", where=f"{sp.name} vs {shards[0].name}")
    return shards, prov


def _reusable(existing: SearchIndex | None, shards: list[Path], prov: dict) -> SearchIndex | None:
    """The existing index when new shards can be added to it, else None (a full rebuild), saying why."""
    if existing is None:
        return None
    check_provenance(
        existing.provenance, prov, what="shards", where=f"{existing.dataset} vs its index (use --rebuild)"
    )
    sizes = {p.name: p.stat().st_size for p in shards}
    for s in existing.meta["shards"]:
        if sizes.get(s["name"]) != s["bytes"]:
            why = "is gone" if s["name"] not in sizes else "changed size"
            print(f"[index] shard {s['name']} {why}: rebuilding the index", file=sys.stderr)
            return None
    return existing


def build_index(
    embeddings: str | os.PathLike,
    out: str | os.PathLike | None = None,
    rebuild: bool = False,
    threads: int | None = None,
) -> SearchIndex:
    """Build the search index of a shard dataset, or add the shards that are new since the last build.

    Args:
        embeddings: dataset folder holding ``part-*.parquet`` (e.g. ``embeddings/birdnet/train_audio``).
        out: index folder (default: ``EMBEDDINGS/index``).
        rebuild: ignore an existing index and build from scratch.
        threads: threads for adding vectors (default: all cores).

    Returns:
        The saved, loaded index.

    Raises:
        StoreError: no shards, mixed provenance (also against the existing index), unwritable folder.
    """
    dataset = Path(embeddings)
    folder = Path(out) if out else default_folder(dataset)
    shards, prov = _dataset_shards(dataset)
    existing = None
    if not rebuild and (folder / META).is_file():
        existing = _reusable(load_index(folder), shards, prov)
    known = {s["name"] for s in existing.meta["shards"]} if existing else set()
    new = [p for p in shards if p.name not in known]
    if existing is not None and not new:
        print(
            f"[index] {folder}: up to date ({len(existing)} windows, {len(shards)} shards)", file=sys.stderr
        )
        return existing
    t0 = time.monotonic()
    graph = existing.graph if existing else None
    rows = [existing.rows] if existing else []
    seen = set(zip(existing.rows["file"], existing.rows["window"], strict=True)) if existing else set()
    listed = list(existing.meta["shards"]) if existing else []
    n = len(existing) if existing else 0
    for sp in track(new, "index", "shard"):
        keys, X = read_embeddings(sp, expect=prov)
        fresh = np.array([k not in seen for k in zip(keys["file"], keys["window"], strict=True)], bool)
        keys, X = keys[fresh], X[fresh]
        seen.update(zip(keys["file"], keys["window"], strict=True))
        if graph is None:
            graph = ann.new_graph(X.shape[1] if X.ndim == 2 and X.shape[1] else prov["dim"])
        ann.add(graph, n, X, threads)
        n += len(X)
        rows.append(keys.assign(shard=sp.name)[ROW_COLUMNS])
        listed.append({"name": sp.name, "bytes": sp.stat().st_size, "rows": int(len(X))})
    table = pd.concat(rows, ignore_index=True)
    save_index(folder, graph, table, _meta(graph, table, dataset, folder, prov, listed))
    verb = "added" if existing else "indexed"
    print(
        f"[index] {verb} {len(table) - (len(existing) if existing else 0)} windows from {len(new)} "
        f"shards in {time.monotonic() - t0:.1f} s -> {folder} ({len(table)} windows)",
        file=sys.stderr,
    )
    return load_index(folder)


def _meta(graph, table: pd.DataFrame, dataset: Path, folder: Path, prov: dict, shards: list[dict]) -> dict:
    """The contents of ``index.json`` (without ``files``, which :func:`save_index` adds)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "engine": ann.library_version(),
        "metric": "cos",
        "params": ann.PARAMS,
        "dim": int(graph.ndim),
        "n": int(len(table)),
        "dataset": os.path.relpath(dataset.resolve(), folder.resolve()),
        "provenance": prov,
        "shards": shards,
    }


def _tmp(folder: Path, name: str) -> Path:
    return folder / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{name}"


def _publish(tmp: Path, folder: Path, stem: str, suffix: str, trusted: bool = False) -> dict[str, str]:
    """Rename a finished temp file to its content-addressed name; its (name, sha256).

    ``trusted``: a graph this process built, remembered so that loading it needs no check process.
    """
    sha = sha256_file(tmp)
    if trusted:
        from embedkit.search.graph_check import trust

        trust(sha)
    name = f"{stem}-{sha[:16]}{suffix}"
    os.replace(tmp, folder / name)
    return {"name": name, "sha256": sha}


def save_index(folder: Path, graph, rows: pd.DataFrame, meta: dict[str, Any]) -> None:
    """Write graph, rows and ``index.json`` (last) atomically; then remove files of older versions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from embedkit.files import fsync_dir as _fsync_dir
    from embedkit.store.write import _write_error

    tmps: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmps = [_tmp(folder, "vectors.usearch"), _tmp(folder, "rows.parquet"), _tmp(folder, META)]
        ann.save_graph(graph, tmps[0])
        with open(tmps[1], "wb") as f:
            pq.write_table(pa.Table.from_pandas(rows[ROW_COLUMNS], preserve_index=False), f)
            f.flush()
            os.fsync(f.fileno())
        files = {
            "graph": _publish(tmps[0], folder, "vectors", ".usearch", trusted=True),
            "rows": _publish(tmps[1], folder, "rows", ".parquet"),
        }
        with open(tmps[2], "w") as f:
            json.dump({**meta, "files": files}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmps[2], folder / META)
    except OSError as e:
        raise StoreError(_write_error(folder, e)) from e
    finally:
        for t in tmps:
            with contextlib.suppress(OSError):
                t.unlink(missing_ok=True)
    _fsync_dir(folder)
    keep = {files["graph"]["name"], files["rows"]["name"]}
    for old in [*folder.glob("vectors-*.usearch"), *folder.glob("rows-*.parquet")]:
        if old.name not in keep:
            old.unlink(missing_ok=True)


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

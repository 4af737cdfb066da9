"""Build a search index over one shard dataset, add the shards that are new, save it atomically.

The folder's files and ``index.json`` are described in :mod:`embedkit.search.index`, which loads them.
:func:`build_index` on a folder that already has an index adds only the shards it does not list (no rebuild);
a shard whose size changed or that vanished triggers a full rebuild, and shards of another provenance are
refused, as :func:`embedkit.store.read_embeddings` does. :func:`save_index` writes the graph and the rows
under content-addressed names, then ``index.json`` last (temp name, fsync, rename), so a run killed at any
point leaves the previous index intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from embedkit.files import sha256_file
from embedkit.progress import track
from embedkit.search import ann
from embedkit.search.index import FORMAT, META, ROW_COLUMNS, VERSION, SearchIndex, default_folder, load_index
from embedkit.store import StoreError, check_provenance, read_embeddings, read_meta, shard_paths


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

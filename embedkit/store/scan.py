"""Reading at scale: row filters pushed down to Parquet, shard lists, a chunked iterator for streaming heads.

:func:`row_filter` turns ``files=`` (audio files to keep) and ``filters=`` (a pyarrow expression or the DNF
list of ``pyarrow.parquet.read_table(filters=...)``, e.g. ``[("window", "<", 12)]``) into one pyarrow
expression. It is handed to the Parquet reader, which skips row groups whose column statistics exclude it
(shards are written in file order, so a file list touches few row groups) and drops rows while decoding,
not after a whole read.

:func:`iter_embeddings` yields ``(keys, X float32 [n, D])`` chunks of at most ``batch_rows`` rows, one shard
at a time, so a head can stream a dataset bigger than memory. Rows come in shard order (not sorted); each
``(file, window)`` appears once: a window already yielded from an earlier shard (two overlapping ``--part``
runs into one folder) is skipped, which keeps the same copy as :func:`embedkit.store.read_embeddings`. The
only state kept across shards is one bit per window (an integer bit mask per file).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from embedkit.store.provenance import (
    KEY_COLUMNS,
    VARIANT,
    StoreError,
    check_provenance,
    check_same_dataset,
    read_meta,
    shard_paths,
)
from embedkit.store.vectors import gather_float32


def resolve_shards(folder: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Shard paths of a dataset folder, a single shard file, or an explicit list of shard files.

    Raises:
        StoreError: no shards, or a listed shard that does not exist.
    """
    if isinstance(folder, str | os.PathLike):
        p = Path(folder)
        paths = [p] if p.is_file() else shard_paths(p)
        if not paths:
            raise StoreError(f"no embedding shards (part-*.parquet) in {p}; run extract.py first")
        return paths
    paths = [Path(f) for f in folder]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        raise StoreError(f"shard files not found: {', '.join(missing[:3]) or '(empty list)'}")
    return paths


def key_columns(columns: Iterable[str] | None) -> list[str]:
    """Key columns to read: ``file`` and ``window`` always (sorting, de-duplication) plus the asked ones."""
    if columns is None:
        return list(KEY_COLUMNS)
    extra = [c for c in columns if c not in ("file", "window")]
    unknown = sorted(set(extra) - set(KEY_COLUMNS))
    if unknown:
        raise StoreError(f"unknown key columns {unknown}; shards hold {KEY_COLUMNS}")
    return ["file", "window"] + [c for c in KEY_COLUMNS if c in extra]


def row_filter(files: Iterable[str] | None = None, filters: Any = None):
    """One pyarrow expression for ``file in files`` AND ``filters`` (or None when both are None).

    Args:
        files: relative audio paths (the shards' ``file`` column) to keep.
        filters: a ``pyarrow.compute.Expression`` or a DNF list as taken by ``pyarrow.parquet.read_table``.

    Raises:
        StoreError: ``filters`` is neither.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    expr = None
    if files is not None:
        expr = pc.field("file").isin(sorted({str(f) for f in files}))
    if filters is not None:
        if not isinstance(filters, pc.Expression):
            try:
                filters = pq.filters_to_expression(filters)
            except (TypeError, ValueError) as e:
                raise StoreError(f"bad row filter {filters!r}: {e}") from None
        expr = filters if expr is None else expr & filters
    return expr


def clean_only(prov: dict[str, Any], expr=None):
    """``expr`` AND ``variant == 0`` for an augmented dataset (``prov["augment"]`` set), else ``expr``."""
    import pyarrow.compute as pc

    if prov.get("augment") is None:
        return expr
    clean = pc.field(VARIANT) == 0
    return clean if expr is None else expr & clean


def read_table(path: Path, columns: list[str], expr=None):
    """Read ``columns`` of one shard, rows matching ``expr`` only (pushed down to the Parquet reader)."""
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns, filters=expr)
    except Exception as e:
        raise StoreError(f"{path}: cannot read shard ({e})") from None


def iter_embeddings(
    folder: str | os.PathLike | Sequence[str | os.PathLike],
    batch_rows: int = 65536,
    *,
    expect: dict[str, Any] | None = None,
    files: Iterable[str] | None = None,
    filters: Any = None,
    columns: Iterable[str] | None = None,
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Stream a dataset in chunks: ``(keys DataFrame [n], X float32 [n, D])`` with ``n <= batch_rows``.

    Args:
        folder: dataset folder, a shard file, or a list of shard files.
        batch_rows: most rows per chunk (memory: ``batch_rows * D * 4`` bytes plus one shard's column).
        expect: provenance the shards must match; mismatch → :class:`StoreError`.
        files: only these audio files (relative paths); pushed down to Parquet.
        filters: row filter (pyarrow expression or DNF list); pushed down to Parquet.
        columns: key columns to return besides ``file`` and ``window`` (default: all key columns).

    Yields:
        Chunks in shard order; every ``(file, window)`` once (see the module docstring).
    """
    if batch_rows < 1:
        raise StoreError(f"batch_rows must be >= 1, got {batch_rows}")
    paths = resolve_shards(folder)
    prov = read_meta(paths[0])
    if expect is not None:
        check_provenance(expect, prov, what="embeddings", where=str(folder))
    dtype = np.dtype(prov.get("dtype", "float32")).newbyteorder("<")
    kcols = key_columns(columns)
    expr = clean_only(prov, row_filter(files, filters))  # augmented variants are for fits only
    seen: dict[str, int] = {}  # file → bit mask of the windows already yielded
    for sp in paths:
        check_same_dataset(prov, read_meta(sp), where=f"{sp.name} vs {paths[0].name}")
        table = _unseen(read_table(sp, kcols + ["emb"], expr), seen)
        for start in range(0, table.num_rows, batch_rows):
            part = table.slice(start, batch_rows)
            keys = part.select(kcols).to_pandas()
            n = len(keys)
            X = gather_float32(part.column("emb").chunks, dtype, np.arange(n), n)
            yield keys, X


def _unseen(table, seen: dict[str, int]):
    """``table`` without the (file, window) rows marked in ``seen``; marks the rows it keeps."""
    fw = table.select(["file", "window"]).to_pandas()
    if seen and len(fw):
        maybe = np.flatnonzero(fw["file"].isin(seen.keys()).to_numpy())
        if len(maybe):
            drop = np.zeros(len(fw), bool)
            files, windows = fw["file"].to_numpy(), fw["window"].to_numpy()
            drop[maybe] = [bool(seen.get(files[i], 0) >> int(windows[i]) & 1) for i in maybe]
            table, fw = table.filter(~drop), fw[~drop]
    g = fw.groupby("file", sort=False)["window"]
    agg = g.agg(["min", "max", "count"])
    runs = agg["max"] - agg["min"] + 1 == agg["count"]  # windows lo..hi, each once (the usual case)
    for f, lo, hi in zip(agg.index[runs], agg["min"][runs], agg["max"][runs], strict=True):
        seen[f] = seen.get(f, 0) | ((1 << (int(hi) + 1)) - (1 << int(lo)))
    for f in agg.index[~runs]:
        mask = seen.get(f, 0)
        for w in g.get_group(f).to_numpy():
            mask |= 1 << int(w)
        seen[f] = mask
    return table

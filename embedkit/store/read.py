"""Reading shards back: keys + float32 embeddings in one copy, done files, failure tables."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from embedkit.store.provenance import (
    VARIANT,
    StoreError,
    check_provenance,
    check_same_dataset,
    failure_paths,
    read_meta,
    shard_paths,
)
from embedkit.store.scan import clean_only, key_columns, read_table, resolve_shards, row_filter
from embedkit.store.vectors import gather_float32


def read_embeddings(
    folder: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    expect: dict[str, Any] | None = None,
    logits: bool = False,
    files: Iterable[str] | None = None,
    filters: Any = None,
    columns: Iterable[str] | None = None,
    variants: bool = False,
) -> tuple[pd.DataFrame, np.ndarray] | tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Read every shard of a dataset (or the rows a filter selects; see :mod:`embedkit.store.scan`).

    Args:
        folder: dataset folder, a single shard file, or a list of shard files.
        expect: provenance the shards must match (e.g. a saved head's); mismatch → :class:`StoreError`.
        logits: also return the stored ``logits`` column.
        files: only the rows of these audio files (relative paths); pushed down to Parquet.
        filters: row filter, a pyarrow expression or a DNF list (``[("window", "<", 12)]``); pushed down.
        columns: key columns to return besides ``file`` and ``window`` (default: all key columns).
        variants: also the augmented rows of a dataset extracted with ``--augment-background`` (keys get a
            ``variant`` column, 0 = clean; a dataset without variants gives all 0). Default: clean rows only.

    Returns:
        ``(keys, X)`` — keys DataFrame [N] with :data:`KEY_COLUMNS`, X float32 [N, D] — plus logits
        float32 [N, K] when ``logits=True``. Rows are ordered by (file, window[, variant]); duplicate keys
        are dropped.

    Raises:
        StoreError: no shards, unreadable shards, or provenance differing between shards or from ``expect``.
    """
    paths = resolve_shards(folder)
    prov = read_meta(paths[0])
    if expect is not None:
        check_provenance(expect, prov, what="embeddings", where=str(folder))
    augmented = prov.get("augment") is not None
    kcols = key_columns(columns) + ([VARIANT] if variants and augmented else [])
    cols = kcols + ["emb"] + (["logits"] if logits else [])
    expr = row_filter(files, filters) if variants else clean_only(prov, row_filter(files, filters))
    tables = []
    for sp in paths:
        check_same_dataset(prov, read_meta(sp), where=f"{sp.name} vs {paths[0].name}")
        tables.append(read_table(sp, cols, expr))
    keys = pd.concat([t.select(kcols).to_pandas() for t in tables], ignore_index=True)
    by = ["file", "window"] + ([VARIANT] if VARIANT in kcols else [])
    order = np.lexsort(tuple(keys[c].to_numpy() for c in reversed(by)))
    sorted_keys = keys.iloc[order]
    dup = sorted_keys.duplicated(by).to_numpy()
    keys = sorted_keys[~dup].reset_index(drop=True)
    if variants and not augmented:
        keys[VARIANT] = np.zeros(len(keys), np.int16)
    dest = np.full(len(order), -1, np.int64)  # input row → output row (-1: a dropped duplicate)
    dest[order[~dup]] = np.arange(len(keys))
    dtype = np.dtype(prov.get("dtype", "float32")).newbyteorder("<")

    def column(name: str) -> np.ndarray:
        return gather_float32([c for t in tables for c in t.column(name).chunks], dtype, dest, len(keys))

    X = column("emb")
    if logits:
        return keys, X, column("logits")
    return keys, X


def read_provenance(folder: str | os.PathLike) -> dict[str, Any]:
    """Provenance of a dataset (from its first shard)."""
    paths = shard_paths(folder)
    if not paths:
        raise StoreError(f"no embedding shards (part-*.parquet) in {folder}")
    return read_meta(paths[0])


def done_files(folder: str | os.PathLike) -> set[str]:
    """Files that already have embeddings in a dataset folder (read from the ``file`` column only)."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for sp in shard_paths(folder):
        done.update(pq.read_table(sp, columns=["file"]).column("file").unique().to_pylist())
    return done


def read_failures(folder: str | os.PathLike) -> pd.DataFrame:
    """Failure table of a dataset: (file, reason), the latest reason per file, minus files done since."""
    import pyarrow.parquet as pq

    paths = failure_paths(folder)
    if not paths:
        return pd.DataFrame({"file": pd.Series(dtype=str), "reason": pd.Series(dtype=str)})
    df = pd.concat([pq.read_table(p).to_pandas() for p in paths], ignore_index=True)
    df = df.drop_duplicates("file", keep="last")
    done = done_files(folder)
    return df[~df["file"].isin(done)].reset_index(drop=True)

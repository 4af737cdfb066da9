"""Writing shards: atomic files (temp name, fsync, rename), stale-temp cleanup, :class:`ShardWriter`."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from embedkit.files import fsync_dir as _fsync_dir
from embedkit.store.atomic import host as _host
from embedkit.store.atomic import writer_gone
from embedkit.store.provenance import (
    LAYOUT,
    META_KEY,
    VARIANT,
    StoreError,
    check_augment,
    check_provenance,
    read_meta,
    shard_paths,
)


def atomic_write_table(table, path: Path, **kwargs) -> Path:
    """Write a pyarrow table to ``path`` atomically: temp file in the same folder, fsync, rename."""
    import pyarrow.parquet as pq

    tmp = path.with_name(f".tmp-{os.getpid()}@{_host()}-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f, **kwargs)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):  # disk full, read-only or vanished folder: one line, not a traceback
            raise StoreError(_write_error(path.parent, e)) from e
        raise
    _fsync_dir(path.parent)
    return path


def _write_error(folder: Path, e: OSError) -> str:
    reason = e.strerror or " ".join(str(e).split()) or type(e).__name__
    fix = "free some space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "make it writable"
    return (
        f"cannot write to {folder}: {reason}; {fix} or choose another output folder "
        f"(files already written are complete, and a rerun continues where this one stopped)"
    )


#: a temp file of another machine (a folder shared by ``--part i/N`` runs) is removed only past this age: its
#: pid says nothing here
STALE_TEMP_S = 3600.0


def clean_stale_temps(
    folder: str | os.PathLike, min_age_s: float = STALE_TEMP_S, pattern: str = ".tmp-*"
) -> int:
    """Remove ``.tmp-<pid>@<host>-*`` files left by writers that are gone.

    A temp file of this machine goes as soon as its pid is not running; one of another machine only when it
    is older than ``min_age_s``. Temp files are never read, so one left behind costs only disk space.
    ``pattern`` narrows the glob in a folder that is not embedkit's own (a submission's folder).

    Returns:
        The number of files removed.
    """
    n = 0
    for p in Path(folder).glob(pattern):
        tag = p.name.split("-")[1] if p.name.count("-") >= 2 else ""
        try:
            gone = writer_gone(tag, p.stat().st_mtime, min_age_s)
        except FileNotFoundError:
            continue
        if gone:
            p.unlink(missing_ok=True)
            n += 1
    return n


class ShardWriter:
    """Writes embedding shards and failure tables into one dataset folder.

    Args:
        folder: dataset folder (created if missing).
        provenance: what made the embeddings; refused if it disagrees with shards already there.
        dtype: ``"float16"`` or ``"float32"`` storage of ``emb`` (and ``logits``).
        tag: name component that keeps parallel writers (``--part i/N``) apart.
        row_group_size: rows per Parquet row group.

    Raises:
        StoreError: the folder cannot be written (read-only, no permission), or its shards have another
            provenance. A write that fails later (disk full) also raises :class:`StoreError`.
    """

    def __init__(
        self,
        folder,
        provenance: dict[str, Any],
        dtype: str = "float16",
        tag: str = "0",
        row_group_size: int = 8192,
    ):
        if dtype not in ("float16", "float32"):
            raise StoreError(f"dtype must be float16 or float32, got {dtype!r}")
        self.folder = Path(folder)
        probe = self.folder / f".tmp-{os.getpid()}-probe"
        try:  # a read-only or unwritable folder fails here, before any work, not at the first shard
            self.folder.mkdir(parents=True, exist_ok=True)
            probe.touch()
            probe.unlink()
        except OSError as e:
            raise StoreError(_write_error(self.folder, e)) from e
        self.provenance = {**provenance, "dtype": dtype}
        self.dtype = np.dtype(dtype)
        self.tag = tag
        self.row_group_size = row_group_size
        existing = shard_paths(self.folder)
        if existing:
            check_provenance(
                read_meta(existing[0]),
                self.provenance,
                what="this run's embeddings",
                where=str(self.folder) + " (use another --out/--name, or delete the folder)",
            )
            check_augment(read_meta(existing[0]), self.provenance, where=str(self.folder))
        clean_stale_temps(self.folder)

    def _name(self, prefix: str) -> Path:
        # time first: names sort in writing order (the latest failure reason of a file wins)
        return self.folder / f"{prefix}-{time.time_ns():x}-{self.tag}-{uuid.uuid4().hex[:8]}.parquet"

    def write(self, keys: pd.DataFrame, emb: np.ndarray, logits: np.ndarray | None = None) -> Path:
        """Write one shard.

        Args:
            keys: DataFrame with the :data:`KEY_COLUMNS`, one row per window.
            emb: float array [N, D].
            logits: optional float array [N, K] (e.g. BirdNET's own class logits).

        Returns:
            Path of the finished shard.
        """
        import pyarrow as pa

        if len(keys) != len(emb):
            raise StoreError(f"{len(keys)} key rows but {len(emb)} embeddings")
        cols = {
            "file": pa.array(keys["file"].astype(str), pa.string()),
            "window": pa.array(keys["window"].to_numpy(np.int32)),
            "start_s": pa.array(keys["start_s"].to_numpy(np.float64)),
            "end_s": pa.array(keys["end_s"].to_numpy(np.float64)),
            "row_id": pa.array(keys["row_id"].astype(str), pa.string()),
            "emb": _fixed_binary(emb, self.dtype),
        }
        if logits is not None:
            cols["logits"] = _fixed_binary(logits, self.dtype)
        if VARIANT in keys.columns:  # augmented datasets: 0 = clean window, 1..K its variants
            cols[VARIANT] = pa.array(keys[VARIANT].to_numpy(np.int16))
        meta = {**self.provenance, "layout": LAYOUT, "embedkit_version": _version()}
        table = pa.table(cols).replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
        return atomic_write_table(
            table,
            self._name("part"),
            row_group_size=self.row_group_size,
            use_dictionary=["file", "row_id"],
            compression={
                "file": "zstd",
                "row_id": "zstd",
                "window": "zstd",
                "start_s": "zstd",
                "end_s": "zstd",
                "emb": "none",
                **({"logits": "none"} if logits is not None else {}),
            },
        )

    def write_failures(self, failures: list[tuple[str, str]]) -> Path | None:
        """Record (file, reason) pairs in a failure table; nothing is written for an empty list."""
        import pyarrow as pa

        if not failures:
            return None
        files, reasons = zip(*failures, strict=True)
        table = pa.table({"file": pa.array(files, pa.string()), "reason": pa.array(reasons, pa.string())})
        return atomic_write_table(table, self._name("failures"))


def _fixed_binary(x: np.ndarray, dtype: np.dtype):
    """Float array [N, D] → fixed-size binary array: one little-endian vector of D numbers per row."""
    import pyarrow as pa

    if x.ndim != 2:
        raise StoreError(f"expected a 2-D array, got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.dtype(dtype).newbyteorder("<"))
    width = x.shape[1] * x.itemsize
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(x), [None, pa.py_buffer(x)])


def _version() -> str:
    from embedkit import __version__

    return __version__

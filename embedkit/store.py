"""Store room: Parquet shards of window embeddings with provenance metadata.

A dataset is a folder of shards ``part-*.parquet`` (one row per window: ``file``, ``window``, ``start_s``,
``end_s``, ``row_id``, ``emb``, optionally ``logits``) and failure tables ``failures-*.parquet`` (``file``,
``reason``). ``emb`` (and ``logits``) is a fixed-size binary column: each value is one window's vector as
``D`` little-endian float16 (default) or float32 numbers, i.e. ``np.frombuffer(value, "<f2")``. A Parquet
FIXED_LEN_BYTE_ARRAY has no repetition/definition levels, so reading 100k x 1024 takes about as long as
``np.load`` (a LIST column decoded ~8x slower); shards of embedkit <= 0.1.0 with FixedSizeList columns are
still read. Every shard carries the provenance of its embeddings in the
Parquet key-value metadata under ``embedkit``: backbone identity (name, config, weights id, sample rate,
dim), window/hop, dtype and the embedkit version. Shards appear atomically (temp name, fsync, rename), so a
reader never sees a partial shard and a killed writer leaves only an ignorable ``.tmp-*`` file.

A file's windows always go into one shard, so "file present in a shard" means "file done": that is what
resume relies on.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

META_KEY = b"embedkit"
KEY_COLUMNS = ["file", "window", "start_s", "end_s", "row_id"]
#: provenance fields that are informational only (never a reason to refuse a mix)
INFO_FIELDS = frozenset({"embedkit_version", "created", "split", "source", "precision", "layout"})
#: how ``emb``/``logits`` are stored (recorded in every shard; informational: the reader handles both)
LAYOUT = "fixed-binary-le"


class StoreError(RuntimeError):
    """Shards are missing, unreadable or of mixed provenance; the message says which."""


def shard_paths(folder: str | os.PathLike) -> list[Path]:
    """Finished embedding shards of a dataset folder, sorted by name."""
    return sorted(Path(folder).glob("part-*.parquet"))


def failure_paths(folder: str | os.PathLike) -> list[Path]:
    """Failure tables of a dataset folder, sorted by name."""
    return sorted(Path(folder).glob("failures-*.parquet"))


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The embedkit metadata (provenance) of one shard."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as e:
        raise StoreError(f"{path}: not a readable parquet shard ({e})") from None
    if META_KEY not in meta:
        raise StoreError(f"{path}: no embedkit provenance metadata; not an embedkit shard")
    return json.loads(meta[META_KEY])


def provenance_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Fields (other than informational ones) whose values differ between two provenance dicts."""
    keys = sorted((set(a) | set(b)) - INFO_FIELDS)
    return [k for k in keys if _norm(a.get(k)) != _norm(b.get(k))]


def _norm(v: Any) -> Any:
    return json.loads(json.dumps(v))  # tuples → lists, so saved and live values compare equal


def check_provenance(
    expected: dict[str, Any], found: dict[str, Any], *, what: str = "embeddings", where: str = ""
) -> None:
    """Raise :class:`StoreError` naming the first differing field when two provenances disagree."""
    diff = provenance_diff(expected, found)
    if diff:
        k = diff[0]
        raise StoreError(
            f"{what}{' in ' + where if where else ''} do not match: {k}={_norm(found.get(k))!r} "
            f"but {_norm(expected.get(k))!r} was expected"
            + (f" (also differ: {', '.join(diff[1:])})" if len(diff) > 1 else "")
        )


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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


def _host() -> str:
    return socket.gethostname().replace("-", "_").replace("@", "_") or "local"


def clean_stale_temps(folder: str | os.PathLike, min_age_s: float = STALE_TEMP_S) -> int:
    """Remove ``.tmp-<pid>@<host>-*`` files left by writers that are gone.

    A temp file of this machine goes as soon as its pid is not running; one of another machine only when it
    is older than ``min_age_s``. Temp files are never read, so one left behind costs only disk space.

    Returns:
        The number of files removed.
    """
    n = 0
    now = time.time()
    for p in Path(folder).glob(".tmp-*"):
        pid_s, _, host = p.name.split("-")[1].partition("@") if p.name.count("-") >= 2 else ("", "", "")
        try:
            if host and host != _host():
                if now - p.stat().st_mtime < min_age_s:
                    continue
            else:
                os.kill(int(pid_s), 0)
                continue  # writer still alive (another part of a parallel run)
        except (ValueError, ProcessLookupError):
            pass
        except (PermissionError, FileNotFoundError):
            continue
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
            "emb": _fixed_list(emb, self.dtype),
        }
        if logits is not None:
            cols["logits"] = _fixed_list(logits, self.dtype)
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


def _fixed_list(x: np.ndarray, dtype: np.dtype):
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


def _vectors(arr, dtype: np.dtype) -> np.ndarray:
    """One chunk of an ``emb``/``logits`` column → a [n, D] array view (fixed binary) or copy (old LIST)."""
    import pyarrow as pa

    if pa.types.is_fixed_size_binary(arr.type):
        width = arr.type.byte_width
        d = width // dtype.itemsize
        v = np.frombuffer(arr.buffers()[1], dtype, count=len(arr) * d, offset=arr.offset * width)
        return v.reshape(-1, d)
    if pa.types.is_fixed_size_list(arr.type):  # shards written by embedkit <= 0.1.0
        return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, arr.type.list_size)
    raise StoreError(f"unexpected embedding column type {arr.type}")


def _gather_float32(chunks: list[tuple[object, np.dtype]], dest: np.ndarray, n_out: int) -> np.ndarray:
    """Cast stored chunks to one float32 [n_out, D] array, row i of the input going to row ``dest[i]``.

    Rows with ``dest < 0`` are dropped. float16 is cast by torch (threaded, ~10x numpy's float16 → float32
    cast) straight into the output, so the embeddings are copied once.
    """
    import warnings

    import torch

    vecs = [_vectors(arr, dtype) for arr, dtype in chunks]
    out = np.empty((n_out, vecs[0].shape[1] if vecs else 0), np.float32)
    t_out = torch.from_numpy(out)
    r = 0
    for v in vecs:
        d = dest[r : r + len(v)]
        r += len(v)
        if not len(v):
            continue
        with warnings.catch_warnings():  # arrow buffers are read-only; torch only reads them here
            warnings.simplefilter("ignore", UserWarning)
            src = torch.from_numpy(v)
        lo = int(d[0])
        if lo >= 0 and d[-1] - lo == len(d) - 1 and (np.diff(d) == 1).all():
            t_out[lo : lo + len(d)].copy_(src)  # a run of consecutive rows: one threaded cast-copy
        else:
            keep = torch.from_numpy(d >= 0)
            t_out.index_copy_(0, torch.from_numpy(d)[keep], src[keep].float())
    return out


def read_embeddings(
    folder: str | os.PathLike, *, expect: dict[str, Any] | None = None, logits: bool = False
) -> tuple[pd.DataFrame, np.ndarray] | tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Read every shard of a dataset.

    Args:
        folder: dataset folder (or a single shard file).
        expect: provenance the shards must match (e.g. a saved head's); mismatch → :class:`StoreError`.
        logits: also return the stored ``logits`` column.

    Returns:
        ``(keys, X)`` — keys DataFrame [N] with :data:`KEY_COLUMNS`, X float32 [N, D] — plus logits
        float32 [N, K] when ``logits=True``. Rows are ordered by (file, window); duplicate keys are dropped.

    Raises:
        StoreError: no shards, unreadable shards, or provenance differing between shards or from ``expect``.
    """
    import pyarrow.parquet as pq

    p = Path(folder)
    paths = [p] if p.is_file() else shard_paths(p)
    if not paths:
        raise StoreError(f"no embedding shards (part-*.parquet) in {p}; run extract.py first")
    prov = read_meta(paths[0])
    if expect is not None:
        check_provenance(expect, prov, what="embeddings", where=str(p))
    cols = KEY_COLUMNS + ["emb"] + (["logits"] if logits else [])
    tables = []
    for sp in paths:
        check_provenance(prov, read_meta(sp), what="shards", where=f"{sp.name} vs {paths[0].name}")
        try:
            tables.append(pq.read_table(sp, columns=cols))
        except Exception as e:
            raise StoreError(f"{sp}: cannot read shard ({e})") from None
    keys = pd.concat([t.select(KEY_COLUMNS).to_pandas() for t in tables], ignore_index=True)
    order = np.lexsort((keys["window"].to_numpy(), keys["file"].to_numpy()))
    sorted_keys = keys.iloc[order]
    dup = sorted_keys.duplicated(["file", "window"]).to_numpy()
    keys = sorted_keys[~dup].reset_index(drop=True)
    dest = np.full(len(order), -1, np.int64)  # input row → output row (-1: a dropped duplicate)
    dest[order[~dup]] = np.arange(len(keys))
    dtype = np.dtype(prov.get("dtype", "float32")).newbyteorder("<")

    def column(name: str) -> np.ndarray:
        return _gather_float32([(c, dtype) for t in tables for c in t.column(name).chunks], dest, len(keys))

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

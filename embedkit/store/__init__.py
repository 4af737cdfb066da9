"""Store room: Parquet shards of window embeddings with provenance metadata.

A dataset is a folder of shards ``part-*.parquet`` (one row per window: ``file``, ``window``, ``start_s``,
``end_s``, ``row_id``, ``emb``, optionally ``logits``) and failure tables ``failures-*.parquet`` (``file``,
``reason``). ``emb`` (and ``logits``) is a fixed-size binary column: each value is one window's vector as
``D`` little-endian float16 (default) or float32 numbers, i.e. ``np.frombuffer(value, "<f2")``. A Parquet
FIXED_LEN_BYTE_ARRAY has no repetition/definition levels: reading 100k x 1024 float16 windows back to float32
takes ~3x ``np.load`` of the same array (~20x with the FixedSizeList, i.e. Parquet LIST, column of embedkit
<= 0.1.0, whose shards are still read). Every shard carries the provenance of its embeddings in the Parquet
key-value metadata under ``embedkit``: backbone identity (name, config, weights id, sample rate, dim),
window/hop, dtype, layout and the embedkit version. Shards appear atomically (temp name, fsync, rename), so a
reader never sees a partial shard and a killed writer leaves only an ignorable ``.tmp-*`` file.

A file's windows always go into one shard, so "file present in a shard" means "file done": that is what
resume relies on.
"""

from embedkit.store.provenance import (
    INFO_FIELDS,
    KEY_COLUMNS,
    LAYOUT,
    META_KEY,
    StoreError,
    check_provenance,
    failure_paths,
    provenance_diff,
    read_meta,
    shard_paths,
)
from embedkit.store.read import done_files, read_embeddings, read_failures, read_provenance
from embedkit.store.scan import iter_embeddings, row_filter
from embedkit.store.write import STALE_TEMP_S, ShardWriter, atomic_write_table, clean_stale_temps

__all__ = [
    "INFO_FIELDS",
    "KEY_COLUMNS",
    "LAYOUT",
    "META_KEY",
    "STALE_TEMP_S",
    "ShardWriter",
    "StoreError",
    "atomic_write_table",
    "check_provenance",
    "clean_stale_temps",
    "done_files",
    "failure_paths",
    "iter_embeddings",
    "provenance_diff",
    "read_embeddings",
    "read_failures",
    "read_meta",
    "read_provenance",
    "row_filter",
    "shard_paths",
]

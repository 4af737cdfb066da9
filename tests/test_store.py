import os
import sys
import time

import numpy as np
import pandas as pd
import pytest

from embedkit.store import (
    ShardWriter,
    StoreError,
    clean_stale_temps,
    done_files,
    read_embeddings,
    read_failures,
    read_provenance,
    shard_paths,
)

PROV = {"backbone": "toy", "sample_rate": 16000, "dim": 6, "weights": "w1", "window_s": 5.0, "hop_s": 5.0}


def keys_for(files_windows):
    rows = [
        (f, k, 5.0 * k, 5.0 * k + 5, f"{f.split('.')[0]}_{5 * k + 5}")
        for f, n in files_windows
        for k in range(n)
    ]
    return pd.DataFrame(rows, columns=["file", "window", "start_s", "end_s", "row_id"])


def test_round_trip_float32_exact_and_float16_close(tmp_path):
    rng = np.random.default_rng(0)
    keys = keys_for([("a.ogg", 3), ("b.ogg", 2)])
    X = rng.standard_normal((5, 6)).astype(np.float32)
    for dtype, tol in [("float32", 0), ("float16", 2e-3)]:
        w = ShardWriter(tmp_path / dtype, PROV, dtype=dtype)
        w.write(keys, X)
        k2, X2 = read_embeddings(tmp_path / dtype)
        assert X2.dtype == np.float32 and X2.shape == (5, 6)
        np.testing.assert_allclose(X2, X, atol=tol, rtol=tol)
        assert k2[["file", "window"]].values.tolist() == keys[["file", "window"]].values.tolist()
        assert read_provenance(tmp_path / dtype)["dtype"] == dtype


def test_rows_sorted_and_duplicates_dropped_across_shards(tmp_path):
    w = ShardWriter(tmp_path, PROV)
    X = np.arange(30, dtype=np.float32).reshape(5, 6)
    w.write(keys_for([("b.ogg", 2)]), X[:2])
    w.write(keys_for([("a.ogg", 3)]), X[2:])
    w.write(keys_for([("b.ogg", 1)]), X[:1] + 100)  # a duplicate key must not appear twice
    k, Y = read_embeddings(tmp_path)
    assert k["file"].tolist() == ["a.ogg"] * 3 + ["b.ogg"] * 2
    assert not k.duplicated(["file", "window"]).any()
    assert done_files(tmp_path) == {"a.ogg", "b.ogg"}
    # each row keeps its own vector; of a duplicated key the first written wins
    np.testing.assert_array_equal(Y, np.concatenate([X[2:], X[:2]]))


@pytest.mark.parametrize("torch_present", [True, False])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_unsorted_shard_rows_land_on_their_keys(tmp_path, dtype, torch_present, monkeypatch):
    if not torch_present:  # the reader falls back to numpy's cast
        monkeypatch.setitem(sys.modules, "torch", None)
    rng = np.random.default_rng(1)
    keys = keys_for([("c.ogg", 4), ("a.ogg", 3), ("b.ogg", 5)])
    perm = rng.permutation(len(keys))  # rows of a shard in any order (decoder threads finish out of order)
    X = rng.standard_normal((len(keys), 6)).astype(np.float16).astype(np.float32)  # exact in float16
    w = ShardWriter(tmp_path, PROV, dtype=dtype)
    w.write(keys.iloc[perm[:7]], X[perm[:7]])
    w.write(keys.iloc[perm[7:]], X[perm[7:]])
    w.write(keys.iloc[perm[:2]], X[perm[:2]] + 50)  # duplicates, dropped
    k, Y = read_embeddings(tmp_path)
    want = keys.assign(i=np.arange(len(keys))).sort_values(["file", "window"])
    assert k[["file", "window"]].values.tolist() == want[["file", "window"]].values.tolist()
    np.testing.assert_array_equal(Y, X[want["i"].to_numpy()])


def test_emb_is_fixed_binary_little_endian_and_old_list_shards_still_read(tmp_path):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    X = np.arange(12, dtype=np.float32).reshape(2, 6)
    ShardWriter(tmp_path, PROV).write(keys_for([("b.ogg", 2)]), X)
    t = pq.read_table(shard_paths(tmp_path)[0])
    assert t.schema.field("emb").type == pa.binary(12)  # 6 float16 numbers
    np.testing.assert_array_equal(np.frombuffer(t.column("emb")[1].as_py(), "<f2"), X[1])
    # a shard as embedkit 0.1.0 wrote it: FixedSizeList<float16>, no "layout" in the metadata
    meta = {**PROV, "dtype": "float16", "embedkit_version": "0.1.0"}
    k_old = keys_for([("a.ogg", 2)])
    old = pa.table({
        **{c: pa.array(k_old[c]) for c in k_old.columns},
        "emb": pa.FixedSizeListArray.from_arrays(pa.array((X + 1).astype(np.float16).ravel()), 6),
    }).replace_schema_metadata({b"embedkit": json.dumps(meta).encode()})
    pq.write_table(old, tmp_path / "part-0-old.parquet")
    k, Y = read_embeddings(tmp_path)
    assert k["file"].tolist() == ["a.ogg", "a.ogg", "b.ogg", "b.ogg"]
    np.testing.assert_array_equal(Y, np.concatenate([X + 1, X]))


def test_logits_column(tmp_path):
    w = ShardWriter(tmp_path, PROV)
    w.write(keys_for([("a.ogg", 2)]), np.ones((2, 6)), logits=np.full((2, 4), 3.0))
    _, X, L = read_embeddings(tmp_path, logits=True)
    assert L.shape == (2, 4) and np.all(L == 3.0)


def test_writer_refuses_other_provenance(tmp_path):
    ShardWriter(tmp_path, PROV).write(keys_for([("a.ogg", 1)]), np.zeros((1, 6)))
    with pytest.raises(StoreError, match="weights"):
        ShardWriter(tmp_path, {**PROV, "weights": "w2"})
    with pytest.raises(StoreError, match="dtype"):
        ShardWriter(tmp_path, PROV, dtype="float32")
    # informational fields never block
    ShardWriter(tmp_path, {**PROV, "created": "another day", "source": "/elsewhere"})


def test_reader_refuses_mixed_shards_and_checks_expectation(tmp_path):
    ShardWriter(tmp_path / "a", PROV).write(keys_for([("a.ogg", 1)]), np.zeros((1, 6)))
    ShardWriter(tmp_path / "b", {**PROV, "hop_s": 2.5}).write(keys_for([("b.ogg", 1)]), np.zeros((1, 6)))
    (tmp_path / "b" / shard_paths(tmp_path / "b")[0].name).rename(tmp_path / "a" / "part-zz.parquet")
    with pytest.raises(StoreError, match="hop_s"):
        read_embeddings(tmp_path / "a")
    ShardWriter(tmp_path / "c", PROV).write(keys_for([("c.ogg", 1)]), np.zeros((1, 6)))
    with pytest.raises(StoreError, match="dim"):
        read_embeddings(tmp_path / "c", expect={**PROV, "dim": 7, "dtype": "float16"})


def test_no_shards_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no embedding shards"):
        read_embeddings(tmp_path)


def test_failures_latest_reason_and_cleared_by_success(tmp_path):
    w = ShardWriter(tmp_path, PROV)
    w.write_failures([("a.ogg", "empty file"), ("b.ogg", "cannot decode")])
    w.write_failures([("a.ogg", "still empty")])
    f = read_failures(tmp_path).set_index("file")["reason"].to_dict()
    assert f == {"a.ogg": "still empty", "b.ogg": "cannot decode"}
    w.write(keys_for([("b.ogg", 1)]), np.zeros((1, 6)))  # fixed and embedded since
    assert read_failures(tmp_path)["file"].tolist() == ["a.ogg"]
    assert w.write_failures([]) is None


def test_stale_temp_files_are_cleaned_and_ignored(tmp_path):
    w = ShardWriter(tmp_path, PROV)
    w.write(keys_for([("a.ogg", 1)]), np.zeros((1, 6)))
    stale = tmp_path / ".tmp-999999999-abcd-part-x.parquet"
    stale.write_bytes(b"half a shard")
    k, _ = read_embeddings(tmp_path)  # the reader ignores temp files
    assert len(k) == 1
    assert clean_stale_temps(tmp_path) == 1 and not stale.exists()  # dead pid on this machine
    alive = tmp_path / f".tmp-{os.getpid()}-abcd-part-y.parquet"  # our own pid: a live writer
    alive.write_bytes(b"x")
    assert clean_stale_temps(tmp_path) == 0 and alive.exists()
    alive.unlink()
    # another machine's writer (shared folder, --part): its pid means nothing here; removed only when old
    alive = tmp_path / ".tmp-999999999@other_host-abcd-part-z.parquet"
    alive.write_bytes(b"x")
    assert clean_stale_temps(tmp_path) == 0 and alive.exists()
    old = time.time() - 2 * 3600
    os.utime(alive, (old, old))
    assert clean_stale_temps(tmp_path) == 1 and not alive.exists()


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    w = ShardWriter(tmp_path, PROV)

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(StoreError, match="No space"):
        w.write(keys_for([("a.ogg", 1)]), np.zeros((1, 6)))
    assert list(tmp_path.iterdir()) == []


def test_zero_rows_round_trip(tmp_path):
    ShardWriter(tmp_path, PROV).write(keys_for([]), np.zeros((0, 6), np.float32))
    k, X = read_embeddings(tmp_path)
    assert len(k) == 0 and X.shape == (0, 6)


def test_shards_with_vectors_of_another_length_are_refused(tmp_path):
    import pyarrow.parquet as pq

    w = ShardWriter(tmp_path, PROV)
    w.write(keys_for([("a.ogg", 1)]), np.ones((1, 6), np.float32))
    t = pq.read_table(shard_paths(tmp_path)[0])  # same provenance, but 4-number vectors
    forged = ShardWriter(tmp_path / "x", PROV).write(keys_for([("b.ogg", 1)]), np.ones((1, 4), np.float32))
    forged_table = pq.read_table(forged).replace_schema_metadata(t.schema.metadata)
    pq.write_table(forged_table, tmp_path / "part-z.parquet")
    with pytest.raises(StoreError, match="different lengths"):
        read_embeddings(tmp_path)

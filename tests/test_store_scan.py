"""Reading at scale: filters pushed down to Parquet, shard lists, key-column subsets, the chunked iterator."""

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest

from embedkit.store import ShardWriter, StoreError, iter_embeddings, read_embeddings, shard_paths

PROV = {"backbone": "toy", "sample_rate": 16000, "dim": 8, "weights": "w1", "window_s": 5.0, "hop_s": 5.0}


def keys_for(files_windows):
    rows = [(f, k, 5.0 * k, 5.0 * k + 5, f"{f[:-4]}_{5 * k + 5}") for f, n in files_windows for k in range(n)]
    return pd.DataFrame(rows, columns=["file", "window", "start_s", "end_s", "row_id"])


@pytest.fixture
def dataset(tmp_path):
    """Four shards of 40 files (1-9 windows each), row groups of 16 rows, one file again in a 5th shard."""
    rng = np.random.default_rng(1)
    w = ShardWriter(tmp_path, PROV, dtype="float16", row_group_size=16)
    files = [(f"sp{i // 8}/f{i:03d}.ogg", int(rng.integers(1, 10))) for i in range(40)]
    for s in range(0, 40, 10):
        keys = keys_for(files[s : s + 10])
        w.write(keys, rng.standard_normal((len(keys), 8)).astype(np.float32))
    dup = keys_for([files[3]])
    w.write(dup, np.full((len(dup), 8), 99, np.float32))  # a rerun's copy: the first written wins
    split = keys_for([(files[7][0], files[7][1] + 3)]).iloc[[0, -3, -1]]  # one old window, two new ones
    w.write(split, np.full((3, 8), 7, np.float32))
    return tmp_path, [f for f, _ in files]


def stream(folder, batch_rows, **kw):
    chunks = list(iter_embeddings(folder, batch_rows, **kw))
    assert all(len(k) == len(x) <= batch_rows and x.dtype == np.float32 for k, x in chunks)
    keys = pd.concat([k for k, _ in chunks], ignore_index=True)
    X = np.concatenate([x for _, x in chunks])
    order = np.lexsort((keys["window"].to_numpy(), keys["file"].to_numpy()))
    return keys.iloc[order].reset_index(drop=True), X[order]


@pytest.mark.parametrize("batch_rows", [1, 7, 64, 10_000])
def test_stream_returns_the_rows_of_the_whole_read(dataset, batch_rows):
    folder, _ = dataset
    keys, X = read_embeddings(folder)
    skeys, sX = stream(folder, batch_rows)
    pd.testing.assert_frame_equal(skeys, keys)
    np.testing.assert_array_equal(sX, X)
    assert not (X == 99).all(axis=1).any()  # the duplicated file's later copy is dropped by both
    assert (X == 7).all(axis=1).sum() == 2  # new windows of a file split over shards are kept


def test_filters_equal_post_filtering(dataset):
    folder, files = dataset
    keys, X = read_embeddings(folder)
    some = files[5:25:3]
    cases = [
        ({"files": some}, keys["file"].isin(some)),
        ({"filters": [("window", "<", 3)]}, keys["window"] < 3),
        ({"filters": pc.field("end_s") > 20, "files": some}, keys["file"].isin(some) & (keys["end_s"] > 20)),
    ]
    for kw, mask in cases:
        fk, fX = read_embeddings(folder, **kw)
        assert 0 < len(fk) < len(keys)
        pd.testing.assert_frame_equal(fk, keys[mask.to_numpy()].reset_index(drop=True))
        np.testing.assert_array_equal(fX, X[mask.to_numpy()])
        sk, sX = stream(folder, 5, **kw)
        pd.testing.assert_frame_equal(sk, fk)
        np.testing.assert_array_equal(sX, fX)


def test_filter_is_pushed_down_to_the_parquet_reader(dataset, monkeypatch):
    import pyarrow.parquet as pq

    folder, files = dataset
    seen = []
    real = pq.read_table

    def spy(*args, **kw):
        seen.append(kw.get("filters"))
        return real(*args, **kw)

    monkeypatch.setattr(pq, "read_table", spy)
    read_embeddings(folder, files=files[:2])
    assert seen and all(isinstance(f, pc.Expression) and "is_in" in str(f) for f in seen)
    # row groups the statistics exclude are skipped: a file list touches few of them
    import pyarrow.dataset as ds

    frags = [fr for sp in shard_paths(folder) for fr in ds.dataset(sp).get_fragments()]
    groups = [g for fr in frags for g in fr.split_by_row_group(pc.field("file").isin(files[:2]))]
    total = sum(fr.metadata.num_row_groups for fr in frags)
    assert 0 < len(groups) < total / 2


def test_key_column_subset_and_shard_list(dataset):
    folder, _ = dataset
    keys, X = read_embeddings(folder)
    k2, X2 = read_embeddings(shard_paths(folder)[1:3], columns=["end_s"])
    assert list(k2.columns) == ["file", "window", "end_s"]
    mask = keys["file"].isin(set(k2["file"])).to_numpy()
    assert 0 < mask.sum() < len(keys)
    pd.testing.assert_frame_equal(k2, keys.loc[mask, ["file", "window", "end_s"]].reset_index(drop=True))
    np.testing.assert_array_equal(X2, X[mask])
    with pytest.raises(StoreError, match="unknown key columns"):
        read_embeddings(folder, columns=["speed"])
    with pytest.raises(StoreError, match="not found"):
        read_embeddings([folder / "part-nope.parquet"])
    with pytest.raises(StoreError, match="bad row filter"):
        read_embeddings(folder, filters="window < 3")
    with pytest.raises(StoreError, match="batch_rows"):
        next(iter_embeddings(folder, 0))


def test_logits_follow_the_filter(tmp_path):
    w = ShardWriter(tmp_path, PROV)
    keys = keys_for([("a.ogg", 3), ("b.ogg", 2)])
    X = np.arange(40, dtype=np.float32).reshape(5, 8)
    w.write(keys, X, logits=X[:, :3] * 2)
    k, X2, L = read_embeddings(tmp_path, logits=True, files=["b.ogg"])
    assert k["file"].tolist() == ["b.ogg", "b.ogg"]
    np.testing.assert_array_equal(X2, X[3:])
    np.testing.assert_array_equal(L, X[3:, :3] * 2)


def test_read_and_scan_do_not_import_each_other():
    """``store/read.py`` imports ``store/scan.py``; scan never imports read back (no circle in the room)."""
    import ast
    from pathlib import Path

    import embedkit.store.scan as scan

    tree = ast.parse(Path(scan.__file__).read_text())
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "embedkit.store.read" not in names and "embedkit.store.vectors" in names

"""``extract --engine ray`` on a local 2-CPU Ray: rows as local, failures named, no copies on retry."""

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_audio
from test_extract import cfg_for

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'embedkit[ray]')")

import ray_backbones  # noqa: E402

from embedkit.extract import run_extract  # noqa: E402
from embedkit.extract.ray import run_extract_ray  # noqa: E402
from embedkit.store import read_embeddings, read_failures, shard_paths  # noqa: E402

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def local_ray():
    path = os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def raw_keys(folder):
    import pyarrow.parquet as pq

    return pd.concat([pq.read_table(p, columns=["file", "window"]).to_pandas() for p in shard_paths(folder)])


def with_bad_files(root):
    (root / "train_audio" / "bbb" / "broken.ogg").write_bytes(b"not audio at all")
    write_audio(root / "train_audio" / "ccc" / "XC99.ogg", 7.0, seed=99)
    return root


def test_ray_rows_equal_the_local_engine_and_failures_are_named(toy_split, tmp_path, local_ray):
    root = with_bad_files(toy_split)
    loc = run_extract(cfg_for(root, tmp_path / "local", batch_size=4))
    rs = run_extract_ray(cfg_for(root, tmp_path / "ray", batch_size=4), ray_backbones.toy, files_per_shard=3)
    assert (rs.files_done, rs.files_failed, rs.windows) == (loc.files_done, loc.files_failed, loc.windows) \
        == (10, 1, loc.windows)
    k_loc, X_loc = read_embeddings(loc.dataset)
    k_ray, X_ray = read_embeddings(rs.dataset)
    pd.testing.assert_frame_equal(k_ray, k_loc)
    np.testing.assert_array_equal(X_ray, X_loc)
    assert len(shard_paths(rs.dataset)) == 4  # written by the write tasks, 3 files per shard
    f = read_failures(rs.dataset)
    assert f["file"].tolist() == ["bbb/broken.ogg"] and f["reason"].str.len().gt(0).all()
    assert read_failures(loc.dataset)["file"].tolist() == ["bbb/broken.ogg"]
    again = run_extract_ray(cfg_for(root, tmp_path / "ray"), ray_backbones.toy)
    assert again.files_done == 0 and again.files_skipped_done == 10  # resume: nothing twice


def test_worker_killed_mid_run_every_file_exactly_once_after_rerun(toy_split, tmp_path, local_ray):
    marker = tmp_path / "crashed"
    cfg = cfg_for(toy_split, tmp_path / "ray", batch_size=2, ray_actors=1)
    factory = functools.partial(ray_backbones.crash_once, str(marker))
    try:
        run_extract_ray(cfg, factory, files_per_shard=2)
    except Exception as e:  # Ray may give up on the dead actor's batch; the rerun must finish the work
        print(f"first run ended with {type(e).__name__}")
    assert marker.exists()  # a worker really died
    run_extract_ray(cfg, factory, files_per_shard=2)
    keys = raw_keys(tmp_path / "ray" / "toy" / "train_audio")
    assert not keys.duplicated().any()  # every (file, window) in exactly one shard
    ref = run_extract(cfg_for(toy_split, tmp_path / "local"))
    k_ref, X_ref = read_embeddings(ref.dataset)
    k, X = read_embeddings(tmp_path / "ray" / "toy" / "train_audio")
    pd.testing.assert_frame_equal(k, k_ref)
    np.testing.assert_array_equal(X, X_ref)


def test_a_retried_write_task_replaces_its_shard(tmp_path):
    from embedkit.config import ExtractConfig
    from embedkit.extract.ray import _write

    cfg = ExtractConfig(out=str(tmp_path), dtype="float32")
    prov = {"backbone": "toy", "sample_rate": 16000, "dim": 2, "weights": "toy", "window_s": 5.0,
            "hop_s": 5.0}
    emb = np.arange(6, dtype=np.float32).reshape(3, 2)
    batch = {"rel": np.array(["a/x.ogg", "b/y.ogg"]), "n": np.array([3, 0]), "audio_s": np.array([14.0, 0.0]),
             "error": np.array(["", "cannot decode"]), "emb": np.array([emb.tobytes(), b""], dtype=object),
             "logits": np.array([b"", b""], dtype=object)}
    for _ in range(2):  # Ray runs the same task again after its worker died
        summary = _write(batch, str(tmp_path / "ds"), prov, cfg)
    assert len(shard_paths(tmp_path / "ds")) == 1
    keys, X = read_embeddings(tmp_path / "ds")
    assert keys["window"].tolist() == [0, 1, 2] and keys["end_s"].tolist() == [5.0, 10.0, 15.0]
    np.testing.assert_array_equal(X, emb)
    assert read_failures(tmp_path / "ds")["file"].tolist() == ["b/y.ogg"]
    assert summary["rel"].tolist() == ["a/x.ogg", "b/y.ogg"]

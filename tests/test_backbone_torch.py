"""PyTorch backbones (PANNs Cnn14, wav2vec2) loaded the way a user would: real model classes with random
weights saved where the weights go, then built through the registry. No downloads."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from embedkit.backbones import BackboneError, get_backbone  # noqa: E402
from embedkit.backbones._torch import check_batch, cpu_has_bf16, pick_precision, run_batched  # noqa: E402
from embedkit.backbones.base import sha256_dir  # noqa: E402


def _audio(n: int, seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """[n, samples] float32: a different tone + noise per row."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    rows = [
        0.3 * np.sin(2 * np.pi * (300 + 700 * i) * t) + 0.05 * rng.standard_normal(t.size) for i in range(n)
    ]
    return np.asarray(rows, dtype=np.float32)


def _sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --------------------------------------------------------------------------------------------- helpers


def test_precision_choice_and_batch_checks():
    assert isinstance(cpu_has_bf16(), bool)
    assert pick_precision("cpu", False) == "fp32"
    assert pick_precision("cpu", True) == ("bf16" if cpu_has_bf16() else "fp32")
    with pytest.raises(ValueError, match="2-D"):
        check_batch(np.zeros(10, np.float32))
    out = run_batched(
        lambda x: x[:, :4], np.zeros((0, 8), np.float32), dim=4, device="cpu", precision="fp32", batch_size=2
    )
    assert out.shape == (0, 4) and out.dtype == np.float32
    x = np.arange(15, dtype=np.float64).reshape(5, 3)
    out = run_batched(lambda t: t * 2, x, dim=3, device="cpu", precision="fp32", batch_size=2)
    assert out.dtype == np.float32 and np.array_equal(out, x * 2)


# --------------------------------------------------------------------------------------------- PANNs

PANNS_SR = 32000


@pytest.fixture(scope="module")
def cnn14(tmp_path_factory):
    """(checkpoint path, raw Cnn14 in eval mode) with random weights saved as {'model': state_dict}."""
    from embedkit.backbones.panns import CNN14_KWARGS, cnn14_class

    torch.manual_seed(0)
    model = cnn14_class()(**CNN14_KWARGS).eval()
    path = tmp_path_factory.mktemp("panns") / "cnn14.pth"
    torch.save({"model": model.state_dict(), "iteration": 0}, path)
    return path, model


@pytest.fixture(scope="module")
def panns_fp32(cnn14):
    return get_backbone("panns", weights=str(cnn14[0]), bf16=False, batch_size=2, device="cpu")


@pytest.fixture(scope="module")
def panns_x():
    return _audio(3, 1.0, PANNS_SR)


def test_panns_matches_raw_model(cnn14, panns_fp32, panns_x):
    _, model = cnn14
    emb = panns_fp32.embed(panns_x)
    assert emb.shape == (3, 2048) and emb.dtype == np.float32
    with torch.inference_mode():
        ref = model(torch.from_numpy(panns_x))["embedding"].numpy()
    np.testing.assert_allclose(emb, ref, rtol=1e-5, atol=1e-6)
    assert np.abs(ref).max() > 0
    np.testing.assert_array_equal(panns_fp32.embed(panns_x), emb)  # deterministic
    assert not np.allclose(emb[0], emb[1]) and not np.allclose(emb[1], emb[2])


def test_panns_batch_invariance(panns_fp32, panns_x):
    together = panns_fp32.embed(panns_x)
    alone = np.concatenate([panns_fp32.embed(panns_x[i : i + 1]) for i in range(len(panns_x))])
    np.testing.assert_allclose(alone, together, rtol=1e-4, atol=1e-5)


def test_panns_identity(cnn14, panns_fp32):
    ident = panns_fp32.identity()
    assert ident == {"backbone": "panns", "sample_rate": 32000, "dim": 2048, "weights": _sha256(cnn14[0])}
    json.dumps(ident)
    assert panns_fp32.precision == "fp32"


def test_panns_env_checkpoint_default_precision(cnn14, panns_fp32, panns_x, monkeypatch):
    monkeypatch.setenv("PANNS_CHECKPOINT", str(cnn14[0]))
    bb = get_backbone("panns", device="cpu", batch_size=4)  # bf16=True by default
    assert bb.checkpoint == cnn14[0]
    assert bb.precision == ("bf16" if cpu_has_bf16() else "fp32")
    assert bb.identity() == panns_fp32.identity()  # precision is not part of the identity
    emb, ref = bb.embed(panns_x), panns_fp32.embed(panns_x)
    assert emb.dtype == np.float32
    assert np.abs(emb - ref).max() <= 0.05 * np.abs(ref).max()
    cos = (emb * ref).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.999


def test_panns_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PANNS_CHECKPOINT", raising=False)
    for kwargs in ({}, {"weights": str(tmp_path / "nope.pth")}):
        with pytest.raises(BackboneError) as err:
            get_backbone("panns", **kwargs)
        msg = str(err.value)
        assert "\n" not in msg
        for part in (
            "zenodo",
            "3987831",
            "Cnn14_mAP=0.431.pth",
            "--weights",
            "PANNS_CHECKPOINT",
            "panns_data",
        ):
            assert part in msg
    monkeypatch.setenv("PANNS_CHECKPOINT", str(tmp_path / "env.pth"))
    with pytest.raises(BackboneError, match="env.pth"):
        get_backbone("panns")


def test_panns_checkpoint_formats(tmp_path):
    from embedkit.backbones.panns import load_state_dict

    sd = {"fc1.weight": torch.ones(2, 2), "fc1.bias": torch.zeros(2)}
    torch.save({"model": sd, "iteration": np.int64(5), "stats": np.arange(3.0)}, tmp_path / "wrapped.pth")
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "bare.pth")
    for name in ("wrapped.pth", "bare.pth"):
        got = load_state_dict(tmp_path / name)
        assert sorted(got) == sorted(sd) and torch.equal(got["fc1.weight"], sd["fc1.weight"])
    (tmp_path / "junk.pth").write_bytes(b"<html>not a checkpoint</html>")
    with pytest.raises(BackboneError, match="zenodo"):
        load_state_dict(tmp_path / "junk.pth")
    torch.save(sd, tmp_path / "wrong.pth")
    with pytest.raises(BackboneError, match="does not fit Cnn14"):
        get_backbone("panns", weights=str(tmp_path / "wrong.pth"), device="cpu")


def test_panns_import_runs_no_wget_and_writes_no_labels(tmp_path):
    """In a fresh interpreter with HOME=tmp: importing the registry is cheap (no torch), and loading Cnn14
    neither runs panns_inference's __init__ (os.system wget) nor creates ~/panns_data."""
    script = textwrap.dedent(
        """
        import os, subprocess, sys
        def no_system(cmd):
            raise AssertionError(f"os.system called: {cmd!r}")
        real_popen = subprocess.Popen
        def popen(args, *a, **k):  # matplotlib may run fc-list; nothing may fetch anything
            assert not any(w in str(args) for w in ("wget", "curl")), f"download spawned: {args!r}"
            return real_popen(args, *a, **k)
        os.system = no_system
        subprocess.Popen = popen
        import embedkit.backbones, embedkit.backbones.panns, embedkit.backbones.wav2vec2
        from embedkit.backbones import available
        assert {"panns", "wav2vec2"} <= set(available())
        assert "torch" not in sys.modules, "importing the backbones must not import torch"
        from embedkit.backbones.panns import cnn14_class
        assert cnn14_class().__name__ == "Cnn14"
        assert "panns_inference" not in sys.modules, "the panns_inference package __init__ ran"
        print("ok")
        """
    )
    env = {**os.environ, "HOME": str(tmp_path), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    env.pop("PANNS_CHECKPOINT", None)
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith("ok")
    assert not (tmp_path / "panns_data").exists()


# --------------------------------------------------------------------------------------------- wav2vec2

W2V_SR = 16000


@pytest.fixture(scope="module")
def w2v(tmp_path_factory):
    """(model folder, raw Wav2Vec2Model in eval mode): a tiny random model saved with save_pretrained."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=8,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Wav2Vec2Model(config).eval()
    folder = tmp_path_factory.mktemp("w2v") / "w2v"
    model.save_pretrained(folder)
    return folder, model


def _manual(model, x: np.ndarray, layer: int, normalise: bool = True) -> np.ndarray:
    if normalise:
        x = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-7)
    with torch.inference_mode():
        out = model(torch.from_numpy(x.astype(np.float32)), output_hidden_states=True)
    return out.hidden_states[layer].mean(dim=1).numpy()


@pytest.fixture(scope="module")
def w2v_x():
    return _audio(3, 1.0, W2V_SR, seed=1)


def test_w2v_matches_manual_offline(w2v, w2v_x, monkeypatch):
    folder, model = w2v

    def no_network(*a, **k):
        raise AssertionError("network access while loading a local model")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    bb = get_backbone("wav2vec2", weights=str(folder), batch_size=2, device="cpu")
    assert bb.dim == 32 and bb.sample_rate == 16000 and bb.precision == "fp32"
    emb = bb.embed(w2v_x)
    assert emb.shape == (3, 32) and emb.dtype == np.float32
    np.testing.assert_allclose(emb, _manual(model, w2v_x, -1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(bb.embed(w2v_x), emb)
    assert not np.allclose(emb[0], emb[1])
    alone = np.concatenate([bb.embed(w2v_x[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(alone, emb, rtol=1e-4, atol=1e-5)
    ident = bb.identity()
    assert ident == {
        "backbone": "wav2vec2",
        "sample_rate": 16000,
        "dim": 32,
        "weights": sha256_dir(folder),
        "layer": 2,
    }


def test_w2v_layers(w2v, w2v_x):
    folder, model = w2v
    last = get_backbone("wav2vec2", weights=str(folder), device="cpu")
    first = get_backbone("wav2vec2", weights=str(folder), layer=0, device="cpu")
    neg = get_backbone("wav2vec2", weights=str(folder), layer=-2, device="cpu")
    assert (last.layer, first.layer, neg.layer) == (2, 0, 1)
    assert get_backbone("wav2vec2", weights=str(folder), layer=-1, device="cpu").identity() == last.identity()
    assert first.identity() != last.identity() and first.identity()["layer"] == 0
    e_first, e_last = first.embed(w2v_x), last.embed(w2v_x)
    assert not np.allclose(e_first, e_last)
    np.testing.assert_allclose(e_first, _manual(model, w2v_x, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(neg.embed(w2v_x), _manual(model, w2v_x, 1), rtol=1e-5, atol=1e-6)
    for bad in (3, -4, "x", 1.5):
        with pytest.raises(BackboneError, match="layer"):
            get_backbone("wav2vec2", weights=str(folder), layer=bad, device="cpu")


def test_w2v_preprocessor_do_normalize(w2v, w2v_x, tmp_path):
    folder, model = w2v
    copy = tmp_path / "w2v_raw"
    shutil.copytree(folder, copy)
    (copy / "preprocessor_config.json").write_text(
        json.dumps({"do_normalize": False, "sampling_rate": 16000})
    )
    bb = get_backbone("wav2vec2", weights=str(copy), device="cpu")
    assert bb.do_normalize is False
    np.testing.assert_allclose(
        bb.embed(w2v_x), _manual(model, w2v_x, -1, normalise=False), rtol=1e-5, atol=1e-6
    )
    assert bb.weights_id() != sha256_dir(folder)


def test_w2v_env_and_missing_weights(w2v, tmp_path, monkeypatch):
    folder, _ = w2v
    monkeypatch.delenv("WAV2VEC2_MODEL", raising=False)
    with pytest.raises(BackboneError) as err:
        get_backbone("wav2vec2")
    assert "--weights" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(BackboneError, match="config.json"):
        get_backbone("wav2vec2", weights=str(tmp_path))
    monkeypatch.setenv("WAV2VEC2_MODEL", str(folder))
    bb = get_backbone("wav2vec2", device="cpu")
    assert bb.model_dir == folder and bb.weights_id() == sha256_dir(folder)


class _Marker:
    """Unpickling this writes a file: proof that a loader ran code from a weights file."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_w2v_pickled_bin_is_one_line_and_runs_nothing(w2v, tmp_path, capsys):
    """Issue 13: a pytorch_model.bin that is not a plain state dict is a BackboneError line; nothing runs."""
    import pickle

    from embedkit.cli import main as cli_main

    folder, model = w2v
    marker = tmp_path / "MARKER"
    cases = {
        "object": pickle.dumps({"w": _Marker(str(marker))}),
        "junk": b"not a pickle at all" * 10,
        "list": None,
    }
    for name, payload in cases.items():
        d = tmp_path / name
        shutil.copytree(folder, d)
        (d / "model.safetensors").unlink()
        if payload is None:
            torch.save([1, 2, 3], d / "pytorch_model.bin")
        else:
            (d / "pytorch_model.bin").write_bytes(payload)
        with pytest.raises(BackboneError) as err:
            get_backbone("wav2vec2", weights=str(d), device="cpu")
        msg = str(err.value)
        assert "\n" not in msg and str(d) in msg, msg
        if name == "object":
            assert "not a plain state dict" in msg and "weights_only" not in msg
    assert not marker.exists()
    import soundfile as sf

    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(str(audio / "a.wav"), np.zeros(16000, np.float32), 16000)
    args = ["extract", "--backbone", "wav2vec2", "--weights", str(tmp_path / "object"), "--files", str(audio)]
    assert cli_main([*args, "--out", str(tmp_path / "emb"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a plain state dict" in err[0]
    assert not marker.exists()


def test_w2v_prefers_safetensors_over_a_bin(w2v, w2v_x, tmp_path):
    import pickle

    folder, model = w2v
    marker = tmp_path / "MARKER"
    d = tmp_path / "both"
    shutil.copytree(folder, d)
    (d / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _Marker(str(marker))}))
    bb = get_backbone("wav2vec2", weights=str(d), device="cpu")
    np.testing.assert_allclose(bb.embed(w2v_x), _manual(model, w2v_x, -1), rtol=1e-5, atol=1e-6)
    assert not marker.exists()

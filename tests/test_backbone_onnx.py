"""Described backbones (onnx, perch) on models the tests export: a Perch v2 stand-in and PANNs Cnn14.

The stand-in has Perch v2's documented interface (input ``inputs`` [B, 160000]; outputs ``label``,
``embedding`` [B, 1536], ``spatial_embedding``, ``spectrogram``) with random weights; see ``onnx_models.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from embedkit.backbones import get_backbone
from embedkit.backbones.base import BackboneError, sha256_file
from embedkit.cli import main
from embedkit.config import ExtractConfig
from embedkit.extract import run_extract
from embedkit.store import read_embeddings, read_provenance

pytest.importorskip("onnx")  # the torch exporter writes through it (test extra)
from onnx_models import PERCH_DIM, PERCH_SAMPLES, export, perch_standin, torch_outputs  # noqa: E402

LABELS = ["Turdus merula", "Parus major", "Rana temporaria", "Gryllus campestris"]
CODES = ["eurbla", "gretit1", "no_ebird_code", "no_ebird_code"]
DESC = {"input": "inputs", "embedding": "embedding", "logits": "label"}


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("perch")
    path, module, labels, codes = perch_standin(folder, LABELS, CODES)
    return {"path": path, "module": module, "labels": labels, "codes": codes, "folder": folder}


def _x(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(PERCH_SAMPLES) / 32000
    tones = np.stack([np.sin(2 * np.pi * (500 + 700 * k) * t) for k in range(n)])
    return (0.3 * tones + 0.05 * rng.standard_normal((n, PERCH_SAMPLES))).astype(np.float32)


def test_onnx_backbone_matches_the_torch_model(standin):
    bb = get_backbone("onnx", weights=str(standin["path"]), model={**DESC, "labels": str(standin["labels"])},
                      threads=1, batch_size=2)  # fmt: skip
    x = _x(5)
    emb, logits = bb.embed_with_logits(x)  # 3 calls: 2 + 2 + 1 windows
    want_logits, want_emb, *_ = torch_outputs(standin["module"], x)
    assert emb.shape == (5, PERCH_DIM) and logits.shape == (5, len(LABELS))
    np.testing.assert_allclose(emb, want_emb, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(bb.embed(x[:2]), emb[:2])
    assert np.abs(emb[0] - emb[1]).max() > 1e-3  # different sounds, different embeddings
    ident = bb.identity()
    assert ident["weights"] == "sha256:" + sha256_file(standin["path"]) and ident["dim"] == PERCH_DIM
    assert ident["model"]["embedding"] == "embedding" and ident["model"]["n_logits"] == len(LABELS)
    assert "labels" not in ident["model"]  # paths are informational (extra_provenance), not identity
    assert bb.classes().scientific == LABELS
    bb.close()
    with pytest.raises(BackboneError, match="closed"):
        bb.embed(x[:1])


def test_perch_preset_finds_the_class_lists_and_normalises(standin):
    bb = get_backbone("perch", weights=str(standin["path"]), threads=1)
    assert bb.spec.input == "inputs" and bb.spec.normalize == 0.25 and bb.dim == PERCH_DIM
    cl = bb.classes()
    assert cl.scientific == LABELS and cl.ebird == ["eurbla", "gretit1", "", ""]
    x = _x(2) * 3.0 + 0.1  # loud and off-centre: the preset removes the mean and scales the peak to 0.25
    y = x - x.mean(axis=1, keepdims=True)
    y = 0.25 * y / np.abs(y).max(axis=1, keepdims=True)
    np.testing.assert_allclose(bb.embed(x), torch_outputs(standin["module"], y)[1], rtol=1e-4, atol=1e-5)
    raw = get_backbone("perch", weights=str(standin["path"]), model={"normalize": 0.0}, threads=1)
    assert np.abs(raw.embed(x) - bb.embed(x)).max() > 1e-3


def test_perch_refuses_a_savedmodel_folder_with_the_convert_command(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"\0")
    with pytest.raises(BackboneError, match="tf2onnx.convert --saved-model") as e:
        get_backbone("perch", weights=str(tmp_path))
    assert "\n" not in str(e.value)
    (tmp_path / "model.bin").write_bytes(b"\0")
    with pytest.raises(BackboneError, match=r"\.onnx or \.tflite"):
        get_backbone("perch", weights=str(tmp_path / "model.bin"))


def test_fixed_batch_model_gets_padded_batches(tmp_path, standin):
    path, module, _, _ = perch_standin(tmp_path, LABELS, fixed_batch=True)
    fixed = get_backbone("onnx", weights=str(path), model=DESC, threads=1, batch_size=8)
    assert fixed._fixed_batch == 1
    x = _x(3, seed=4)
    np.testing.assert_allclose(fixed.embed(x), torch_outputs(module, x)[1], rtol=1e-4, atol=1e-5)


def test_model_config_file_and_flags(tmp_path, standin):
    (tmp_path / "labels.csv").write_bytes(standin["labels"].read_bytes())
    toml = tmp_path / "m.toml"
    toml.write_text('[model]\ninput = "inputs"\nembedding = "label"\nlogits = "label"\nlabels = "labels.csv"')
    bb = get_backbone("onnx", weights=str(standin["path"]), model_config=str(toml),
                      model={"embedding": "embedding"})  # fmt: skip
    assert bb.dim == PERCH_DIM and bb.spec.labels == str(tmp_path / "labels.csv")  # relative to the file


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_sequence_output_is_pooled_over_time(standin, pool):
    bb = get_backbone("onnx", weights=str(standin["path"]), model={"embedding": "spectrogram", "pool": pool})
    x = _x(2, seed=3)
    spec = torch_outputs(standin["module"], x)[3]  # [B, 500, 128]
    want = spec.mean(axis=1) if pool == "mean" else spec.max(axis=1)
    assert bb.dim == 128
    np.testing.assert_allclose(bb.embed(x), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("model", "window", "match"),
    [
        ({"embedding": "emb"}, 5.0, "no output 'emb' \\(embedding\\) in the model"),
        ({"embedding": "embedding", "input": "audio"}, 5.0, "no input 'audio'"),
        ({"embedding": "embedding", "layout": "B,1,S"}, 5.0, "has rank 2 .* layout 'B,1,S' has rank 3"),
        ({"embedding": "embedding", "window_s": 3.0}, 3.0, "takes 160000 samples per row.* = 96000"),
        ({"embedding": "embedding"}, 3.0, "takes 5 s windows .* pass --window-s 5"),
        ({"embedding": "embedding", "colour": "red"}, 5.0, "unknown model description key"),
        ({"embedding": "embedding", "sample_rate": "fast"}, 5.0, "'sample_rate' must be int"),
    ],
)
def test_bad_descriptions_are_one_line_exit_2(standin, toy_split, tmp_path, capsys, model, window, match):
    argv = ["extract", "--backbone", "onnx", "--weights", str(standin["path"]), "--data", str(toy_split),
            "--out", str(tmp_path / "emb"), "--window-s", str(window), "--no-progress",
            "--model", *(f"{k}={v}" for k, v in model.items())]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    import re

    assert re.search(match, err), err
    assert not (tmp_path / "emb").exists() or not list((tmp_path / "emb").rglob("part-*.parquet"))


def test_wrong_rank_output_and_wrong_label_count(standin, tmp_path):
    with pytest.raises(BackboneError, match=r"output 'spatial_embedding' \(embedding\) has rank 4"):
        get_backbone("onnx", weights=str(standin["path"]), model={**DESC, "embedding": "spatial_embedding"})
    short = tmp_path / "short.csv"
    short.write_text("inat2024_fsd50k\nTurdus merula\n")
    with pytest.raises(BackboneError, match="lists 1 classes but output 'label' has 4 logits"):
        get_backbone("onnx", weights=str(standin["path"]), model={**DESC, "labels": str(short)})


def test_extract_writes_shards_with_the_description(standin, toy_split, tmp_path):
    cfg = ExtractConfig(backbone="perch", weights=str(standin["path"]), data=str(toy_split),
                        out=str(tmp_path / "emb"), save_logits=True, threads=1, progress=False)  # fmt: skip
    s = run_extract(cfg)
    assert s.files_done == 9 and s.files_failed == 0
    ds = tmp_path / "emb" / "perch" / "train_audio"
    prov = read_provenance(ds)
    assert prov["dim"] == PERCH_DIM and prov["weights"] == "sha256:" + sha256_file(standin["path"])
    assert prov["model"]["normalize"] == 0.25 and prov["model"]["logits"] == "label"
    assert prov["classes"]["sha256"] == sha256_file(standin["labels"])
    keys, X, L = read_embeddings(ds, logits=True)
    assert X.shape == (len(keys), PERCH_DIM) and L.shape == (len(keys), len(LABELS))


@pytest.mark.slow
def test_cnn14_as_onnx_matches_the_panns_backbone(tmp_path):
    """PANNs Cnn14 (random weights) exported to ONNX gives the ``panns`` backbone's fp32 embeddings."""
    import torch

    from embedkit.backbones.panns import CNN14_KWARGS, cnn14_class, embedding_module

    torch.manual_seed(0)
    model = cnn14_class()(**CNN14_KWARGS).eval()
    ckpt = tmp_path / "cnn14.pth"
    torch.save({"model": model.state_dict()}, ckpt)

    onnx_path = export(
        embedding_module(model), tmp_path / "cnn14.onnx", torch.zeros(2, 160000), "audio", ["embedding"]
    )
    x = _x(3, seed=2)
    got = get_backbone("onnx", weights=str(onnx_path), model={"embedding": "embedding"}, threads=2).embed(x)
    want = get_backbone("panns", weights=str(ckpt), bf16=False, device="cpu", threads=2).embed(x)
    assert got.shape == want.shape == (3, 2048)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * float(np.abs(want).max()))


def test_infer_rebuilds_from_provenance_and_moved_file(standin, toy_split, tmp_path):
    """infer.py builds the backbone from a shard's provenance: the recorded file, or --backbone-weights."""
    import shutil

    from embedkit.backbones.build import build_backbone
    from embedkit.config import InferConfig
    from embedkit.store import check_provenance

    cfg = ExtractConfig(backbone="onnx", weights=str(standin["path"]), data=str(toy_split),
                        out=str(tmp_path / "e"), model={**DESC, "labels": str(standin["labels"])}, threads=1,
                        progress=False)  # fmt: skip
    run_extract(cfg)
    prov = read_provenance(tmp_path / "e" / "onnx" / "train_audio")
    bb = build_backbone(prov, **InferConfig(threads=1).backbone_run("onnx"))
    check_provenance(prov, {**prov, **bb.identity()}, what="shards", where="rebuilt")
    moved = tmp_path / "elsewhere.onnx"
    shutil.copy(standin["path"], moved)
    run = InferConfig(backbone_weights={"onnx": str(moved)}).backbone_run("onnx")
    bb2 = build_backbone({**prov, "model_file": "/gone.onnx"}, **run)
    assert bb2.identity() == bb.identity() and bb2.model_file == moved


def test_save_logits_needs_a_logits_output(standin, toy_split, tmp_path):
    from embedkit.errors import UsageError

    cfg = ExtractConfig(backbone="onnx", weights=str(standin["path"]), data=str(toy_split),
                        out=str(tmp_path / "e"), model={"embedding": "embedding"}, save_logits=True,
                        progress=False)  # fmt: skip
    with pytest.raises(UsageError, match="no class logits"):
        run_extract(cfg)

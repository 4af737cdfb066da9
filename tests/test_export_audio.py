"""``embedkit export --from-audio``: the Perch stand-in's ONNX graph in front of a head with its prior."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from embedkit.cli import main as cli_main

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.mark.slow
def test_one_graph_from_audio_equals_the_backbone_and_model(tmp_path, capsys):
    from onnx_models import perch_standin

    from embedkit.audio import load_mono
    from embedkit.backbones.build import build_backbone
    from embedkit.config import ExtractConfig, FitConfig
    from embedkit.demo.data import make_demo_dataset
    from embedkit.extract import run_extract
    from embedkit.predict.model import load_model
    from embedkit.train.run import run_fit

    data = make_demo_dataset(tmp_path / "data", n_species=4, clips_per_species=4, n_train_soundscapes=0,
                             n_test_soundscapes=1, workers=2)  # fmt: skip
    tax = pd.read_csv(data / "taxonomy.csv")
    model_file, _, _, _ = perch_standin(
        tmp_path / "perch", tax["scientific_name"].tolist()[:3] + ["Parus major"]
    )
    emb = str(tmp_path / "emb")
    run_extract(ExtractConfig(backbone="perch", weights=str(model_file), data=str(data), out=emb,
                              max_windows=3, save_logits=True, threads=2, progress=False))  # fmt: skip
    res = run_fit(FitConfig(head="logreg", backbone="perch", data=str(data), embeddings=emb,
                            out=str(tmp_path / "models"), folds=2, zero_shot="prior"))  # fmt: skip
    model = load_model(res.folder)
    assert model.meta["zero_shot"]["mode"] == "prior" and model.meta["zero_shot"]["weights"] is not None
    out = tmp_path / "full.onnx"
    assert cli_main(["export", str(res.folder), "--from-audio", "--out", str(out)]) == 0
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["inputs"] == {"audio": ["batch", 160000], "sample_rate": 32000}
    # windows of a test soundscape, as the backbone sees them
    x = load_mono(sorted((data / "test_soundscapes").iterdir())[0], 32000)[: 4 * 160000]
    batch = x.reshape(4, 160000).astype(np.float32)
    bb = build_backbone(model.provenance, threads=2)
    e, lg = bb.embed_with_logits(batch)
    ref = model.predict(e, lg)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    P = sess.run(["probabilities"], {"audio": batch})[0]
    assert P.shape == ref.shape == (4, len(model.labels))
    assert np.abs(P - ref).max() <= 1e-5
    # the head alone takes the embeddings and the logits
    assert cli_main(["export", str(res.folder), "--out", str(tmp_path / "head.onnx")]) == 0
    head = ort.InferenceSession(str(tmp_path / "head.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in head.get_inputs()] == ["embedding", "logits"]
    assert np.abs(head.run(["probabilities"], {"embedding": e, "logits": lg})[0] - ref).max() <= 1e-5
    # a backbone that is not an ONNX file: refused in one line
    (tmp_path / "moved.onnx").write_bytes(b"x")
    capsys.readouterr()
    assert cli_main(["export", str(res.folder), "--from-audio", "--weights", str(tmp_path / "moved.onnx"),
                     "--out", str(tmp_path / "y.onnx")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SHA-256 differs" in err[0] and not (tmp_path / "y.onnx").exists()

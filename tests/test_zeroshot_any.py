"""Zero-shot for any backbone with a classifier: class lists, label mapping, the Perch stand-in end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from embedkit.backbones._describe import ClassList, read_class_list
from embedkit.zeroshot import backbone_classes, backbone_labels, map_classes, species_map


def test_class_list_formats(tmp_path):
    (tmp_path / "bn.txt").write_text("Turdus merula_Eurasian Blackbird\nParus major_Great Tit\n")
    bn = read_class_list(tmp_path / "bn.txt")
    assert bn.scientific == ["Turdus merula", "Parus major"] and bn.names[1] == "Parus major_Great Tit"
    (tmp_path / "labels.csv").write_text("inat2024_fsd50k\nTurdus merula\nRana temporaria\n")
    (tmp_path / "codes.csv").write_text("ebird2021\neurbla\nno_ebird_code\n")
    perch = read_class_list(tmp_path / "labels.csv", tmp_path / "codes.csv")
    assert perch.scientific == ["Turdus merula", "Rana temporaria"] and perch.ebird == ["eurbla", ""]
    (tmp_path / "tab.csv").write_text(
        "common_name,scientific_name,ebird_code,inat_taxon_id\nBlackbird,Turdus merula,eurbla,12716\n"
    )
    tab = read_class_list(tmp_path / "tab.csv")
    assert (tab.names, tab.scientific, tab.ebird, tab.inat) == (
        ["Blackbird"],
        ["Turdus merula"],
        ["eurbla"],
        ["12716"],
    )
    (tmp_path / "bad.csv").write_text("ebird2021\neurbla\n")
    from embedkit.backbones.base import BackboneError

    with pytest.raises(BackboneError, match="1 codes for the 2 classes"):
        read_class_list(tmp_path / "labels.csv", tmp_path / "bad.csv")


def test_mapping_order_scientific_then_ebird_then_inat():
    classes = ClassList(
        names=["a", "b", "c", "d"],
        scientific=["Turdus merula", "Parus major", "", "Rana temporaria"],
        ebird=["eurbla", "gretit1", "cowcod", ""],
        inat=["", "", "", "25591"],
    )
    tax = pd.DataFrame({
        "primary_label": ["gretit1", "eurbla", "cowcod", "25591", "99999"],
        "scientific_name": ["Turdus  MERULA", "Unknown bird", "Bos taurus", "Rana temp.", "Nothing here"],
        "inat_taxon_id": ["", "", "", "25591", "99999"],
    })  # fmt: skip
    labels = ["gretit1", "eurbla", "cowcod", "25591", "99999"]
    idx, counts = map_classes(labels, tax, classes)
    # gretit1's scientific name is Turdus merula: the name wins over the code (class 0, not 1)
    assert idx.tolist() == [0, 0, 2, 3, -1]
    assert counts == {"scientific": 1, "ebird": 2, "inat": 1}


def test_birdnet_covers_the_birds_of_birdclef_2025(shared_data, tmp_path, capsys):
    src = shared_data / "birdclef2025-labels"
    tax = pd.read_csv(src / "taxonomy_derived.csv", dtype=str, keep_default_na=False)
    tax.to_csv(tmp_path / "taxonomy.csv", index=False)
    labels = (src / "primary_labels_206.txt").read_text().split()
    idx = species_map(tmp_path, labels, "birdnet")
    assert "labels mapped to birdnet classes" in capsys.readouterr().err
    kinds = tax.set_index("primary_label").loc[labels, "class_name"].to_numpy()
    mapped = idx >= 0
    birds = kinds == "Aves"
    # BirdNET's list is birds only (plus a few non-bird sounds): nearly every bird maps, no frog or insect
    assert mapped[birds].mean() > 0.95 and not mapped[~birds].any()
    names = backbone_labels("birdnet")
    assert all(names[i].split("_")[0].lower() in set(tax["scientific_name"].str.lower()) for i in idx[mapped])


def test_no_class_list_recorded_is_a_clear_error():
    from embedkit.birdclef import DataError

    with pytest.raises(DataError, match="recorded no class list"):
        backbone_classes("onnx", {"backbone": "onnx"})


@pytest.mark.slow
def test_perch_standin_extract_fit_infer_with_the_zero_shot_prior_and_fusion(tmp_path):
    """Demo data → perch (stand-in ONNX, logits over a list naming 3 demo species) → fit (prior); perch
    fused with birdnet → fit; infer with both models."""
    pytest.importorskip("onnx")
    from onnx_models import perch_standin

    from embedkit.config import ExtractConfig, FitConfig, InferConfig
    from embedkit.demo.data import make_demo_dataset
    from embedkit.extract import run_extract
    from embedkit.predict.infer import run_infer
    from embedkit.train.run import run_fit

    data = make_demo_dataset(tmp_path / "data", n_species=4, clips_per_species=4, n_train_soundscapes=0,
                             n_test_soundscapes=2, workers=2)  # fmt: skip
    tax = pd.read_csv(data / "taxonomy.csv")
    known = tax["scientific_name"].tolist()[:3] + ["Turdus merula", "Parus major"]
    model_file, _, _, _ = perch_standin(tmp_path / "perch", known)
    emb = str(tmp_path / "emb")
    run_extract(ExtractConfig(backbone="perch", weights=str(model_file), data=str(data), out=emb,
                              max_windows=3, save_logits=True, threads=2, progress=False))  # fmt: skip
    res = run_fit(FitConfig(head="logreg", backbone="perch", data=str(data), embeddings=emb,
                            out=str(tmp_path / "models"), folds=2, zero_shot="prior"))  # fmt: skip
    meta = json.loads((res.folder / "model.json").read_text())
    zs = meta["zero_shot"]
    labels = meta["labels"]
    sci = dict(zip(tax["primary_label"].astype(str), tax["scientific_name"], strict=True))
    assert zs["mode"] == "prior" and meta["needs_logits"]
    assert len(zs["index"]) == len(labels) and sorted(i for i in zs["index"] if i >= 0) == [0, 1, 2]
    assert all(i < 0 or known[i] == sci[c] for c, i in zip(labels, zs["index"], strict=True))
    assert meta["provenance"]["backbone"] == "perch" and meta["provenance"]["model"]["n_logits"] == 5
    # fusion: the ONNX backbone's embeddings joined with BirdNET's of the same windows
    run_extract(ExtractConfig(backbone="birdnet", data=str(data), out=emb, max_windows=3, threads=2,
                              progress=False))  # fmt: skip
    fused = run_fit(FitConfig(head="logreg", backbone="perch", fuse=["birdnet"], data=str(data),
                              embeddings=emb, out=str(tmp_path / "models"), name="fused", folds=0,
                              zero_shot="off"))  # fmt: skip
    fmeta = json.loads((fused.folder / "model.json").read_text())
    assert [p["backbone"] for p in fmeta["fusion"]] == ["perch", "birdnet"]
    assert fmeta["input_dim"] == 1536 + 4096  # perch + birdnet (2 chunks kept apart, each mean + max)
    out = tmp_path / "submission.csv"
    models = [str(res.folder), str(fused.folder)]
    r = run_infer(InferConfig(data=str(data), models=models, out=str(out), threads=2, progress=False))
    assert r.failures == [] and r.problems == []
    sub = pd.read_csv(out)
    assert len(sub) > 0 and np.isfinite(sub.drop(columns="row_id").to_numpy()).all()

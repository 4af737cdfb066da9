"""merge-models and fit.py --add-to: composite models, their loading, inference and ONNX export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import toy_training_set
from test_infer import FREQ, SCAPES, make_scapes

from embedkit.cli import main as cli_main
from embedkit.config import ExtractConfig, InferConfig
from embedkit.extract import run_extract
from embedkit.predict.infer import run_infer
from embedkit.predict.model import ModelError, load_model
from embedkit.store import read_embeddings


def _data(root: Path, labels: list[str]) -> Path:
    toy_training_set(root, None, FREQ, durations=(5.0, 7.0, 10.0), seed0=50, labels=labels)
    run_extract(ExtractConfig(backbone="toy", data=str(root), out=str(root / "emb"), progress=False))
    return root


def _fit(root: Path, out: Path, name: str, *extra: str) -> Path:
    args = [
        "fit",
        "--head",
        "logreg",
        "--backbone",
        "toy",
        "--data",
        str(root),
        "--embeddings",
        str(root / "emb"),
    ]
    assert cli_main([*args, "--out", str(out), "--name", name, *extra]) == 0
    return out / name


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Model A on 3 tone labels, model B on all 4 (another C), soundscapes and their float32 embeddings."""
    base = tmp_path_factory.mktemp("merge")
    three = _data(base / "three", ["aaa", "bbb", "ccc"])
    four = _data(base / "four", sorted(FREQ))
    a = _fit(three, base / "models", "a", "--folds", "0")
    b = _fit(four, base / "models", "b", "--folds", "0", "--params", "C=0.05")
    scapes = make_scapes(base / "scapes")
    s = run_extract(ExtractConfig(backbone="toy", files=str(scapes), out=str(base / "scape_emb"),
                                  dtype="float32", progress=False))  # fmt: skip
    keys, X = read_embeddings(s.dataset)
    return {
        "base": base,
        "three": three,
        "four": four,
        "a": a,
        "b": b,
        "scapes": scapes,
        "X": X,
        "keys": keys,
    }


def test_merge_is_the_union_with_a_weighted_mean_where_both_know(env, tmp_path):
    out = tmp_path / "ab"
    assert (
        cli_main(["merge-models", str(env["a"]), str(env["b"]), "--weights", "3", "1", "--out", str(out)])
        == 0
    )
    m, A, B = load_model(out), load_model(env["a"]), load_model(env["b"])
    assert m.labels == ["aaa", "bbb", "ccc", "ddd"] and A.labels == ["aaa", "bbb", "ccc"]
    X = env["X"]
    P, pa, pb = m.predict(X), A.predict(X), B.predict(X)
    np.testing.assert_allclose(P[:, :3], 0.75 * pa + 0.25 * pb[:, :3], atol=1e-6)
    np.testing.assert_allclose(P[:, 3], pb[:, 3], atol=1e-6)  # only B knows ddd: B's own output
    meta = json.loads((out / "model.json").read_text())
    assert meta["head"] == "composite" and meta["composite"]["weights"] == [0.75, 0.25]
    assert len(meta["priors"]) == 4
    # a models root holding a composite beside plain models still makes a report
    root = tmp_path / "root"
    root.mkdir()
    for name, src in (("ab", out), ("a", env["a"])):
        (root / name).symlink_to(src.resolve())
    assert (
        cli_main(["report", "--models", str(root), "--data", str(env["four"]), "--out", str(tmp_path / "r")])
        == 0
    )
    assert "ab" in (tmp_path / "r" / "index.html").read_text()


def test_merged_model_infers_and_exports(env, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "ab"
    cli_main(["merge-models", str(env["a"]), str(env["b"]), "--out", str(out)])
    cfg = InferConfig(data=str(env["four"]), soundscapes=str(env["scapes"]), models=[str(out)],
                      out=str(tmp_path / "sub.csv"), smooth=0.0, tta=[], progress=False)  # fmt: skip
    res = run_infer(cfg)
    assert res.problems == [] and res.failures == [] and res.probs.shape[1] == 4
    assert cli_main(["export", str(out), "--out", str(tmp_path / "ab.onnx")]) == 0
    sess = ort.InferenceSession(str(tmp_path / "ab.onnx"), providers=["CPUExecutionProvider"])
    P = sess.run(["probabilities"], {"embedding": env["X"]})[0]
    ref = pd.DataFrame(res.probs, index=res.row_ids).loc[env["keys"]["row_id"]].to_numpy()
    assert np.abs(P - ref).max() <= 1e-5
    assert (tmp_path / "ab.labels.txt").read_text().split() == ["aaa", "bbb", "ccc", "ddd"]


def test_a_changed_part_is_refused_on_load(env, tmp_path):
    out = tmp_path / "ab"
    cli_main(["merge-models", str(env["a"]), str(env["b"]), "--out", str(out)])
    real = out.resolve()
    head_json = real / "parts" / "1" / "head" / "head.json"
    head_json.write_text(head_json.read_text().replace('"C": 0.05', '"C": 0.06'))
    with pytest.raises(ModelError, match="changed since it was saved"):
        load_model(out)


def _other_backbone(src: Path, dst: Path) -> Path:
    shutil.copytree(src.resolve(), dst)
    doc = json.loads((dst / "model.json").read_text())
    doc["provenance"].update(backbone="birdnet", dim=1024, weights_sha256="bundled birdnet v2.4")
    (dst / "model.json").write_text(json.dumps(doc))
    return dst


def test_merge_refuses_other_backbones_in_one_line(env, tmp_path, capsys):
    other = _other_backbone(env["b"], tmp_path / "bn")
    out = tmp_path / "x"
    assert cli_main(["merge-models", str(env["a"]), str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "toy" in err[0] and "birdnet" in err[0] and "backbone" in err[0]
    assert not out.exists() and not list(tmp_path.glob(".x.*"))


def test_add_to_fits_the_new_labels_only_and_keeps_the_old_head(env, tmp_path):
    out = tmp_path / "models"
    args = ["fit", "--backbone", "toy", "--data", str(env["four"]), "--embeddings", str(env["four"] / "emb")]
    assert (
        cli_main([*args, "--add-to", str(env["a"]), "--out", str(out)]) == 0
    )  # the user's defaults (5-fold CV)
    folder = out / "a-extended"
    m, A = load_model(folder), load_model(env["a"])
    assert m.labels == ["aaa", "bbb", "ccc", "ddd"]
    new = m.head.parts[1]
    assert new.labels == ["ddd"] and new.head.n_classes_ == 1
    X = env["X"]
    P = m.predict(X)
    np.testing.assert_array_equal(P[:, :3], A.predict(X))  # the old species: the old head, untouched
    # the new head finds the new species: its column is highest on the windows carrying ddd's tone
    names, stems = sorted(FREQ), list(SCAPES)  # window k of scape i carries names[(k + i) % 4]
    truth = np.array([
        names[(int(r.rsplit("_", 1)[1]) // 5 - 1 + stems.index(r.rsplit("_", 1)[0])) % 4] == "ddd"
        for r in env["keys"]["row_id"]
    ])  # fmt: skip
    assert truth.any()
    from embedkit.metrics import per_class_auc

    assert per_class_auc(truth[:, None], P[:, 3:])[0] > 0.9
    meta = json.loads((folder / "model.json").read_text())
    assert meta["added"]["labels"] == ["ddd"] and meta["cv"]["roc_auc"] > 0.5
    assert not list(out.glob(".a-extended.added-*"))  # the temporary new-labels model is gone


def test_add_to_refuses_another_backbone_or_nothing_new(env, tmp_path, capsys):
    other = _other_backbone(env["a"], tmp_path / "bn")
    args = ["fit", "--backbone", "toy", "--data", str(env["four"]), "--embeddings", str(env["four"] / "emb")]
    out = tmp_path / "models"
    assert cli_main([*args, "--add-to", str(other), "--out", str(out), "--folds", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--add-to" in err[0] and "birdnet" in err[0]
    assert cli_main([*args, "--add-to", str(env["b"]), "--out", str(out), "--folds", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to add" in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_a_composite_ships_in_the_kaggle_kit_and_loads_there(env, tmp_path):
    from embedkit.kaggle_kit import copy_models

    out = tmp_path / "ab"
    cli_main(["merge-models", str(env["a"]), str(env["b"]), "--out", str(out)])
    dest = tmp_path / "kit" / "models"
    dest.mkdir(parents=True)
    assert copy_models([out], dest) == ["ab"]
    shipped = load_model(dest / "ab")  # every hash checked, parts included
    np.testing.assert_array_equal(shipped.predict(env["X"]), load_model(out).predict(env["X"]))

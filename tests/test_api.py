"""The Python API: embedkit.load_model / embed / predict, a cheap import, and the README's Python examples."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import toy_training_set
from test_infer import FREQ, make_scapes

import embedkit
from embedkit.config import ExtractConfig, FitConfig, InferConfig
from embedkit.extract import run_extract
from embedkit.predict.infer import run_infer
from embedkit.store import read_embeddings
from embedkit.train.run import run_fit

ROOT = Path(__file__).resolve().parents[1]


def test_import_embedkit_is_cheap():
    code = (
        "import sys, embedkit\n"
        "heavy = [m for m in ('torch', 'lightgbm', 'sklearn', 'onnxruntime', 'embedkit.backbones') "
        "if m in sys.modules]\n"
        "print(heavy, callable(embedkit.load_model), sorted(embedkit.__all__))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[] True ['__version__', 'embed', 'load_model', 'predict']"


def test_predict_is_both_the_function_and_the_package():
    import embedkit.predict.model as pm

    assert callable(embedkit.predict) and embedkit.predict.model is pm  # the subpackage still works
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        embedkit.nope  # noqa: B018


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("api")
    root = base / "data"
    toy_training_set(root, None, FREQ, durations=(5.0, 7.0, 10.0), seed0=50)
    run_extract(ExtractConfig(backbone="toy", data=str(root), out=str(base / "emb"), progress=False))
    model = run_fit(FitConfig(head="logreg", backbone="toy", data=str(root), embeddings=str(base / "emb"),
                              out=str(base / "models"), folds=0)).folder  # fmt: skip
    return {"base": base, "root": root, "model": model, "scapes": make_scapes(base / "scapes")}


def test_embed_equals_the_extracted_shards(env, tmp_path):
    df = embedkit.embed(env["scapes"], "toy")
    assert list(df.columns) == ["file", "start", "end", "emb"]
    s = run_extract(ExtractConfig(backbone="toy", files=str(env["scapes"]), out=str(tmp_path / "e"),
                                  dtype="float32", progress=False))  # fmt: skip
    keys, X = read_embeddings(s.dataset)
    assert len(df) == len(X) == 28
    got = {(Path(f).name, round(st)): e for f, st, e in zip(df["file"], df["start"], df["emb"], strict=True)}
    for (f, start), x in zip(zip(keys["file"], keys["start_s"], strict=True), X, strict=True):
        np.testing.assert_allclose(got[(Path(f).name, round(start))], x, atol=1e-6)
    one = df[df["file"].str.endswith("s_seven.ogg")]
    assert one["start"].tolist() == [0.0, 5.0] and one["end"].tolist() == [5.0, 10.0]
    hop = embedkit.embed([env["scapes"] / "s_sixty.ogg"], "toy", hop_s=2.5)
    assert len(hop) == 23 and hop["start"].iloc[1] == 2.5  # overlapping windows


def test_predict_equals_infer_with_its_defaults(env, tmp_path):
    cfg = InferConfig(data=str(env["root"]), soundscapes=str(env["scapes"]), models=[str(env["model"])],
                      out=str(tmp_path / "sub.csv"), progress=False)  # fmt: skip
    res = run_infer(cfg)
    df = embedkit.predict(env["scapes"], str(env["model"]))  # TTA 1.25 s and smoothing 0.5, as infer
    assert list(df.columns) == ["file", "start", "end", "label", "score"]
    assert df.attrs["smooth"] == (0.5, "default") and df.attrs["failures"] == {}
    df["row_id"] = [f"{Path(f).stem}_{int(e)}" for f, e in zip(df["file"], df["end"], strict=True)]
    wide = df.pivot(index="row_id", columns="label", values="score").loc[res.row_ids, sorted(FREQ)]
    assert np.abs(wide.to_numpy() - res.probs).max() <= 1e-5
    top = embedkit.predict(env["scapes"] / "s_sixty.ogg", embedkit.load_model(env["model"]), min_score=0.5)
    assert 0 < len(top) < 12 * 4 and (top["score"] >= 0.5).all()


def test_unreadable_files_are_reported_not_dropped(env, tmp_path, capsys):
    bad = tmp_path / "broken.ogg"
    bad.write_bytes(b"not audio at all")
    df = embedkit.predict([env["scapes"] / "s_seven.ogg", bad], env["model"], tta=())
    assert set(df["file"]) == {str(env["scapes"] / "s_seven.ogg")} and len(df) == 2 * 4
    assert list(df.attrs["failures"]) == [str(bad)]
    assert f"could not use {bad}" in capsys.readouterr().err
    from embedkit.errors import UsageError

    with pytest.raises(UsageError, match="no such audio file"):
        embedkit.embed(tmp_path / "missing.wav", "toy")


def readme_python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), flags=re.S | re.M)


@pytest.mark.slow
def test_readme_python_examples_run(tmp_path, monkeypatch):
    """Every ```python block of the README runs verbatim after a small `make demo` (BirdNET, lgbm)."""
    from embedkit.demo.data import make_demo_dataset

    blocks = readme_python_blocks()
    assert len(blocks) >= 2 and any("embedkit.predict(" in b for b in blocks)
    monkeypatch.chdir(tmp_path)
    data = make_demo_dataset(tmp_path / "demo_run" / "data", n_species=3, clips_per_species=3,
                             n_train_soundscapes=0, n_test_soundscapes=1, workers=1)  # fmt: skip
    run_extract(ExtractConfig(backbone="birdnet", data=str(data), out="demo_run/embeddings", max_windows=2,
                              threads=1, progress=False))  # fmt: skip
    run_fit(
        FitConfig(
            head="lgbm",
            backbone="birdnet",
            data=str(data),
            embeddings="demo_run/embeddings",
            out="demo_run/models",
            folds=0,
            params={"n_estimators": 10, "min_data_in_leaf": 2},
        )
    )
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})  # noqa: S102
    assert Path("demo_run/birdnet-lgbm.onnx").is_file()


def test_embed_with_birdnet_makes_the_windows_extract_makes(tmp_path):
    """Every option that decides a window's vector is extract.py's default (chunks, pooling, time)."""
    from conftest import write_audio

    from embedkit.extract.options import WINDOW_OPTIONS

    write_audio(tmp_path / "a" / "call.ogg", 8.0, freq=3000.0, seed=3)
    df = embedkit.embed(tmp_path / "a", "birdnet", threads=1)
    s = run_extract(ExtractConfig(backbone="birdnet", files=str(tmp_path / "a"), out=str(tmp_path / "e"),
                                  dtype="float32", threads=1, progress=False))  # fmt: skip
    _, X = read_embeddings(s.dataset)
    assert len(df) == len(X) == 2 and set(WINDOW_OPTIONS) >= {"pool", "time_pool", "chunk_offsets"}
    np.testing.assert_allclose(np.stack(df["emb"].to_list()), X, atol=1e-4)

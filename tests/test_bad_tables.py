"""Bad tables and model folders, end to end through the ``embedkit`` command.

Every bad table or model folder is a one-line error (exit 2) or a counted, reported inconsistency; ``infer``
never leaves an invalid file under the submission's name. Bad audio: ``test_bad_inputs.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import NaNOnSilence, tone, with_nan_inf, write_audio, write_wav

from embedkit.birdclef import expected_row_ids
from embedkit.cli import main as cli_main

# -- tables --------------------------------------------------------------------------------------------------

LABELS = ["ccc", "aaa", "bbb"]
FREQ = {"aaa": 500.0, "bbb": 1500.0, "ccc": 2500.0}


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    """A small competition-shaped root (train_audio, train.csv, sample_submission.csv, taxonomy.csv),
    its toy embeddings, a fitted logreg model and three soundscapes."""
    base = tmp_path_factory.mktemp("tables")
    root = base / "data"
    rows = []
    for li, label in enumerate(sorted(FREQ)):
        for j in range(3):
            fn = f"{label}/XC{li}{j}.ogg"
            write_audio(root / "train_audio" / fn, 5.0 + 2 * j, freq=FREQ[label], seed=10 * li + j)
            rows.append((label, "[]", fn))
    pd.DataFrame(rows, columns=["primary_label", "secondary_labels", "filename"]).to_csv(
        root / "train.csv", index=False
    )
    (root / "sample_submission.csv").write_text(",".join(["row_id", *LABELS]) + "\n")
    pd.DataFrame({"primary_label": sorted(LABELS)}).to_csv(root / "taxonomy.csv", index=False)
    emb = base / "emb"
    assert (
        cli_main(["extract", "--backbone", "toy", "--data", str(root), "--out", str(emb), "--no-progress"])
        == 0
    )
    models = base / "models"
    assert cli_main([*fit_args(root, emb, models), "--name", "good"]) == 0
    scapes = base / "scapes"
    for i, dur in enumerate([60.0, 12.0, 7.0]):
        write_audio(scapes / f"S{i}.ogg", dur, freq=list(FREQ.values())[i], seed=100 + i)
    return {"base": base, "root": root, "emb": emb, "model": models / "good", "scapes": scapes}


def fit_args(root: Path, emb: Path, out: Path) -> list[str]:
    return ["fit", "--head", "logreg", "--backbone", "toy", "--data", str(root), "--embeddings", str(emb),
            "--out", str(out), "--folds", "0", "--secondary-weight", "1.0"]  # fmt: skip


def _root_copy(ds, dst: Path) -> Path:
    shutil.copytree(ds["root"], dst, ignore=shutil.ignore_patterns("train_audio"))
    return dst


def _edit_train(root: Path, fn) -> None:
    df = pd.read_csv(root / "train.csv", dtype=str, keep_default_na=False)
    fn(df).to_csv(root / "train.csv", index=False)


def _dup_first(df: pd.DataFrame) -> pd.DataFrame:
    d = pd.concat([df, df.iloc[[0]].assign(primary_label="bbb")], ignore_index=True)
    return d


def _malformed(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[0, "secondary_labels"] = "['aaa', 'bbb'"  # unclosed list
    df.loc[1, "secondary_labels"] = "[1, 2]"  # not strings
    df.loc[2, "secondary_labels"] = "['zzz_unknown']"
    return df


TABLE_ERRORS = {
    "train.csv missing a required column": (
        lambda r: _edit_train(r, lambda d: d.drop(columns=["primary_label"])),
        "missing column(s) ['primary_label']",
    ),
    "unknown primary labels": (
        lambda r: _edit_train(r, lambda d: d.assign(primary_label=d["primary_label"].replace("aaa", "qqq"))),
        "primary label(s) of train.csv are not in the label space",
    ),
    "sample_submission without row_id": (
        lambda r: (r / "sample_submission.csv").write_text("id," + ",".join(LABELS) + "\n"),
        "first column must be row_id",
    ),
    "taxonomy and sample disagree": (
        lambda r: pd.DataFrame({"primary_label": ["aaa", "bbb", "ddd"]}).to_csv(
            r / "taxonomy.csv", index=False
        ),
        "taxonomy.csv and sample_submission.csv disagree",
    ),
    "train.csv missing": (lambda r: (r / "train.csv").unlink(), "train.csv not found"),
    "train.csv is not text": (
        lambda r: (r / "train.csv").write_bytes(b"\x00\xff\xfe" * 300),
        "train.csv",
    ),
}


@pytest.mark.parametrize("case", sorted(TABLE_ERRORS))
def test_bad_table_is_a_one_line_error_and_no_model(ds, tmp_path, capsys, case):
    edit, words = TABLE_ERRORS[case]
    root = _root_copy(ds, tmp_path / "data")
    edit(root)
    capsys.readouterr()
    assert cli_main(fit_args(root, ds["emb"], tmp_path / "models")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("embedkit fit: error: ") and words in err[0], err
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize(
    ("edit", "reported"),
    [
        (_dup_first, "duplicated filenames: 1"),
        (_malformed, "malformed secondary: 2"),
        (_malformed, "unknown secondary: 1"),
    ],
)
def test_small_table_inconsistencies_are_counted_and_the_fit_completes(ds, tmp_path, capsys, edit, reported):
    root = _root_copy(ds, tmp_path / "data")
    _edit_train(root, edit)
    capsys.readouterr()
    assert cli_main(fit_args(root, ds["emb"], tmp_path / "models")) == 0
    assert f"[fit] {reported}" in capsys.readouterr().err
    report = json.loads((tmp_path / "models" / "toy-logreg" / "model.json").read_text())["report"]
    key, n = reported.rsplit(": ", 1)
    assert report[key.replace(" ", "_")] == int(n)


def test_infer_and_validate_with_a_sample_without_row_id(ds, tmp_path, capsys):
    sample = tmp_path / "sample.csv"
    sample.write_text("id," + ",".join(LABELS) + "\n")
    out = tmp_path / "submission.csv"
    capsys.readouterr()
    rc = cli_main(infer_args(ds, out, "--sample", str(sample)))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == [f"embedkit infer: error: {sample}: first column must be row_id, found ['id']"]
    assert not out.exists()
    good = tmp_path / "good.csv"
    good.write_text("row_id," + ",".join(LABELS) + "\n")
    assert cli_main(["validate", str(good), "--sample", str(sample)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# -- models --------------------------------------------------------------------------------------------------


def infer_args(ds, out: Path, *extra: str, models: list[Path] | None = None, scapes: Path | None = None):
    folder = scapes or ds["scapes"]
    return ["infer", "--data", str(ds["root"]), "--soundscapes", str(folder), "--out", str(out),
            "--no-progress", "--models", *[str(m) for m in (models or [ds["model"]])], *extra]  # fmt: skip


def _model_copy(ds, dst: Path, **meta) -> Path:
    shutil.copytree(ds["model"], dst)
    doc = json.loads((dst / "model.json").read_text())
    for k, v in meta.items():
        if k == "provenance":
            doc["provenance"].update(v)
        else:
            doc[k] = v
    (dst / "model.json").write_text(json.dumps(doc))
    return dst


def _refit_head(model: Path, dim: int) -> Path:
    """Replace a model folder's head/ by a head fitted on random ``dim``-D embeddings."""
    from embedkit.heads import get_head

    rng = np.random.default_rng(0)
    head = get_head("logreg").fit(rng.standard_normal((30, dim)), np.eye(3)[rng.integers(0, 3, 30)])
    shutil.rmtree(model / "head")
    head.save(model / "head")
    return _rehash(model)


def _rehash(model: Path) -> Path:
    """Re-list a model folder's file hashes after an edit (a folder that is consistent but wrong)."""
    from embedkit.store.manifest import manifest

    doc = json.loads((model / "model.json").read_text())
    doc["files"] = manifest(model, skip=("model.json",))
    (model / "model.json").write_text(json.dumps(doc))
    return model


def _panns_model(ds, dst: Path) -> Path:
    """A complete model folder fitted on PANNs embeddings (2048-D)."""
    prov = {"backbone": "panns", "dim": 2048, "sample_rate": 32000, "weights": "sha256:0123"}
    return _refit_head(_model_copy(ds, dst, provenance=prov, input_dim=2048), 2048)


MODEL_ERRORS = {
    "model of another backbone, without its weights here": (_panns_model, "PANNs Cnn14 weights not found"),
    "model of an unknown backbone": (
        lambda ds, d: _model_copy(ds, d, provenance={"backbone": "nosuch"}),
        "unknown backbone 'nosuch'",
    ),
    "head folder from another backbone": (
        lambda ds, d: _refit_head(_model_copy(ds, d), 16),
        "head/ was fitted on 16-D embeddings and 3 classes, but model.json describes 8-D toy embeddings",
    ),
    "another model format": (
        lambda ds, d: _model_copy(ds, d, format=99, embedkit_version="9.0.0"),
        "model format 99 (embedkit 9.0.0) is not format 2",
    ),
    "model.json missing": (
        lambda ds, d: (_model_copy(ds, d) / "model.json").unlink() or d,
        "not a model folder (no model.json)",
    ),
    "model.json corrupt": (
        lambda ds, d: (_model_copy(ds, d) / "model.json").write_text('{"format": 1, "lab') and d,
        "corrupt",
    ),
    "head folder missing": (
        lambda ds, d: shutil.rmtree(_model_copy(ds, d) / "head") or d,
        "head/head.json: listed in the manifest but missing",
    ),
    "head folder missing, manifest edited to match": (
        lambda ds, d: shutil.rmtree(_model_copy(ds, d) / "head") or _rehash(d),
        "head files missing",
    ),
    "head state file missing": (
        lambda ds, d: (_model_copy(ds, d) / "head" / "state.safetensors").unlink() or d,
        "state.safetensors: listed in the manifest but missing",
    ),
    "head state file truncated": (
        lambda ds, d: _truncate(_model_copy(ds, d) / "head" / "state.safetensors") or d,
        "state.safetensors: changed since it was saved",
    ),
    "head state file truncated, manifest edited to match": (
        lambda ds, d: _truncate(_model_copy(ds, d) / "head" / "state.safetensors") or _rehash(d),
        "cannot load the head",
    ),
    "a file added to the folder": (
        lambda ds, d: (_model_copy(ds, d) / "head" / "extra.bin").write_bytes(b"x") and d,
        "head/extra.bin: a file the manifest does not list",
    ),
    "a symlink inside the folder": (
        lambda ds, d: (_model_copy(ds, d) / "head" / "notes.txt").symlink_to("/etc/hostname") or d,
        "notes.txt: not a regular file or folder",
    ),
}


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize("case", sorted(MODEL_ERRORS))
def test_bad_model_folder_is_a_one_line_error(ds, tmp_path, capsys, monkeypatch, case):
    monkeypatch.setenv("PANNS_CHECKPOINT", str(tmp_path / "no_such_Cnn14.pth"))
    make, words = MODEL_ERRORS[case]
    model = make(ds, tmp_path / "model")
    out = tmp_path / "submission.csv"
    capsys.readouterr()
    assert cli_main(infer_args(ds, out, models=[model])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("embedkit infer: error: ") and words in err[0], err
    assert not out.exists()


def test_model_from_another_embedkit_version_with_the_same_format_loads(ds, tmp_path):
    other = _model_copy(ds, tmp_path / "other", embedkit_version="0.0.1-old")
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert cli_main(infer_args(ds, a)) == 0
    assert cli_main(infer_args(ds, b, models=[other])) == 0
    pd.testing.assert_frame_equal(pd.read_csv(a), pd.read_csv(b))


# -- the submission guard ------------------------------------------------------------------------------------


def test_infer_output_passes_the_validate_command(ds, tmp_path, capsys):
    folder = tmp_path / "scapes"
    shutil.copytree(ds["scapes"], folder)
    write_wav(folder / "nan_samples.wav", with_nan_inf(tone(10.0, 16000)))
    (folder / "corrupt.ogg").write_bytes(np.random.default_rng(1).bytes(5000))
    write_wav(folder / "no_frames.wav", np.zeros((0, 1), np.float32))
    out = tmp_path / "submission.csv"
    assert cli_main(infer_args(ds, out, scapes=folder)) == 0
    sample = ds["root"] / "sample_submission.csv"
    rc = cli_main(["validate", str(out), "--sample", str(sample), "--soundscapes", str(folder)])
    assert rc == 0, capsys.readouterr().err
    df = pd.read_csv(out)
    assert len(df) == len(expected_row_ids(folder)) and np.isfinite(df[LABELS].to_numpy()).all()


def test_infer_with_a_backbone_returning_nan_gives_priors_and_a_valid_submission(
    ds, tmp_path, monkeypatch, capsys
):
    folder = tmp_path / "scapes"
    shutil.copytree(ds["scapes"], folder)
    write_wav(folder / "silent.flac", np.zeros(16000 * 60, np.float32), subtype="PCM_16", fmt="FLAC")
    monkeypatch.setattr("embedkit.backbones.build.build_backbone", lambda prov, **kw: NaNOnSilence())
    out = tmp_path / "submission.csv"
    capsys.readouterr()
    assert cli_main(infer_args(ds, out, scapes=folder)) == 0
    assert "silent.flac: backbone returned NaN/inf for 12 of 12 windows (rows filled with class priors)" in (
        capsys.readouterr().err
    )
    df = pd.read_csv(out).set_index("row_id")
    priors = np.asarray(json.loads((ds["model"] / "model.json").read_text())["priors"])
    np.testing.assert_allclose(
        df.loc[[f"silent_{e}" for e in range(5, 61, 5)]].to_numpy(), np.tile(priors, (12, 1)), atol=1e-6
    )


def test_infer_refuses_two_soundscapes_sharing_a_row_id_before_writing(ds, tmp_path, capsys):
    """Same-named files in two sub-folders would share every row id: one line naming both, nothing written.

    (An invalid submission that only shows after prediction goes to ``*.invalid.csv``:
    tests/test_schemas_models.py.)
    """
    folder = tmp_path / "scapes"
    shutil.copytree(ds["scapes"], folder)
    write_audio(folder / "again" / "S0.ogg", 60.0, seed=9)  # a second S0: every S0 row id twice
    out = tmp_path / "submission.csv"
    capsys.readouterr()
    rc = cli_main(infer_args(ds, out, scapes=folder))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists() and not (tmp_path / "submission.invalid.csv").exists()
    assert len(err.splitlines()) == 1 and "S0" in err and "again" in err, err

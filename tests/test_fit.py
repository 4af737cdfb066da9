"""Fitting: grouped folds, the saved model folder, CV on separable tones, provenance, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_audio

from embedkit.birdclef import DataError, build_targets, load_train
from embedkit.cli import main as cli_main
from embedkit.config import ExtractConfig, FitConfig
from embedkit.errors import UsageError
from embedkit.extract import run_extract
from embedkit.heads import get_head
from embedkit.heads.logreg import LogRegHead
from embedkit.predict.model import ModelError, load_model, save_model
from embedkit.store import StoreError, read_embeddings
from embedkit.train.run import make_folds, read_oof, run_fit

LABELS = ["bbb", "aaa", "ddd", "ccc"]  # sample_submission order (not sorted)
FREQ = {"aaa": 500.0, "bbb": 1500.0, "ccc": 2500.0, "ddd": 3500.0}  # one toy band (1 kHz wide) each
DURS = [5.0, 6.5, 10.0, 12.0]  # 1, 2, 2, 3 windows
AUTHORS = ["ann", "bob", "cyd", "dee"]


def make_root(root: Path) -> Path:
    """A tiny BirdCLEF-like data root: 4 labels x 4 recordings, a distinct tone per label."""
    rows = []
    for li, label in enumerate(sorted(FREQ)):
        for j, dur in enumerate(DURS):
            fn = f"{label}/XC{li}{j}.ogg"
            write_audio(root / "train_audio" / fn, dur, sr=32000, freq=FREQ[label], seed=100 + 10 * li + j)
            sec = "['aaa']" if (label, j) == ("ccc", 0) else "[]"
            rows.append((label, sec, fn, AUTHORS[j]))
    pd.DataFrame(rows, columns=["primary_label", "secondary_labels", "filename", "author"]).to_csv(
        root / "train.csv", index=False
    )
    write_sample(root, LABELS)
    return root


def write_sample(root: Path, labels: list[str]) -> None:
    (root / "sample_submission.csv").write_text(",".join(["row_id", *labels]) + "\n")


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    """(data root, embeddings root) after extracting train_audio with the toy backbone."""
    base = tmp_path_factory.mktemp("fitds")
    root = make_root(base / "data")
    emb = base / "emb"
    s = run_extract(ExtractConfig(backbone="toy", data=str(root), out=str(emb), progress=False))
    assert s.files_done == 16 and s.files_failed == 0
    return root, emb


def cfg_for(ds, out: Path, **kw) -> FitConfig:
    root, emb = ds
    base = dict(head="logreg", backbone="toy", data=str(root), embeddings=str(emb), out=str(out), folds=3)
    return FitConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def fitted(ds, tmp_path_factory):
    out = tmp_path_factory.mktemp("fitted") / "models"
    return run_fit(cfg_for(ds, out, name="m1", secondary_weight=1.0))  # tests below count secondary labels


# -- folds ---------------------------------------------------------------------------------------------------


def _one_fold_per_group(groups, fold) -> bool:
    return all(len(set(fold[groups == g])) == 1 for g in np.unique(groups))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_make_folds_keeps_groups_together(seed):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 25, 400)
    strata = groups % 4  # class is a property of the recording
    fold = make_folds(groups, strata, 5, seed=seed)
    assert fold.shape == (400,) and fold.dtype.kind == "i"
    assert set(fold) == set(range(5))
    assert _one_fold_per_group(groups, fold)


def test_make_folds_on_extracted_files_and_authors(ds):
    root, emb = ds
    keys, _ = read_embeddings(emb / "toy" / "train_audio")
    train = load_train(root)
    files = keys["file"].to_numpy()
    strata = np.array([f.split("/")[0] for f in files])
    fold = make_folds(files, strata, 3)
    assert _one_fold_per_group(files, fold) and set(fold) == {0, 1, 2}
    author = dict(zip(train["filename"], train["author"], strict=True))
    authors = np.array([author[f] for f in files])
    fold = make_folds(authors, strata, 3, seed=1)
    assert _one_fold_per_group(authors, fold) and set(fold) == {0, 1, 2}


def test_make_folds_needs_enough_groups():
    with pytest.raises(UsageError, match="2 groups"):
        make_folds(np.array(["a", "a", "b", "b", "b"]), np.zeros(5, int), 3)


# -- a complete fit ------------------------------------------------------------------------------------------


def test_fit_writes_the_model_folder(fitted, ds):
    folder = fitted.folder
    assert folder.name == "m1"
    for name in ("model.json", "head", "cv_per_class.csv", "oof.parquet"):
        assert (folder / name).exists(), name
    hidden = [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]
    assert folder.is_dir() and not folder.is_symlink() and hidden == []  # a real folder; no temp folders
    meta = json.loads((folder / "model.json").read_text())
    assert meta["head"] == "logreg" and meta["labels"] == LABELS
    assert meta["provenance"]["backbone"] == "toy" and meta["provenance"]["dim"] == 8
    assert meta["config"]["folds"] == 3
    assert set(meta["cv"]) == {"roc_auc", "cmap_pad5", "macro_ap"}
    # priors = class frequency over the training windows (ccc/XC20 has secondary aaa)
    keys, _ = read_embeddings(ds[1] / "toy" / "train_audio")
    Y, keep, _ = build_targets(keys, load_train(ds[0]), LABELS)
    assert keep.all() and meta["n_windows"] == len(Y) == 32
    np.testing.assert_allclose(meta["priors"], Y.mean(0), rtol=1e-6)
    table = pd.read_csv(folder / "cv_per_class.csv")
    assert list(table["label"]) == LABELS
    assert list(table["n_recordings"]) == [4, 5, 4, 4]  # aaa: 4 primary + 1 secondary
    assert list(table["n_windows"]) == list((Y >= 0.5).sum(0))


def test_cv_score_is_high_on_separable_tones(fitted):
    assert fitted.scores["roc_auc"] > 0.9
    assert fitted.scores["macro_ap"] > 0.8
    table = pd.read_csv(fitted.folder / "cv_per_class.csv")
    assert np.isfinite(table["roc_auc"]).all() and (table["roc_auc"] > 0.8).all()


def test_read_oof(fitted):
    keys, Y, P = read_oof(fitted.folder)
    assert list(keys.columns) == ["file", "window", "row_id", "fold"]
    assert Y.shape == P.shape == (32, len(LABELS)) == fitted.oof.shape
    np.testing.assert_array_equal(P, fitted.oof)
    assert set(keys["fold"]) == {0, 1, 2}
    assert keys.groupby("file")["fold"].nunique().max() == 1
    assert ((P >= 0) & (P <= 1)).all()
    truth = [LABELS.index(f.split("/")[0]) for f in keys["file"]]
    assert (Y[np.arange(len(Y)), truth] == 1).all()  # rows are aligned with their files


def test_saved_head_predicts_like_a_fresh_application(fitted, ds):
    _, X = read_embeddings(ds[1] / "toy" / "train_audio")
    model = load_model(fitted.folder)
    P = model.predict(X)
    assert P.dtype == np.float32 and P.shape == (len(X), len(LABELS))
    # apply the saved head by hand: standardise, linear, sigmoid
    h = model.head
    assert h.trained_.all()
    Z = ((X - h.mean_) / h.scale_) @ h.coef_.T + h.intercept_
    np.testing.assert_allclose(P, 1 / (1 + np.exp(-Z.astype(np.float64))), atol=1e-6)
    # the fitted model separates the tones on its own training windows
    keys, _ = read_embeddings(ds[1] / "toy" / "train_audio")
    truth = keys["file"].str.split("/").str[0].to_numpy()
    assert (np.array(LABELS)[P.argmax(1)] == truth).mean() > 0.9


def test_save_then_load_gives_identical_probabilities(fitted, ds, tmp_path):
    keys, X = read_embeddings(ds[1] / "toy" / "train_audio")
    Y, _, _ = build_targets(keys, load_train(ds[0]), LABELS)
    head = get_head("logreg", C=0.5).fit(X, Y)
    before = head.predict_proba(X)
    prov = load_model(fitted.folder).provenance
    folder = save_model(tmp_path / "h", head, "logreg", LABELS, prov, {"priors": Y.mean(0)})
    np.testing.assert_array_equal(load_model(folder).predict(X), before)


def test_model_check_refuses_other_provenance(fitted):
    model = load_model(fitted.folder)
    model.check(dict(model.provenance))  # same: fine
    with pytest.raises(StoreError, match="dim"):
        model.check({**model.provenance, "dim": 16})
    with pytest.raises(StoreError, match="backbone"):
        model.check({**model.provenance, "backbone": "birdnet"})
    with pytest.raises(StoreError, match="window_s"):
        model.check({**model.provenance, "window_s": 3.0})
    model.check({**model.provenance, "created": "another day", "split": "test"})  # informational only
    with pytest.raises(ModelError, match="8-D"):
        model.predict(np.zeros((2, 16), np.float32))


def test_group_by_author_keeps_authors_in_one_fold(ds, tmp_path):
    res = run_fit(cfg_for(ds, tmp_path / "models", group_by="author", name="by-author"))
    keys, _, _ = read_oof(res.folder)
    train = load_train(ds[0])
    author = dict(zip(train["filename"], train["author"], strict=True))
    keys["author"] = keys["file"].map(author)
    assert keys.groupby("author")["fold"].nunique().max() == 1
    assert keys["fold"].nunique() == 3


def test_no_cv_fit_writes_no_oof(ds, tmp_path):
    res = run_fit(cfg_for(ds, tmp_path / "models", folds=0))
    assert res.folder.name == "toy-logreg" and res.scores == {} and res.oof is None
    assert (res.folder / "model.json").is_file() and not (res.folder / "oof.parquet").exists()
    assert json.loads((res.folder / "model.json").read_text())["cv"] == {}


# -- bad input: errors before anything is written ------------------------------------------------------------


def _copy_root(ds, dst: Path) -> Path:
    shutil.copytree(ds[0], dst, ignore=shutil.ignore_patterns("train_audio"))
    return dst


def test_no_shards_for_backbone(ds, tmp_path):
    out = tmp_path / "models"
    with pytest.raises(StoreError, match="no embedding shards"):
        run_fit(cfg_for(ds, out, backbone="birdnet"))
    assert not out.exists()


def test_train_csv_without_filename_column(ds, tmp_path):
    root = _copy_root(ds, tmp_path / "data")
    pd.read_csv(root / "train.csv").rename(columns={"filename": "path"}).to_csv(
        root / "train.csv", index=False
    )
    out = tmp_path / "models"
    with pytest.raises(DataError, match="filename"):
        run_fit(cfg_for(ds, out, data=str(root)))
    assert not out.exists()


def test_label_space_missing_a_primary_label(ds, tmp_path):
    root = _copy_root(ds, tmp_path / "data")
    write_sample(root, [c for c in LABELS if c != "ccc"])
    out = tmp_path / "models"
    with pytest.raises(DataError, match="ccc"):
        run_fit(cfg_for(ds, out, data=str(root)))
    assert not out.exists()


def test_group_by_author_without_author_column(ds, tmp_path):
    root = _copy_root(ds, tmp_path / "data")
    pd.read_csv(root / "train.csv").drop(columns=["author"]).to_csv(root / "train.csv", index=False)
    out = tmp_path / "models"
    with pytest.raises(DataError, match="author"):
        run_fit(cfg_for(ds, out, data=str(root), group_by="author"))
    assert not out.exists()


def test_more_folds_than_recordings(ds, tmp_path):
    out = tmp_path / "models"
    with pytest.raises(UsageError, match="16 groups"):
        run_fit(cfg_for(ds, out, folds=20))
    assert not out.exists()


def _cli_args(ds, out: Path, *extra: str) -> list[str]:
    root, emb = ds
    return [
        "fit",
        "--head", "logreg",
        "--backbone", "toy",
        "--data", str(root),
        "--embeddings", str(emb),
        "--out", str(out),
        "--folds", "2",
        *extra,
    ]  # fmt: skip


def test_cli_fit_exit_codes(ds, tmp_path, capsys):
    out = tmp_path / "models"
    assert cli_main(_cli_args(ds, out, "--backbone", "birdnet")) == 2
    assert "no embedding shards" in capsys.readouterr().err
    assert cli_main(_cli_args(ds, out, "--data", str(tmp_path / "nowhere"))) == 2
    assert cli_main(_cli_args(ds, out, "--folds", "40")) == 2
    assert not out.exists()
    assert cli_main(_cli_args(ds, out, "--name", "ok", "--params", "C=0.5")) == 0
    meta = json.loads((out / "ok" / "model.json").read_text())
    assert meta["params"]["C"] == 0.5 and meta["config"]["folds"] == 2


def test_cli_fit_unknown_head_is_exit_2(ds, tmp_path, capsys):
    assert cli_main(_cli_args(ds, tmp_path / "models", "--head", "nohead")) == 2
    assert "unknown head" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


# -- replacing a model ---------------------------------------------------------------------------------------


def test_second_fit_replaces_the_model_only_when_complete(ds, tmp_path, monkeypatch, capsys):
    out = tmp_path / "models"
    first = run_fit(cfg_for(ds, out, name="same", folds=0, params={"C": 1.0}))
    doc = (first.folder / "model.json").read_text()
    head_files = {p.name: p.read_bytes() for p in (first.folder / "head").iterdir()}

    def no_fit(self, X, Y, sample_weight):
        raise RuntimeError("head fit failed")

    with monkeypatch.context() as m:
        m.setattr(LogRegHead, "_fit", no_fit)
        with pytest.raises(RuntimeError, match="head fit failed"):
            run_fit(cfg_for(ds, out, name="same", folds=0, params={"C": 0.01}))
    assert (first.folder / "model.json").read_text() == doc

    real_save = LogRegHead.save

    def half_save(self, folder):
        real_save(self, folder)  # the new head's files are written ...
        raise OSError("disk full")  # ... then the save fails

    with monkeypatch.context() as m:
        m.setattr(LogRegHead, "save", half_save)
        with pytest.raises(OSError, match="disk full"):
            run_fit(cfg_for(ds, out, name="same", folds=0, params={"C": 0.01}))
    assert (first.folder / "model.json").read_text() == doc
    assert {p.name: p.read_bytes() for p in (first.folder / "head").iterdir()} == head_files
    assert sorted(p.name for p in out.iterdir()) == ["same"]  # no temps
    assert load_model(first.folder).head.C == 1.0

    capsys.readouterr()
    second = run_fit(cfg_for(ds, out, name="same", folds=0, params={"C": 0.01}))
    assert second.folder == first.folder
    assert json.loads((second.folder / "model.json").read_text())["params"]["C"] == 0.01
    assert load_model(second.folder).head.C == 0.01
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 2 and names[1] == "same" and names[0].startswith(".same.prev-")  # + previous version
    err = capsys.readouterr().err
    assert f"replaced {out / 'same'}; the previous version is kept as {out / names[0]}" in err
    assert load_model(out / names[0]).head.C == 1.0  # kept: embedkit models rollback restores it

"""What ``fit.py`` says about its recipe; ``--params`` and ``--unlabelled`` checked before data is read."""

from pathlib import Path

import pytest
from test_fit import make_root

from embedkit.cli import main


@pytest.fixture(scope="module")
def fitds(tmp_path_factory):
    base = tmp_path_factory.mktemp("recipe")
    root = make_root(base / "data")
    assert main(["extract", "--backbone", "toy", "--data", str(root), "--out", str(base / "emb"),
                 "--no-progress"]) == 0  # fmt: skip
    return root, base / "emb"


def fit(fitds, out: Path, *extra: str) -> int:
    root, emb = fitds
    return main(["fit", "--backbone", "toy", "--data", str(root), "--embeddings", str(emb), "--out", str(out),
                 "--folds", "2", *extra])  # fmt: skip


def test_fit_says_which_recipe_parts_are_on_and_why_default_ones_are_off(fitds, tmp_path, capsys):
    assert fit(fitds, tmp_path / "m") == 0
    err = capsys.readouterr().err
    assert "zero-shot prior: off: the shards in" in err
    assert "have no logits: extract with --save-logits" in err
    assert "weak negatives: off: no --unlabelled set" in err
    assert "fold 1/2:" in err and "(proto epochs=60), ETA" in err and "s refit" in err  # progress
    assert "refit on all" in err and "refit done" in err
    more = ["--zero-shot", "off", "--class-weight", "0.5", "--weak-negatives", "0"]
    assert fit(fitds, tmp_path / "m2", *more) == 0
    err = capsys.readouterr().err
    assert "zero-shot prior: off (--zero-shot off)" in err and "class weights: on (exponent 0.5)" in err
    assert "weak negatives: off (--weak-negatives 0)" in err


def test_unlabelled_without_shards_says_so(fitds, tmp_path, capsys):
    assert fit(fitds, tmp_path / "m", "--unlabelled", "train_soundscapes") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no embedding shards in" in err and "train_soundscapes" in err
    assert "logits" not in err and "python extract.py --backbone toy --split train_soundscapes" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "param, says",
    [("C=abc", "C must be a number"), ("D=1", "has no parameter 'D'"),
     ("max_iter=2.5", "must be an integer")],
)
def test_bad_params_are_refused_before_data_is_read(fitds, tmp_path, capsys, param, says):
    root, _ = fitds
    rc = main(["fit", "--head", "logreg", "--backbone", "toy", "--data", str(root), "--embeddings",
               str(tmp_path / "nothing"),
               "--out", str(tmp_path / "m"), "--params", param])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1  # refused before the (missing) embeddings are looked at
    assert says in err and "its parameters: C=0.01 class_weight='balanced' max_iter=200" in err
    assert not (tmp_path / "m").exists()

"""Crafted LightGBM boosters (issue 24, item 2): checked in Python, never handed to LightGBM's native parser.

Each crash of issue 24 is reproduced on a saved lgbm model whose ``head/booster.txt`` is edited and whose
hashes are recomputed (``fuzz_tamper.rehash_model``: anyone can do that). The loader runs in a subprocess
(``fuzz_worker.py --once``: ``load_model`` + predict, errors printed the CLI's way) so that a SIGSEGV, a
SIGABRT or a hang fails the test instead of killing pytest; each must now be one line and exit 2.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from fuzz_booster import fix_tree_sizes, get_field, insert_line, set_field, set_token, split_tree
from fuzz_tamper import copy_real, rehash_model

from embedkit.heads._lgbm_text import BoosterTextError, parse_model_text, safe_model_string
from embedkit.heads.lgbm import LGBMHead, merge_model_strings
from embedkit.predict.model import load_model, save_model

D = 8
WORKER = Path(__file__).with_name("fuzz_worker.py")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A saved lgbm model: 8-D inputs, 3 labels (one never positive, so 2 trained outputs)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, D)).astype(np.float32)
    Y = np.stack([X[:, 0] > 0.3, X[:, 1] + X[:, 2] > 0, np.zeros(300, bool)], axis=1).astype(np.float32)
    head = LGBMHead(n_estimators=5, num_leaves=5, min_data_in_leaf=5, feature_fraction=1.0).fit(X, Y)
    folder = tmp_path_factory.mktemp("lgbm") / "m"
    save_model(folder, head, "lgbm", ["a", "b", "c"], {"backbone": "toy", "dim": D}, {})
    return folder.resolve()


def crafted(model: Path, dst: Path, edit, fix_sizes: bool = True) -> Path:
    """A copy of ``model`` whose booster text is ``edit(text)``, tree_sizes and hashes recomputed."""
    copy_real(model, dst)
    booster = dst / "head" / "booster.txt"
    text = edit(booster.read_text())
    booster.write_text(fix_tree_sizes(text) if fix_sizes else text)
    rehash_model(dst)
    return dst


def load_in_subprocess(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(WORKER), "--once", "model", str(folder), str(D)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _children(value: str):
    def edit(text):
        k = split_tree(text)
        n = int(get_field(text, "num_leaves", k)) - 1
        text = set_field(text, "left_child", " ".join([value] * n), k)
        return set_field(text, "right_child", " ".join([value] * n), k)

    return edit


#: issue 24's crashes: name -> (edit of the booster text, recompute tree_sizes, what the message names)
CRASHES = {
    "left_child out of range (SIGSEGV)": (
        lambda t: set_token(t, "left_child", 0, "1000", split_tree(t)), True, "left_child"),
    "split_feature out of range (SIGSEGV)": (
        lambda t: set_token(t, "split_feature", 0, "1000000000", split_tree(t)), True, "split_feature"),
    "a cycle (hang)": (_children("0"), True, "reached twice"),
    "wrong tree_sizes (SIGABRT)": (
        lambda t: set_token(t, "tree_sizes", 0, str(int(get_field(t, "tree_sizes").split()[0]) + 7)),
        False, "tree_sizes"),
    "cut in half (SIGSEGV)": (lambda t: t[: len(t) // 2], False, "cut short"),
    "negative leaf index": (
        lambda t: set_token(t, "left_child", 0, "-60", split_tree(t)), True, "or a leaf"),
    "NaN threshold": (lambda t: set_token(t, "threshold", 0, "nan", split_tree(t)), True, "threshold"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CRASHES))
def test_crafted_booster_is_one_line_and_exit_2(model, tmp_path, case):
    edit, fix, word = CRASHES[case]
    folder = crafted(model, tmp_path / "m", edit, fix_sizes=fix)
    res = load_in_subprocess(folder)
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "booster.txt" in lines[0] and word in lines[0], res.stderr[-2000:]
    assert "[LightGBM]" not in res.stderr


def test_untouched_model_loads_and_predicts_exactly_as_lightgbm(model):
    """The canonical text LightGBM gets is the same model: identical raw scores."""
    m = load_model(model)
    original = lgb.Booster(model_str=(model / "head" / "booster.txt").read_text())
    X = np.random.default_rng(1).normal(size=(500, D))
    assert np.array_equal(m.head.booster_.predict(X, raw_score=True), original.predict(X, raw_score=True))
    assert load_in_subprocess(model).returncode == 0


def test_padded_merge_of_early_stopped_classes_passes_the_checks():
    """Models of different lengths are padded with single-leaf trees (num_leaves=1, empty arrays)."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, D))
    texts = [
        lgb.train({"objective": "binary", "verbosity": -1, "num_leaves": 4}, lgb.Dataset(X, X[:, j] > 0),
                  num_boost_round=r).model_to_string()
        for j, r in ((0, 3), (1, 5))
    ]  # fmt: skip
    merged = merge_model_strings(texts)
    booster = lgb.Booster(model_str=safe_model_string(merged, D, 2))
    ref = lgb.Booster(model_str=merged)
    assert booster.num_trees() == 10 and np.array_equal(
        booster.predict(X, raw_score=True), ref.predict(X, raw_score=True)
    )


def _text(model: Path) -> str:
    return (model / "head" / "booster.txt").read_text()


#: more edits, checked in-process (pure Python: the text never reaches LightGBM): edit -> message part
REFUSED = {
    "categorical split": (lambda t: set_token(t, "decision_type", 0, "1", split_tree(t)), "decision_type"),
    "unknown decision bits": (lambda t: set_token(t, "decision_type", 0, "14", split_tree(t)), "decision"),
    "num_class 2e9": (lambda t: set_field(t, "num_class", "2000000000"), "num_class"),
    "num_class 2e9 text": (lambda t: set_field(t, "num_class", "2e9"), "num_class"),
    "num_tree_per_iteration": (lambda t: set_field(t, "num_tree_per_iteration", "1"), "num_tree_per"),
    "max_feature_idx": (lambda t: set_field(t, "max_feature_idx", "99"), "max_feature_idx"),
    "objective num_class": (
        lambda t: set_field(t, "objective", "multiclassova num_class:2000000000 sigmoid:1"), "objective"),
    "duplicated key": (lambda t: insert_line(t, "threshold=0 0 0 0", split_tree(t)), "twice"),
    "unknown key": (lambda t: insert_line(t, "cat_threshold=5", split_tree(t)), "unexpected line"),
    "header unknown key": (lambda t: insert_line(t, "average_output"), "unexpected line"),
    "num_leaves larger than arrays": (lambda t: set_field(t, "num_leaves", "9", split_tree(t)), "num_leaves"),
    "num_leaves huge": (lambda t: set_field(t, "num_leaves", "2000000000", split_tree(t)), "num_leaves"),
    "leaf_value inf": (lambda t: set_token(t, "leaf_value", 1, "inf", split_tree(t)), "leaf_value"),
    "leaf_value 1e400": (lambda t: set_token(t, "leaf_value", 1, "1e400", split_tree(t)), "leaf_value"),
    "threshold text": (lambda t: set_token(t, "threshold", 0, "0x10", split_tree(t)), "threshold"),
    "shared subtree": (_children("1"), "reached twice"),
    "orphan node": (lambda t: set_token(t, "right_child", 0, "-1", split_tree(t)), "leaf"),
    "linear tree": (lambda t: set_field(t, "is_linear", "1", split_tree(t)), "is_linear"),
    "no end of trees": (lambda t: t.replace("end of trees", "end of tree"), "cut short"),
    "tree renumbered": (lambda t: t.replace("Tree=1\n", "Tree=7\n"), "Tree=1"),
    "a tree fewer": (lambda t: t[: t.index("Tree=1\n")] + t[t.index("end of trees") :], "multiple"),
    "non-ASCII": (lambda t: t.replace("version=v4", "version=v4é"), "non-ASCII"),
    "NUL byte": (lambda t: t.replace("num_cat=0", "num_cat=0\0"), "NUL"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_malformed_booster_text_is_refused_naming_the_field(model, case):
    edit, word = REFUSED[case]
    text = fix_tree_sizes(edit(_text(model)))
    with pytest.raises(BoosterTextError, match=word):
        parse_model_text(text, D, 2)


def test_the_head_must_match_the_booster(model):
    """num_class must be the head's trained classes, max_feature_idx + 1 its input dimension."""
    text = _text(model)
    parse_model_text(text, D, 2)
    with pytest.raises(BoosterTextError, match="num_class"):
        parse_model_text(text, D, 3)
    with pytest.raises(BoosterTextError, match="max_feature_idx"):
        parse_model_text(text, D + 1, 2)


@pytest.mark.parametrize("jobs", [{"a": 1}, "8", float("nan"), 1e6, 100_000, None, -1, 64])
def test_n_jobs_of_a_loaded_head_is_a_number_capped_at_the_cores(model, tmp_path, jobs):
    """A head.json n_jobs that is not an integer within the schema's bound (1e6 is a float; 100000 is over
    the 1024 of embedkit/schemas/limits.py) is refused on load; an allowed one uses at most the cores."""
    import json

    from embedkit.heads.lgbm import _n_cores
    from embedkit.predict.model import ModelError

    m = copy_real(model, tmp_path / "m")
    meta = json.loads((m / "head" / "head.json").read_text())
    meta["params"]["n_jobs"] = jobs
    (m / "head" / "head.json").write_text(json.dumps(meta))
    rehash_model(m)
    if isinstance(jobs, dict | str | float) or (isinstance(jobs, int) and jobs > 1024):
        with pytest.raises(ModelError, match="n_jobs"):
            load_model(m)
    else:
        head = load_model(m).head
        assert 1 <= head._cores() <= _n_cores()
        assert head.predict_proba(np.zeros((2, D))).shape == (2, 3)

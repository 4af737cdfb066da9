"""BirdCLEF tables: label space, train.csv, multi-hot targets. Submissions: ``test_submission.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_sample

from embedkit.birdclef import (
    DataError,
    build_targets,
    load_labels,
    load_train,
    parse_secondary,
)

LABELS = ["zeb", "aaa", "mmm", "123"]  # deliberately not sorted: order must be kept


def _sample(root: Path, labels=LABELS, first: str = "row_id") -> Path:
    return write_sample(root, labels, first)


def _taxonomy(root: Path, labels) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "taxonomy.csv"
    pd.DataFrame({"primary_label": labels, "common_name": [f"name {c}" for c in labels]}).to_csv(
        path, index=False
    )
    return path


def _train(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["primary_label", "secondary_labels", "filename"])


def _keys(files: list[str], windows: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "file": [f for f, n in zip(files, windows, strict=True) for _ in range(n)],
            "window": [k for n in windows for k in range(n)],
        }
    )


# -- label space ---------------------------------------------------------------------------------------------


def test_load_labels_from_sample_keeps_column_order(tmp_path):
    _sample(tmp_path)
    assert load_labels(tmp_path) == LABELS


def test_load_labels_sample_order_wins_over_taxonomy_order(tmp_path):
    _sample(tmp_path)
    _taxonomy(tmp_path, sorted(LABELS))
    assert load_labels(tmp_path) == LABELS


def test_load_labels_falls_back_to_taxonomy_in_file_order(tmp_path):
    _taxonomy(tmp_path, ["ccc", "aaa", "bbb"])
    assert load_labels(tmp_path) == ["ccc", "aaa", "bbb"]


def test_load_labels_without_either_file(tmp_path):
    with pytest.raises(DataError, match="sample_submission.csv or taxonomy.csv"):
        load_labels(tmp_path)


def test_sample_without_row_id_is_a_data_error(tmp_path):
    _sample(tmp_path, first="id")
    with pytest.raises(DataError, match="row_id"):
        load_labels(tmp_path)


def test_taxonomy_sample_mismatch_names_the_difference(tmp_path):
    _sample(tmp_path)
    _taxonomy(tmp_path, ["zeb", "aaa", "mmm", "qqq"])
    with pytest.raises(DataError) as ei:
        load_labels(tmp_path)
    msg = str(ei.value)
    assert "disagree" in msg
    assert "'123'" in msg and "'qqq'" in msg
    assert "'aaa'" not in msg  # only the differing codes are named


def test_repeated_label_codes_are_refused(tmp_path):
    _taxonomy(tmp_path, ["aaa", "bbb", "aaa"])
    with pytest.raises(DataError, match="repeated"):
        load_labels(tmp_path)


# -- train.csv -----------------------------------------------------------------------------------------------


def test_load_train_missing_required_column(tmp_path):
    df = pd.DataFrame({"primary_label": ["aaa"], "file": ["aaa/x.ogg"]})
    df.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(DataError, match="filename"):
        load_train(tmp_path)


def test_load_train_missing_file(tmp_path):
    with pytest.raises(DataError, match="train.csv not found"):
        load_train(tmp_path)


def test_load_train_counts_and_drops_duplicated_filenames(tmp_path):
    df = pd.DataFrame(
        {
            "primary_label": ["aaa", "bbb", "aaa", "zeb"],
            "filename": ["a/1.ogg", "a/1.ogg", "a/2.ogg", "a/2.ogg"],
        }
    )
    df.to_csv(tmp_path / "train.csv", index=False)
    train = load_train(tmp_path)
    assert train.attrs["duplicated_filenames"] == 2
    assert list(train["filename"]) == ["a/1.ogg", "a/2.ogg"]
    assert list(train["primary_label"]) == ["aaa", "aaa"]  # first row kept
    assert list(train["secondary_labels"]) == ["[]", "[]"]  # column added when absent
    _, _, rep = build_targets(_keys(["a/1.ogg"], [1]), train, LABELS)
    assert rep.duplicated_filenames == 2


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("[]", []),
        ("", []),
        ("['a', 'b']", ["a", "b"]),
        ('["x"]', ["x"]),
        ("['a', '']", ["a"]),
        ("[", None),
        ("not a list", None),
        ("[1, 2]", None),
        ("{'a': 1}", None),
        ("['a', 3]", None),
    ],
)
def test_parse_secondary(cell, expected):
    assert parse_secondary(cell) == expected


# -- targets -------------------------------------------------------------------------------------------------


def _idx(code: str) -> int:
    return LABELS.index(code)


def test_build_targets_primary_and_secondary_weight():
    train = _train([("aaa", "['mmm', 'zeb']", "f1.ogg"), ("mmm", "[]", "f2.ogg")])
    keys = _keys(["f1.ogg", "f2.ogg"], [2, 1])
    for sw in (1.0, 0.3):
        Y, keep, rep = build_targets(keys, train, LABELS, secondary_weight=sw)
        assert Y.dtype == np.float32 and Y.shape == (3, len(LABELS))
        assert keep.all()
        exp = np.zeros((3, len(LABELS)), np.float32)
        exp[:2, _idx("aaa")] = 1.0
        exp[:2, _idx("mmm")] = sw
        exp[:2, _idx("zeb")] = sw
        exp[2, _idx("mmm")] = 1.0
        np.testing.assert_array_equal(Y, exp)
        assert (rep.windows, rep.files) == (3, 2)
    Y0, _, _ = build_targets(keys, train, LABELS, secondary_weight=0.0)
    assert (Y0.sum(1) == 1).all()  # only the primary label
    assert Y0[0, _idx("aaa")] == 1.0


def test_secondary_equal_to_primary_keeps_primary_at_one():
    train = _train([("aaa", "['aaa']", "f1.ogg")])
    Y, _, _ = build_targets(_keys(["f1.ogg"], [1]), train, LABELS, secondary_weight=0.5)
    assert Y[0, _idx("aaa")] == 1.0


def test_unknown_and_malformed_secondary_are_counted_not_fatal():
    train = _train(
        [
            ("aaa", "['nope', 'zeb', 'gone']", "f1.ogg"),
            ("zeb", "['nope']", "f2.ogg"),
            ("mmm", "[broken", "f3.ogg"),
        ]
    )
    Y, keep, rep = build_targets(_keys(["f1.ogg", "f2.ogg", "f3.ogg"], [1, 1, 1]), train, LABELS)
    assert rep.unknown_secondary == 3
    assert rep.unknown_secondary_codes == ["gone", "nope"]
    assert rep.malformed_secondary == 1
    assert keep.all()
    assert Y[2].sum() == 1.0 and Y[2, _idx("mmm")] == 1.0  # malformed row keeps its primary
    assert Y[0, _idx("zeb")] == 1.0
    lines = "\n".join(rep.lines())
    assert "unknown secondary: 3" in lines and "malformed secondary: 1" in lines


def test_unknown_primary_label_is_a_data_error():
    train = _train([("aaa", "[]", "f1.ogg"), ("xyz", "[]", "f2.ogg")])
    with pytest.raises(DataError, match="xyz"):
        build_targets(_keys(["f1.ogg"], [1]), train, LABELS)


def test_files_not_in_train_and_rows_without_embeddings_are_counted():
    train = _train([("aaa", "[]", "f1.ogg"), ("zeb", "[]", "f2.ogg"), ("mmm", "[]", "f3.ogg")])
    keys = _keys(["x.ogg", "f1.ogg", "y.ogg", "f3.ogg"], [2, 3, 1, 1])
    Y, keep, rep = build_targets(keys, train, LABELS)
    np.testing.assert_array_equal(keep, [False, False, True, True, True, False, True])
    assert Y.shape == (4, len(LABELS))
    assert (Y[:3, _idx("aaa")] == 1).all() and Y[3, _idx("mmm")] == 1
    assert rep.shard_files_not_in_train == 2
    assert rep.train_rows_without_embeddings == 1
    assert (rep.windows, rep.files) == (4, 2)


def test_no_matching_files_gives_empty_targets():
    train = _train([("aaa", "[]", "f1.ogg")])
    Y, keep, rep = build_targets(_keys(["other.ogg"], [2]), train, LABELS)
    assert Y.shape == (0, len(LABELS)) and not keep.any()
    assert rep.shard_files_not_in_train == 1 and rep.train_rows_without_embeddings == 1

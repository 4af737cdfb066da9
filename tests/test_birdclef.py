"""BirdCLEF tables: label space, train.csv, multi-hot targets, submission writing and validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_audio

from embedkit.birdclef import (
    DataError,
    build_targets,
    expected_row_ids,
    load_labels,
    load_train,
    parse_secondary,
    validate_submission,
    write_submission,
)
from embedkit.cli import main as cli_main

LABELS = ["zeb", "aaa", "mmm", "123"]  # deliberately not sorted: order must be kept


def _sample(root: Path, labels=LABELS, first: str = "row_id") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "sample_submission.csv"
    path.write_text(",".join([first, *labels]) + "\n" + ",".join(["x_5"] + ["0.5"] * len(labels)) + "\n")
    return path


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


# -- writing -------------------------------------------------------------------------------------------------


def test_write_submission_clips_and_replaces_non_finite(tmp_path):
    probs = np.array([[0.25, -0.5, 1.5, np.nan], [np.inf, -np.inf, 0.125, 1.0]])
    out = write_submission(tmp_path / "sub" / "submission.csv", ["a_5", "a_10"], probs, LABELS)
    df = pd.read_csv(out)
    assert list(df.columns) == ["row_id", *LABELS]
    assert list(df["row_id"]) == ["a_5", "a_10"]
    np.testing.assert_allclose(df[LABELS].to_numpy(), [[0.25, 0.0, 1.0, 0.0], [1.0, 0.0, 0.125, 1.0]])
    assert validate_submission(out, LABELS, ["a_5", "a_10"]) == []
    assert [p.name for p in out.parent.iterdir()] == ["submission.csv"]  # no temp file left


def test_write_submission_shape_mismatch_leaves_old_file(tmp_path):
    out = write_submission(tmp_path / "s.csv", ["a_5"], np.full((1, 4), 0.5), LABELS)
    before = out.read_bytes()
    with pytest.raises(ValueError, match="do not match"):
        write_submission(out, ["a_5", "a_10"], np.zeros((1, 4)), LABELS)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]


def test_write_submission_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    out = write_submission(tmp_path / "s.csv", ["a_5"], np.full((1, 4), 0.5), LABELS)
    before = out.read_bytes()

    def boom(self, path, *a, **k):
        Path(path).write_text("row_id,zeb\npartial")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(DataError, match="disk full"):
        write_submission(out, ["b_5"], np.zeros((1, 4)), LABELS)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]


# -- validation ----------------------------------------------------------------------------------------------


def _good(ids=("s_5", "s_10", "s_15")) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.uniform(0, 1, (len(ids), len(LABELS))), columns=LABELS)
    df.insert(0, "row_id", list(ids))
    return df


def test_validate_accepts_a_good_submission(tmp_path):
    df = _good()
    assert validate_submission(df, LABELS, list(df["row_id"])) == []
    path = tmp_path / "s.csv"
    df.to_csv(path, index=False)
    assert validate_submission(path, LABELS, ["s_10", "s_5", "s_15"]) == []  # order of rows is free


def test_validate_wrong_first_column_with_labels_in_order():
    # regression: this raised StopIteration (label columns compared for order although they were in order)
    df = _good().rename(columns={"row_id": "id"})
    problems = validate_submission(df, LABELS)
    assert problems[0] == "first column must be row_id, found ['id']"
    assert not any("label columns" in p for p in problems)  # the labels themselves are fine


def test_validate_wrong_first_column():
    df = _good()
    df = df[[LABELS[0], "row_id", *LABELS[1:]]]
    problems = validate_submission(df, LABELS)
    assert any("first column must be row_id" in p for p in problems)


def test_validate_columns_out_of_order():
    df = _good()[["row_id", LABELS[0], LABELS[2], LABELS[1], LABELS[3]]]
    problems = validate_submission(df, LABELS)
    assert len(problems) == 1
    assert "out of order" in problems[0] and repr(LABELS[2]) in problems[0]


def test_validate_missing_and_extra_label_columns():
    df = _good().drop(columns=[LABELS[1]])
    df["zzz"] = 0.5
    (p,) = validate_submission(df, LABELS)
    assert "differ" in p and repr(LABELS[1]) in p and "'zzz'" in p


def test_validate_missing_extra_and_duplicated_row_ids():
    df = _good(("s_5", "s_10", "s_10", "t_5"))
    problems = validate_submission(df, LABELS, ["s_5", "s_10", "s_15"])
    text = "\n".join(problems)
    assert len(problems) == 3, problems
    assert "1 duplicated row_id" in text and "'s_10'" in text
    assert "1 row_id(s) missing" in text and "'s_15'" in text
    assert "1 unexpected row_id" in text and "'t_5'" in text


def test_validate_nan_and_non_numeric_values():
    df = _good()
    df.loc[1, LABELS[2]] = np.nan
    (p,) = validate_submission(df, LABELS)
    assert "1 value(s)" in p
    df = _good().astype({LABELS[0]: object})
    df.loc[0, LABELS[0]] = "high"
    (p,) = validate_submission(df, LABELS)
    assert "non-numeric" in p


def test_validate_values_outside_unit_interval():
    df = _good()
    df.loc[0, LABELS[1]] = 1.5
    (p,) = validate_submission(df, LABELS)
    assert "outside [0, 1]" in p and "1.5" in p
    df = _good()
    df.loc[2, LABELS[3]] = -0.01
    (p,) = validate_submission(df, LABELS)
    assert "outside [0, 1]" in p


def test_validate_unreadable_file(tmp_path):
    problems = validate_submission(tmp_path / "nope.csv", LABELS)
    assert len(problems) == 1 and problems[0].startswith("cannot read")


def test_header_only_submission_is_valid(tmp_path):
    out = write_submission(tmp_path / "s.csv", [], np.zeros((0, len(LABELS))), LABELS)
    assert validate_submission(out, LABELS, []) == []


# -- expected row ids and the validate command ---------------------------------------------------------------


@pytest.fixture
def soundscapes(tmp_path) -> Path:
    folder = tmp_path / "soundscapes"
    for name, dur, seed in (("a_half", 0.5, 1), ("b_seven", 7.0, 2), ("c_sixty", 60.0, 3), ("d_61", 61.0, 4)):
        write_audio(folder / f"{name}.ogg", dur, sr=32000, seed=seed)
    return folder


def _ids(stem: str, ends) -> list[str]:
    return [f"{stem}_{e}" for e in ends]


EXPECTED = (
    _ids("a_half", [5])
    + _ids("b_seven", [5, 10])
    + _ids("c_sixty", range(5, 61, 5))
    + _ids("d_61", range(5, 66, 5))
)


def test_expected_row_ids(soundscapes):
    ids = expected_row_ids(soundscapes)
    assert ids == EXPECTED
    assert [sum(i.startswith(s + "_") for i in ids) for s in ("a_half", "b_seven", "c_sixty", "d_61")] == [
        1,
        2,
        12,
        13,
    ]


def test_expected_row_ids_of_missing_folder_and_unreadable_header(tmp_path):
    assert expected_row_ids(tmp_path / "missing") == []
    (tmp_path / "bad.ogg").write_bytes(np.random.default_rng(0).bytes(2000))
    assert expected_row_ids(tmp_path) == _ids("bad", range(5, 61, 5))  # 60 s assumed


def test_cli_validate_exit_codes(tmp_path, soundscapes, capsys):
    sample = _sample(tmp_path / "data")
    sub = write_submission(tmp_path / "sub.csv", EXPECTED, np.full((len(EXPECTED), len(LABELS)), 0.1), LABELS)
    assert cli_main(["validate", str(sub), "--sample", str(sample)]) == 0
    assert cli_main(["validate", str(sub), "--sample", str(sample), "--soundscapes", str(soundscapes)]) == 0
    assert "valid" in capsys.readouterr().out

    short = write_submission(tmp_path / "short.csv", EXPECTED[:-1], np.zeros((len(EXPECTED) - 1, 4)), LABELS)
    assert cli_main(["validate", str(short), "--sample", str(sample)]) == 0  # no soundscapes: ids unchecked
    capsys.readouterr()
    rc = cli_main(["validate", str(short), "--sample", str(sample), "--soundscapes", str(soundscapes)])
    assert rc == 1
    assert "d_61_65" in capsys.readouterr().err

    bad = pd.read_csv(sub)
    bad.loc[3, LABELS[0]] = 2.0
    bad.to_csv(tmp_path / "bad.csv", index=False)
    assert cli_main(["validate", str(tmp_path / "bad.csv"), "--sample", str(sample)]) == 1

    reordered = _sample(tmp_path / "other", labels=[LABELS[1], LABELS[0], *LABELS[2:]])
    assert cli_main(["validate", str(sub), "--sample", str(reordered)]) == 1
    assert "out of order" in capsys.readouterr().err


def test_write_submission_unwritable_place_is_one_line_error(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="cannot write") as e:
        write_submission(blocker / "sub.csv", ["a_5"], np.zeros((1, 1)), ["x"])
    assert "\n" not in str(e.value)

"""BirdCLEF submissions: writing (atomic, clipped), validation, expected row ids, the validate command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_audio, write_sample

from embedkit.birdclef import DataError, expected_row_ids, validate_submission, write_submission
from embedkit.cli import main as cli_main

LABELS = ["zeb", "aaa", "mmm", "123"]  # deliberately not sorted: order must be kept


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
    sample = write_sample(tmp_path / "data", LABELS)
    varied = np.linspace(0.05, 0.95, len(EXPECTED) * len(LABELS)).reshape(len(EXPECTED), len(LABELS))
    sub = write_submission(tmp_path / "sub.csv", EXPECTED, varied, LABELS)  # a constant one is flagged
    assert cli_main(["validate", str(sub), "--sample", str(sample)]) == 0
    assert cli_main(["validate", str(sub), "--sample", str(sample), "--soundscapes", str(soundscapes)]) == 0
    assert "valid" in capsys.readouterr().out

    short = write_submission(tmp_path / "short.csv", EXPECTED[:-1], varied[:-1], LABELS)
    assert cli_main(["validate", str(short), "--sample", str(sample)]) == 0  # no soundscapes: ids unchecked
    capsys.readouterr()
    rc = cli_main(["validate", str(short), "--sample", str(sample), "--soundscapes", str(soundscapes)])
    assert rc == 1
    assert "d_61_65" in capsys.readouterr().err

    bad = pd.read_csv(sub)
    bad.loc[3, LABELS[0]] = 2.0
    bad.to_csv(tmp_path / "bad.csv", index=False)
    assert cli_main(["validate", str(tmp_path / "bad.csv"), "--sample", str(sample)]) == 1

    reordered = write_sample(tmp_path / "other", [LABELS[1], LABELS[0], *LABELS[2:]])
    assert cli_main(["validate", str(sub), "--sample", str(reordered)]) == 1
    assert "out of order" in capsys.readouterr().err


def test_write_submission_unwritable_place_is_one_line_error(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="cannot write") as e:
        write_submission(blocker / "sub.csv", ["a_5"], np.zeros((1, 1)), ["x"])
    assert "\n" not in str(e.value)

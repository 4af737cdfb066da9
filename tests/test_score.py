"""``embedkit score``: competition metric of a submission against wide or long truth, --labels, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from embedkit.cli import main
from embedkit.evaluate.score import long_to_wide, score_tables
from embedkit.metrics import birdclef_score


def _files(tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"s{i}_{e}" for i in range(3) for e in (5, 10, 15, 20)]
    y = (rng.random((len(ids), 3)) < 0.4).astype(int)
    y[0] = [1, 1, 1]
    y[1] = [0, 0, 0]
    p = np.clip(y * 0.6 + rng.random(y.shape) * 0.5, 0, 1)
    truth = pd.DataFrame(y, columns=["aaa", "bbb", "ccc"]).assign(row_id=ids)[["row_id", "aaa", "bbb", "ccc"]]
    sub = pd.DataFrame(p, columns=["aaa", "bbb", "ccc"]).assign(row_id=ids, ddd=0.1)
    truth.to_csv(tmp_path / "truth.csv", index=False)
    sub.to_csv(tmp_path / "sub.csv", index=False)
    return truth, sub


def test_score_cli_matches_metric_and_labels_subset(tmp_path, capsys):
    truth, sub = _files(tmp_path)
    assert main(["score", str(tmp_path / "sub.csv"), "--truth", str(tmp_path / "truth.csv"),
                 "--out", str(tmp_path / "pc.csv")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    want = birdclef_score(truth[["aaa", "bbb", "ccc"]].to_numpy(), sub[["aaa", "bbb", "ccc"]].to_numpy())
    assert f"score {want:.4f}" in out and "| bbb |" in out
    assert list(pd.read_csv(tmp_path / "pc.csv")["label"]) == ["aaa", "bbb", "ccc"]
    (tmp_path / "labs.txt").write_text("aaa\nccc\n")
    assert main(["score", str(tmp_path / "sub.csv"), "--truth", str(tmp_path / "truth.csv"),
                 "--labels", str(tmp_path / "labs.txt")]) == 0  # fmt: skip
    sub2 = birdclef_score(truth[["aaa", "ccc"]].to_numpy(), sub[["aaa", "ccc"]].to_numpy())
    assert f"score {sub2:.4f}" in capsys.readouterr().out


def test_score_bad_input_is_one_line_error(tmp_path, capsys):
    truth, sub = _files(tmp_path)
    sub.iloc[2:].to_csv(tmp_path / "short.csv", index=False)
    assert main(["score", str(tmp_path / "short.csv"), "--truth", str(tmp_path / "truth.csv")]) == 2
    assert "lacks 2" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "sub.csv"), "--truth", str(tmp_path / "truth.csv"),
                 "--labels", "zzz"]) == 2  # fmt: skip
    assert main(["score", str(tmp_path / "nope.csv"), "--truth", str(tmp_path / "truth.csv")]) == 2


def test_long_truth_to_windows():
    df = pd.DataFrame({"filename": ["a.ogg", "a.ogg"], "start": ["00:00:03", "00:00:12"],
                       "end": ["00:00:06", "00:00:15"], "primary_label": ["x;y", "y"]})  # fmt: skip
    w = long_to_wide(df, ["x", "y", "z"]).set_index("row_id")
    assert list(w.index) == ["a_5", "a_10", "a_15"]
    np.testing.assert_array_equal(w.to_numpy(), [[1, 1, 0], [1, 1, 0], [0, 1, 0]])
    sub = pd.DataFrame({"x": [0.9, 0.8, 0.1], "y": [0.1, 0.2, 0.3], "z": 0.0}, index=w.index)
    score, table, n = score_tables(sub, w, None)
    assert n == 3 and score == pytest.approx(1.0) and np.isnan(table["auc"].iloc[1])

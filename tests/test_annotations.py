"""Labels in and out as Raven tables: window targets from boxes, ``fit.py --annotations`` on toy shards,
search hits ↔ Raven tables ↔ labelled tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import tone

from embedkit.cli import main as cli_main
from embedkit.config import ExtractConfig
from embedkit.extract import run_extract
from embedkit.predict.model import load_model
from embedkit.search.raven import read_raven_hits, write_hit_tables, write_labelled_tables
from embedkit.tables import raven_frame, read_raven, write_raven
from embedkit.train.annotations import window_targets


def test_window_targets_overlap_negatives_and_fully_annotated():
    starts = np.arange(6) * 5.0
    ends = starts + 5
    boxes = pd.DataFrame(
        {"begin_s": [1.0, 8.0, 21.0, 26.0], "end_s": [3.0, 12.0, 22.0, 29.0],
         "label": ["aaa", "bbb", "Noise", "aaa"]}
    )  # fmt: skip
    Y, keep = window_targets(starts, ends, boxes, ["aaa", "bbb"], 0.5, fully=False)
    # w0 holds all of box 1; box 2 (8-12 s) is split 2 s / 2 s: 50 % in w1 and in w2; w4 holds the noise box
    assert Y.tolist() == [[1, 0], [0, 1], [0, 1], [0, 0], [0, 0], [1, 0]]
    assert keep.tolist() == [True, True, True, False, True, True]
    Y, keep = window_targets(starts, ends, boxes, ["aaa", "bbb"], 0.6, fully=True)
    # 60 %: box 2 is positive nowhere, and w1, w2 touch it, so they stay out; w3 touches nothing: negative
    assert Y[:, 1].sum() == 0 and keep.tolist() == [True, False, False, True, True, True]


@pytest.fixture
def shards(tmp_path):
    """Toy shards of two 30 s recordings with the same name in two folders, tones at known times."""
    sr, rec = 32000, tmp_path / "rec"
    for site, seq in (("siteA", "ab-ab-"), ("siteB", "-ba-ba")):
        x = np.concatenate(
            [tone(5.0, sr, {"a": 500.0, "b": 3500.0}[c], seed=k) if c != "-" else
             0.05 * np.random.default_rng(k).standard_normal(5 * sr).astype(np.float32)
             for k, c in enumerate(seq)]
        )  # fmt: skip
        (rec / site).mkdir(parents=True)
        sf.write(str(rec / site / "x.ogg"), x, sr, format="OGG", subtype="VORBIS")
    run_extract(
        ExtractConfig(backbone="toy", files=str(rec), name="field", out=str(tmp_path / "emb"), progress=False)
    )
    tables = tmp_path / "tables"
    sites = {"siteA": [(0.5, 4, "a"), (5.5, 9, "b"), (15.5, 19, "a"), (20.5, 24, "b")],
             "siteB": [(5.5, 9, "b"), (10.5, 14, "a"), (20.5, 24, "b"), (25.5, 29, "a")]}  # fmt: skip
    for site, boxes in sites.items():
        b = pd.DataFrame(boxes, columns=["s", "e", "c"])
        write_raven(
            tables / site / "x.Table.1.selections.txt", raven_frame(b["s"], b["e"], b["c"], 300, 4000)
        )
    return tmp_path, tables


def test_fit_annotations_cli_on_same_named_recordings(shards, capsys):
    base, tables = shards
    args = ["fit", "--backbone", "toy", "--embeddings", str(base / "emb"), "--split", "field", "--out",
            str(base / "models"), "--folds", "0", "--annotations", str(tables)]  # fmt: skip
    assert cli_main([*args, "--annotated-fully", "--name", "m"]) == 0
    err = capsys.readouterr().err
    assert "8 boxes in 2 recordings -> 8 positive and 4 negative windows; 2 classes" in err
    m = load_model(base / "models" / "m")
    assert m.labels == ["a", "b"] and m.meta["n_windows"] == 12
    # without --annotated-fully the unboxed (noise) windows are left out
    assert cli_main([*args, "--name", "m2"]) == 0
    assert "-> 8 positive and 0 negative windows" in capsys.readouterr().err
    # a table that matches no recording, and a broken one: named, one line
    bad = base / "bad" / "other.selections.txt"
    bad.parent.mkdir()
    bad.write_text("Selection\tBegin Time (s)\n1\t2\n")
    assert cli_main([*args[:-1], str(bad), "--name", "m3"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert len(err) == 1 and "no selection table" in err[0]
    bad2 = base / "bad" / "siteA" / "x.selections.txt"
    bad2.parent.mkdir()
    bad2.write_text("Selection\tBegin Time (s)\n1\t2\n")
    assert cli_main([*args[:-1], str(base / "bad"), "--name", "m3"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert len(err) == 1 and "End Time (s)" in err[0] and "x.selections.txt" in err[0]


def test_hits_to_raven_and_back_to_annotations(tmp_path):
    hits = pd.DataFrame(
        {"rank": [1, 2, 3], "score": [0.9, 0.8, 0.7], "file": ["a/x.ogg", "b/x.ogg", "a/x.ogg"],
         "window": [0, 3, 2], "start_s": [0.0, 15.0, 10.0], "end_s": [5.0, 20.0, 15.0],
         "audio": ["/r/a/x.ogg", "/r/b/x.ogg", "/r/a/x.ogg"], "dataset": "/emb/d", "species": "sp1",
         "label": ""}
    )  # fmt: skip
    paths = write_hit_tables(hits, tmp_path / "hits")
    assert sorted(p.relative_to(tmp_path / "hits").as_posix() for p in paths) == [
        "a/x.selections.txt", "b/x.selections.txt"]  # fmt: skip
    # a reviewer types y / n into Raven's Label column
    t = tmp_path / "hits" / "a" / "x.selections.txt"
    df = pd.read_csv(t, sep="\t", dtype=str, keep_default_na=False)
    df["Label"] = ["n", "y"]  # sorted by time: window 0 (rank 1), window 2 (rank 3)
    df.to_csv(t, sep="\t", index=False)
    back = read_raven_hits(tmp_path / "hits")
    assert back["rank"].tolist() == [1, 2, 3] and back["label"].tolist() == ["n", "", "y"]
    assert back[["file", "window", "species"]].values.tolist() == [
        ["a/x.ogg", 0, "sp1"], ["b/x.ogg", 3, "sp1"], ["a/x.ogg", 2, "sp1"]]  # fmt: skip
    out = write_labelled_tables(back, tmp_path / "labelled")
    assert [p.relative_to(tmp_path / "labelled").as_posix() for p in out] == ["a/x.selections.txt"]
    got = read_raven(out[0])
    assert got[["begin_s", "end_s", "label"]].values.tolist() == [[0.0, 5.0, "negative"], [10.0, 15.0, "sp1"]]

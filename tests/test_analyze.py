"""``embedkit analyze``: per-recording detection tables in every format, resume, parts, relative paths;
Raven tables read back; infer refuses same-named soundscapes in sub-folders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import tone, write_audio

from embedkit.cli import main as cli_main
from embedkit.config import ExtractConfig, FitConfig
from embedkit.extract import run_extract
from embedkit.tables import read_raven, table_key
from embedkit.tables.detections import FORMATS, read_detections
from embedkit.train.run import run_fit

FREQ = {"aaa": 500.0, "bbb": 2500.0, "ccc": 5500.0}


def _recording(path, parts, sr=32000):
    """A recording of 5 s tone segments, one per label in ``parts`` (None = quiet noise)."""
    rng = np.random.default_rng(len(parts))
    x = np.concatenate(
        [tone(5.0, sr, FREQ[p], seed=k) if p else 0.05 * rng.standard_normal(5 * sr).astype(np.float32)
         for k, p in enumerate(parts)]
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, format="OGG", subtype="VORBIS")  # as the training clips: same noise floor
    return path


def make_env(base):
    """A toy model of three tone classes and a nested folder of recordings (two same-named files)."""
    root = base / "classes"
    for label, f in FREQ.items():
        for j, dur in enumerate([5.0, 10.0, 10.0]):
            write_audio(root / label / f"{label}{j}.ogg", dur, sr=32000, freq=f, seed=10 * j + int(f) % 7)
    emb = base / "emb"
    run_extract(ExtractConfig(backbone="toy", files=str(root), name="classes", out=str(emb), progress=False))
    fit = FitConfig(head="logreg", backbone="toy", data=str(root), embeddings=str(emb), split="classes",
                    out=str(base / "models"), name="m", folds=0, params={"C": 1.0})  # fmt: skip
    model = run_fit(fit).folder
    rec = base / "rec"
    _recording(rec / "siteA" / "20240501_060000.ogg", ["aaa", None, "bbb"])
    _recording(rec / "siteB" / "20240501_060000.ogg", ["ccc", "ccc", None, "aaa"])
    _recording(rec / "top.ogg", [None, "bbb"])
    return {"base": base, "model": model, "rec": rec, "classes": root}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_env(tmp_path_factory.mktemp("analyze"))


def analyze(env, out, *extra):
    args = ["analyze", "--models", str(env["model"]), "--audio", str(env["rec"]), "--out", str(out)]
    return cli_main([*args, "--no-progress", "--smooth", "0", *extra])


def test_folder_per_class_data_writes_train_and_taxonomy(env):
    made = env["base"] / "models" / "data-classes"
    train = pd.read_csv(made / "train.csv")
    assert sorted(pd.read_csv(made / "taxonomy.csv")["primary_label"]) == sorted(FREQ)
    assert set(train["filename"]) == {f"{lab}/{lab}{j}.ogg" for lab in FREQ for j in range(3)}
    assert (train["primary_label"] == train["filename"].str.split("/").str[0]).all()


def test_raven_tables_per_recording_by_relative_path(env, tmp_path):
    out = tmp_path / "out"
    assert analyze(env, out, "--recursive") == 0
    a = out / "siteA" / "20240501_060000.selections.txt"
    b = out / "siteB" / "20240501_060000.selections.txt"
    assert a.is_file() and b.is_file() and (out / "top.selections.txt").is_file()
    ta, tb = read_raven(a), read_raven(b)
    for col in ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                "High Freq (Hz)", "Annotation", "Score"]:  # fmt: skip
        assert col in ta.columns
    # each tone segment is found where it is, with its label; the quiet segment holds nothing
    assert set(zip(ta["begin_s"], ta["label"], strict=True)) == {(0.0, "aaa"), (10.0, "bbb")}
    assert set(zip(tb["begin_s"], tb["label"], strict=True)) == {(0.0, "ccc"), (5.0, "ccc"), (15.0, "aaa")}
    assert (ta["high_hz"] == 8000).all() and (ta["Score"].astype(float) >= 0.5).all()
    det = pd.read_csv(out / "detections.csv")
    assert set(det["file"]) == {"siteA/20240501_060000.ogg", "siteB/20240501_060000.ogg", "top.ogg"}
    summ = pd.read_csv(out / "summary.csv").set_index(["file", "label"])
    assert summ.loc[("siteB/20240501_060000.ogg", "ccc"), "detections"] == 2
    assert summ.loc[("siteB/20240501_060000.ogg", "ccc"), "minutes"] == 1
    # not --recursive: only the folder's own files
    assert analyze(env, tmp_path / "flat") == 0
    assert pd.read_csv(tmp_path / "flat" / "detections.csv")["file"].unique().tolist() == ["top.ogg"]


def test_resume_skips_done_tables_and_refuses_other_settings(env, tmp_path, capsys):
    out = tmp_path / "out"
    assert analyze(env, out, "--recursive", "--part", "0/2") == 0
    n0 = len(list(out.rglob("*.selections.txt")))
    assert analyze(env, out, "--recursive", "--part", "1/2") == 0
    tables = sorted(out.rglob("*.selections.txt"))
    assert len(tables) == 3 and 0 < n0 < 3  # the two parts share the files
    stamp = {t: t.stat().st_mtime_ns for t in tables}
    capsys.readouterr()
    assert analyze(env, out, "--recursive") == 0
    assert (
        "0 recordings analysed" in capsys.readouterr().err
        and {t: t.stat().st_mtime_ns for t in tables} == stamp
    )
    assert len(pd.read_csv(out / "detections.csv")["file"].unique()) == 3
    assert analyze(env, out, "--recursive", "--min-score", "0.9") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "min_score" in err[0] and "--overwrite" in err[0]
    assert analyze(env, out, "--recursive", "--min-score", "0.9", "--overwrite") == 0


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "raven"])
def test_every_format_reads_back_the_same_detections(env, tmp_path, fmt):
    assert analyze(env, tmp_path / "raven", "--recursive", "--hop-s", "2.5") == 0
    assert analyze(env, tmp_path / fmt, "--recursive", "--hop-s", "2.5", "--format", fmt) == 0
    rel = "siteB/20240501_060000.ogg"
    want = read_detections(tmp_path / "raven" / f"siteB/20240501_060000{FORMATS['raven']}", "raven", rel)
    got = read_detections(tmp_path / fmt / f"siteB/20240501_060000{FORMATS[fmt]}", fmt, rel)
    assert len(want) > 4  # hop 2.5 s: windows straddling two segments too
    pd.testing.assert_frame_equal(got, want, atol=1e-3)
    if fmt == "kaleidoscope":
        k = pd.read_csv(tmp_path / fmt / f"siteB/20240501_060000{FORMATS[fmt]}")
        assert list(k.columns[:5]) == ["INDIR", "FOLDER", "IN FILE", "OFFSET", "DURATION"]
        assert set(k["FOLDER"]) == {"siteB"} and set(k["overlap"]) == {2.5}


def test_labels_subset_and_unknown_label(env, tmp_path, capsys):
    assert analyze(env, tmp_path / "o", "--recursive", "--labels", "ccc") == 0
    assert set(pd.read_csv(tmp_path / "o" / "detections.csv")["label"]) == {"ccc"}
    assert analyze(env, tmp_path / "o2", "--labels", "zzz") == 2
    assert "zzz" in capsys.readouterr().err


def test_raven_reader_keeps_one_row_per_selection_and_strips_table_names(tmp_path):
    t = tmp_path / "site" / "rec1.Table.1.selections.txt"
    t.parent.mkdir()
    t.write_text(
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tSpecies\n"
        "1\tWaveform 1\t1\t1.5\t3.0\t0\t0\tbbb\n1\tSpectrogram 1\t1\t1.5\t3.0\t2000\t3000\tbbb\n"
        "2\tSpectrogram 1\t1\t7\t8\t400\t600\taaa\n"
    )
    df = read_raven(t)
    assert df[["begin_s", "end_s", "low_hz", "label"]].values.tolist() == [
        [1.5, 3.0, 2000, "bbb"],
        [7, 8, 400, "aaa"],
    ]
    assert table_key(t, tmp_path) == "site/rec1"


def test_infer_refuses_same_named_soundscapes_in_subfolders(env, tmp_path, capsys):
    args = ["infer", "--models", str(env["model"]), "--soundscapes", str(env["rec"]), "--data", str(tmp_path)]
    assert cli_main([*args, "--out", str(tmp_path / "s.csv"), "--no-progress"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert len(err) == 1 and "siteA/20240501_060000.ogg" in err[0] and "siteB/20240501_060000.ogg" in err[0]
    assert not (tmp_path / "s.csv").exists()


def test_unreadable_recording_is_named_and_retried_and_files_given_one_by_one(env, tmp_path, capsys):
    import shutil

    rec = tmp_path / "rec"
    shutil.copytree(env["rec"], rec)
    (rec / "siteA" / "broken.ogg").write_bytes(b"not audio at all" * 100)
    out = tmp_path / "out"
    args = ["analyze", "--models", str(env["model"]), "--out", str(out), "--no-progress", "--smooth", "0"]
    assert cli_main([*args, "--audio", str(rec), "--recursive"]) == 1
    err = capsys.readouterr().err
    assert "could not analyse siteA/broken.ogg" in err and "3 recordings analysed" in err
    assert not (out / "siteA" / "broken.selections.txt").exists() and (out / "top.selections.txt").is_file()
    assert (
        cli_main([*args, "--audio", str(rec), "--recursive"]) == 1
    )  # the done ones skipped, the bad one retried
    assert "0 recordings analysed" in capsys.readouterr().err
    # files given one by one: named relative to their common folder
    files = [str(rec / "siteA" / "20240501_060000.ogg"), str(rec / "siteB" / "20240501_060000.ogg")]
    assert cli_main([*args[:4], str(tmp_path / "two"), *args[5:], "--audio", *files]) == 0
    assert sorted(pd.read_csv(tmp_path / "two" / "detections.csv")["file"].unique()) == [
        "siteA/20240501_060000.ogg", "siteB/20240501_060000.ogg"]  # fmt: skip


def test_interrupt_keeps_complete_tables_only_and_a_rerun_finishes(env, tmp_path, monkeypatch):
    import embedkit.predict.analyze as an

    real, calls = an.write_detections, []

    def write_then_stop(path, *a, **kw):
        calls.append(path)
        if len(calls) == 2:  # Ctrl-C while the second table is being written
            raise KeyboardInterrupt
        return real(path, *a, **kw)

    monkeypatch.setattr(an, "write_detections", write_then_stop)
    out = tmp_path / "out"
    assert analyze(env, out, "--recursive") == 130
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert left == ["analysis.json", calls[0].relative_to(out).as_posix()]  # no partial or temp file
    monkeypatch.setattr(an, "write_detections", real)
    assert analyze(env, out, "--recursive") == 0
    assert len(list(out.rglob("*.selections.txt"))) == 3
    assert len(pd.read_csv(out / "detections.csv")["file"].unique()) == 3


def test_birdclef_root_without_csv_is_not_taken_for_class_folders(tmp_path, capsys):
    write_audio(tmp_path / "data" / "train_audio" / "aaa" / "x.ogg", 2.0)
    write_audio(tmp_path / "data" / "train_audio" / "bbb" / "y.ogg", 2.0)
    args = ["fit", "--backbone", "toy", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "models")]
    assert cli_main(args) == 2
    assert "sample_submission.csv or taxonomy.csv" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


def test_engine_ray_without_ray_is_one_line_with_the_install_hint(env, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the ray extra were not installed
    assert analyze(env, tmp_path / "out", "--engine", "ray") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'embedkit[ray]'" in err[0]
    assert not (tmp_path / "out").exists()  # refused before anything is written

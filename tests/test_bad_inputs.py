"""The matrix of bad inputs, end to end through the ``embedkit`` command.

Every bad audio file gets a named reason in the failures table (or is embedded, finite, with the windows of
the audio it has) and the run completes; every bad table or model folder is a one-line error (exit 2) or a
counted, reported inconsistency; ``infer`` never leaves an invalid file under the submission's name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import ToyBackbone, tone, write_audio

from embedkit.audio import duration_s, row_id, window_spans
from embedkit.birdclef import expected_row_ids, validate_submission
from embedkit.cli import main as cli_main
from embedkit.config import ExtractConfig
from embedkit.extract import run_extract
from embedkit.store import read_embeddings, read_failures

# -- audio ---------------------------------------------------------------------------------------------------


def _wav(path: Path, x: np.ndarray, sr: int = 16000, subtype: str = "FLOAT", fmt: str = "WAV") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, format=fmt, subtype=subtype)
    return path


def _with_nan_inf(x: np.ndarray) -> np.ndarray:
    y = x.copy()
    y[1000:1500] = np.nan
    y[40000:40010] = np.inf
    y[90000:90010] = -np.inf
    return y


def _extreme(x: np.ndarray) -> np.ndarray:
    y = x * 1e30
    y[::7] = 3.4e38
    return y


def make_audio_matrix(folder: Path) -> dict[str, tuple]:
    """Write the bad-audio matrix: relative path → ("ok", windows) or ("fail", words of the reason)."""
    cases: dict[str, tuple] = {}
    (folder / "bad").mkdir(parents=True)
    good = write_audio(folder / "ok" / "reference.ogg", 12.0)
    cases["ok/reference.ogg"] = ("ok", 3)
    (folder / "bad" / "zero_bytes.ogg").write_bytes(b"")
    cases["bad/zero_bytes.ogg"] = ("fail", "empty file (0 bytes)")
    data = good.read_bytes()
    (folder / "bad" / "truncated_mid.ogg").write_bytes(data[: int(len(data) * 0.6)])
    cases["bad/truncated_mid.ogg"] = ("ok", None)  # decodes to the pages that are there (header agrees)
    (folder / "bad" / "truncated_header.ogg").write_bytes(data[:300])
    cases["bad/truncated_header.ogg"] = ("fail", "cannot decode")
    (folder / "bad" / "truncated_first_page.ogg").write_bytes(data[: int(len(data) * 0.05)])
    cases["bad/truncated_first_page.ogg"] = ("fail", "no audio samples")
    (folder / "bad" / "random_bytes.ogg").write_bytes(np.random.default_rng(3).bytes(8000))
    cases["bad/random_bytes.ogg"] = ("fail", "cannot decode")
    _wav(folder / "bad" / "wav_named.ogg", tone(7.0, 16000), subtype="PCM_16")
    cases["bad/wav_named.ogg"] = ("ok", 2)
    _wav(folder / "bad" / "header_only.wav", np.zeros((0, 1), np.float32))
    cases["bad/header_only.wav"] = ("fail", "no audio samples")
    os.symlink(folder / "nowhere.ogg", folder / "bad" / "dangling link.ogg")
    cases["bad/dangling link.ogg"] = ("fail", "missing file (broken symlink)")
    write_audio(folder / "channels" / "stereo.ogg", 6.0, channels=2)
    cases["channels/stereo.ogg"] = ("ok", 2)
    _wav(folder / "channels" / "four.flac", tone(6.0, 32000, channels=4), 32000, "PCM_16", "FLAC")
    cases["channels/four.flac"] = ("ok", 2)
    for sr in (8000, 16000, 22050, 44100, 48000, 96000):
        write_audio(folder / "rates" / f"sr{sr}.ogg", 6.0, sr=sr, freq=min(1000.0, sr / 4))
        cases[f"rates/sr{sr}.ogg"] = ("ok", 2)
    write_audio(folder / "short" / "0.3s.ogg", 0.3)
    cases["short/0.3s.ogg"] = ("ok", 1)
    _wav(folder / "values" / "all_zero.flac", np.zeros(16000 * 6, np.float32), subtype="PCM_16", fmt="FLAC")
    cases["values/all_zero.flac"] = ("ok", 2)
    x = tone(10.0, 16000, seed=5)
    _wav(folder / "values" / "nan_inf.wav", _with_nan_inf(x))
    cases["values/nan_inf.wav"] = ("ok", 2)
    _wav(folder / "values" / "nan_inf_as_zero.wav", np.nan_to_num(_with_nan_inf(x), posinf=0.0, neginf=0.0))
    cases["values/nan_inf_as_zero.wav"] = ("ok", 2)
    _wav(folder / "values" / "extreme.wav", _extreme(x))
    cases["values/extreme.wav"] = ("ok", 2)
    _wav(folder / "values" / "extreme_clipped.wav", np.clip(_extreme(x), -1, 1))
    cases["values/extreme_clipped.wav"] = ("ok", 2)
    _wav(folder / "values" / "full_scale_square.wav", np.sign(x) + 0.0, subtype="PCM_16")
    cases["values/full_scale_square.wav"] = ("ok", 2)
    write_audio(folder / "names" / "with spaces & ünïcödé 鳥.ogg", 7.0)
    cases["names/with spaces & ünïcödé 鳥.ogg"] = ("ok", 2)
    write_audio(folder / "names" / "ダイサギ" / "XC1.ogg", 5.0)
    cases["names/ダイサギ/XC1.ogg"] = ("ok", 1)
    return cases


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("badaudio")
    cases = make_audio_matrix(base / "data" / "train_audio")
    args = ["extract", "--backbone", "toy", "--data", str(base / "data"), "--out", str(base / "emb")]
    rc = cli_main([*args, "--no-progress", "--dtype", "float32", "--batch-size", "4"])
    ds = base / "emb" / "toy" / "train_audio"
    keys, X = read_embeddings(ds)
    fails = read_failures(ds).set_index("file")["reason"].to_dict()
    return {
        "rc": rc,
        "cases": cases,
        "keys": keys,
        "X": X,
        "fails": fails,
        "root": base / "data" / "train_audio",
    }


def test_the_run_completes_and_every_file_is_accounted_for(audio_run):
    r = audio_run
    assert r["rc"] == 0
    embedded = set(r["keys"]["file"])
    assert embedded | set(r["fails"]) == set(r["cases"]) and not embedded & set(r["fails"])


AUDIO_CASES = [
    "bad/dangling link.ogg",
    "bad/header_only.wav",
    "bad/random_bytes.ogg",
    "bad/truncated_first_page.ogg",
    "bad/truncated_header.ogg",
    "bad/truncated_mid.ogg",
    "bad/wav_named.ogg",
    "bad/zero_bytes.ogg",
    "channels/four.flac",
    "channels/stereo.ogg",
    "names/with spaces & ünïcödé 鳥.ogg",
    "names/ダイサギ/XC1.ogg",
    "ok/reference.ogg",
    "rates/sr16000.ogg",
    "rates/sr22050.ogg",
    "rates/sr44100.ogg",
    "rates/sr48000.ogg",
    "rates/sr8000.ogg",
    "rates/sr96000.ogg",
    "short/0.3s.ogg",
    "values/all_zero.flac",
    "values/extreme.wav",
    "values/extreme_clipped.wav",
    "values/full_scale_square.wav",
    "values/nan_inf.wav",
    "values/nan_inf_as_zero.wav",
]


def test_the_matrix_is_complete(audio_run):
    assert sorted(audio_run["cases"]) == sorted(AUDIO_CASES)


@pytest.mark.parametrize("rel", AUDIO_CASES)
def test_bad_audio_case(audio_run, rel):
    kind, expect = audio_run["cases"][rel]
    if kind == "fail":
        reason = audio_run["fails"].get(rel)
        assert reason is not None and expect in reason and "\n" not in reason, reason
        return
    assert rel not in audio_run["fails"]
    rows = (audio_run["keys"]["file"] == rel).to_numpy()
    n = expect if expect is not None else len(window_spans(duration_s(audio_run["root"] / rel)))
    assert rows.sum() == n >= 1
    assert np.isfinite(audio_run["X"][rows]).all()
    stem = Path(rel).stem
    assert audio_run["keys"]["row_id"][rows].tolist() == [row_id(stem, 5 * (k + 1)) for k in range(n)]


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("values/nan_inf.wav", "values/nan_inf_as_zero.wav"),  # NaN / inf samples are read as silence
        ("values/extreme.wav", "values/extreme_clipped.wav"),  # out-of-range samples are clipped to [-1, 1]
    ],
)
def test_non_finite_and_extreme_samples_embed_like_their_sanitised_audio(audio_run, dirty, clean):
    keys, X = audio_run["keys"], audio_run["X"]
    a, b = X[(keys["file"] == dirty).to_numpy()], X[(keys["file"] == clean).to_numpy()]
    np.testing.assert_array_equal(a, b)


def test_truncated_ogg_keeps_the_audio_before_the_cut(audio_run):
    rows = audio_run["keys"]["file"] == "bad/truncated_mid.ogg"
    assert 1 <= rows.sum() < 3  # the reference file (12 s) has 3 windows


class NaNOnSilence(ToyBackbone):
    """A backbone that breaks on silence (as a model with an unguarded normalisation would)."""

    def embed(self, batch: np.ndarray) -> np.ndarray:
        e = super().embed(batch)
        e[np.abs(batch).max(axis=1) == 0] = np.nan
        return e


def test_a_backbone_returning_nan_makes_a_failure_not_a_nan_row(tmp_path):
    folder = tmp_path / "audio"
    _wav(folder / "silence.flac", np.zeros(16000 * 7, np.float32), subtype="PCM_16", fmt="FLAC")
    write_audio(folder / "tone.ogg", 7.0)
    cfg = ExtractConfig(backbone="toy", files=str(folder), out=str(tmp_path / "emb"), progress=False)
    s = run_extract(cfg, backbone=NaNOnSilence())
    assert s.failures == [("silence.flac", "backbone returned NaN/inf for 2 of 2 windows")]
    keys, X = read_embeddings(s.dataset)
    assert set(keys["file"]) == {"tone.ogg"} and np.isfinite(X).all()


def test_failures_are_listed_on_stderr_with_their_reasons(tmp_path, capfd):
    root = tmp_path / "data" / "train_audio"
    (root / "x").mkdir(parents=True)
    (root / "x" / "zero.ogg").write_bytes(b"")
    write_audio(root / "x" / "fine.ogg", 3.0)
    rc = cli_main(["extract", "--backbone", "toy", "--data", str(tmp_path / "data"), "--out", str(tmp_path)])
    err = capfd.readouterr().err
    assert rc == 0
    assert "1 files embedded" in err and "1 skipped (failures table)" in err
    assert "  skipped x/zero.ogg: empty file (0 bytes)" in err


LONG_SCRIPT = r"""
import resource, sys, time
sys.path.insert(0, sys.argv[1])
import conftest  # registers the toy backbone
from embedkit.config import ExtractConfig
from embedkit.extract import run_extract

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

# warm up on a 200 s file: imports, batch buffers and FFT scratch are in the baseline
run_extract(ExtractConfig(backbone="toy", files=sys.argv[2], out=sys.argv[4], progress=False))
before = peak_mb()
t = time.monotonic()
s = run_extract(ExtractConfig(backbone="toy", files=sys.argv[3], out=sys.argv[4], progress=False))
print(before, peak_mb(), s.windows, s.files_failed, time.monotonic() - t)
"""


@pytest.mark.slow
def test_three_hour_file_is_decoded_in_blocks_with_bounded_memory(tmp_path):
    hours, sr = 3, 8000
    long_dir, warm_dir = tmp_path / "long", tmp_path / "warm"
    long_dir.mkdir()
    minute = (0.3 * np.sin(2 * np.pi * 440 * np.arange(60 * sr) / sr)).astype(np.float32)
    with sf.SoundFile(
        str(long_dir / "three_hours.wav"), "w", samplerate=sr, channels=1, subtype="PCM_16"
    ) as f:
        for _ in range(hours * 60):
            f.write(minute)  # written a minute at a time: the test itself never holds 3 h either
    _wav(warm_dir / "warm.wav", tone(200.0, sr), sr, "PCM_16")
    script = tmp_path / "long.py"
    script.write_text(LONG_SCRIPT)
    out = subprocess.run(
        [
            sys.executable,
            str(script),
            str(Path(__file__).parent),
            str(warm_dir),
            str(long_dir),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    before, after, windows, failed, _ = (float(v) for v in out.stdout.split())
    assert windows == hours * 3600 / 5 and failed == 0
    whole_file_mb = hours * 3600 * 16000 * 4 / 2**20  # the decoded file at the toy's 16 kHz, float32: 659 MiB
    assert after - before < 64 < whole_file_mb / 10, (before, after)


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
        "model format 99 (embedkit 9.0.0) is not format 1",
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
        "head files missing",
    ),
    "head state file missing": (
        lambda ds, d: (_model_copy(ds, d) / "head" / "state.joblib").unlink() or d,
        "head files incomplete",
    ),
    "head state file truncated": (
        lambda ds, d: _truncate(_model_copy(ds, d) / "head" / "state.joblib") or d,
        "cannot load the head",
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
    _wav(folder / "nan_samples.wav", _with_nan_inf(tone(10.0, 16000)))
    (folder / "corrupt.ogg").write_bytes(np.random.default_rng(1).bytes(5000))
    _wav(folder / "no_frames.wav", np.zeros((0, 1), np.float32))
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
    _wav(folder / "silent.flac", np.zeros(16000 * 60, np.float32), subtype="PCM_16", fmt="FLAC")
    monkeypatch.setattr("embedkit.infer.backbone_for", lambda prov, cfg: NaNOnSilence())
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


def test_infer_never_leaves_an_invalid_file_under_the_submission_name(ds, tmp_path, capsys):
    folder = tmp_path / "scapes"
    shutil.copytree(ds["scapes"], folder)
    write_audio(folder / "again" / "S0.ogg", 60.0, seed=9)  # a second S0: every S0 row id twice
    out = tmp_path / "submission.csv"
    capsys.readouterr()
    rc = cli_main(infer_args(ds, out, scapes=folder))
    err = capsys.readouterr().err
    invalid = tmp_path / "submission.invalid.csv"
    assert rc == 1 and not out.exists() and invalid.is_file()
    assert f"INVALID submission {invalid}" in err and "duplicated row_id" in err
    assert validate_submission(invalid, LABELS) != []
    assert len(pd.read_csv(invalid)) == len(expected_row_ids(folder))  # everything it could is kept

"""The matrix of bad audio inputs, end to end through the ``embedkit`` command.

Every bad audio file gets a named reason in the failures table (or is embedded, finite, with the windows of
the audio it has) and the run completes. Bad tables and model folders: ``test_bad_tables.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import NaNOnSilence, tone, with_nan_inf, write_audio, write_wav

from embedkit.audio import duration_s, row_id, window_spans
from embedkit.cli import main as cli_main
from embedkit.config import ExtractConfig
from embedkit.extract import run_extract
from embedkit.store import read_embeddings, read_failures

# -- audio ---------------------------------------------------------------------------------------------------


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
    write_wav(folder / "bad" / "wav_named.ogg", tone(7.0, 16000), subtype="PCM_16")
    cases["bad/wav_named.ogg"] = ("ok", 2)
    write_wav(folder / "bad" / "header_only.wav", np.zeros((0, 1), np.float32))
    cases["bad/header_only.wav"] = ("fail", "no audio samples")
    os.symlink(folder / "nowhere.ogg", folder / "bad" / "dangling link.ogg")
    cases["bad/dangling link.ogg"] = ("fail", "missing file (broken symlink)")
    write_audio(folder / "channels" / "stereo.ogg", 6.0, channels=2)
    cases["channels/stereo.ogg"] = ("ok", 2)
    write_wav(folder / "channels" / "four.flac", tone(6.0, 32000, channels=4), 32000, "PCM_16", "FLAC")
    cases["channels/four.flac"] = ("ok", 2)
    for sr in (8000, 16000, 22050, 44100, 48000, 96000):
        write_audio(folder / "rates" / f"sr{sr}.ogg", 6.0, sr=sr, freq=min(1000.0, sr / 4))
        cases[f"rates/sr{sr}.ogg"] = ("ok", 2)
    write_audio(folder / "short" / "0.3s.ogg", 0.3)
    cases["short/0.3s.ogg"] = ("ok", 1)
    silence = np.zeros(16000 * 6, np.float32)
    write_wav(folder / "values" / "all_zero.flac", silence, subtype="PCM_16", fmt="FLAC")
    cases["values/all_zero.flac"] = ("ok", 2)
    x = tone(10.0, 16000, seed=5)
    write_wav(folder / "values" / "nan_inf.wav", with_nan_inf(x))
    cases["values/nan_inf.wav"] = ("ok", 2)
    as_zero = np.nan_to_num(with_nan_inf(x), posinf=0.0, neginf=0.0)
    write_wav(folder / "values" / "nan_inf_as_zero.wav", as_zero)
    cases["values/nan_inf_as_zero.wav"] = ("ok", 2)
    write_wav(folder / "values" / "extreme.wav", _extreme(x))
    cases["values/extreme.wav"] = ("ok", 2)
    write_wav(folder / "values" / "extreme_clipped.wav", np.clip(_extreme(x), -1, 1))
    cases["values/extreme_clipped.wav"] = ("ok", 2)
    write_wav(folder / "values" / "full_scale_square.wav", np.sign(x) + 0.0, subtype="PCM_16")
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


def test_a_backbone_returning_nan_makes_a_failure_not_a_nan_row(tmp_path):
    folder = tmp_path / "audio"
    write_wav(folder / "silence.flac", np.zeros(16000 * 7, np.float32), subtype="PCM_16", fmt="FLAC")
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
    write_wav(warm_dir / "warm.wav", tone(200.0, sr), sr, "PCM_16")
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

"""Block decoding gives the same samples as one whole-file ``soundfile.read``, MP3 above all (issue 13)."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
import soundfile as sf
import soxr
from conftest import tone

from embedkit.audio.decode import stream_mono
from embedkit.audio.sequential import DecoderMessages


def _whole_mono(path) -> np.ndarray:
    """The reference: one ``soundfile.read`` of the whole file, downmixed and cleaned like stream_mono."""
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    return np.clip(np.nan_to_num(mono, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)


def _blocks(path, sr: int, block_s: float = 30.0) -> np.ndarray:
    return np.concatenate(list(stream_mono(path, sr, block_s=block_s)))


def _chirp(seconds: float, sr: int, channels: int, seed: int) -> np.ndarray:
    """Broadband content (sweep + noise + clicks) that makes the encoder use its bit reservoir."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (800 + 600 * np.sin(0.7 * t)) * t) + 0.1 * rng.standard_normal(len(t))
    x[rng.integers(0, len(t), 200)] += 0.5
    x = np.clip(x, -1, 1).astype(np.float32)
    return np.stack([x, np.roll(x, 37) * 0.8], axis=1) if channels == 2 else x


@pytest.mark.slow
@pytest.mark.parametrize(
    "sr,seconds,channels",
    [(22050, 95.0, 1), (44100, 65.0, 2), (32000, 31.5, 1), (48000, 61.0, 1), (16000, 12.0, 2)],
)
def test_mp3_blocks_equal_whole_read(tmp_path, capfd, sr, seconds, channels):
    path = tmp_path / f"x{sr}.mp3"
    sf.write(str(path), _chirp(seconds, sr, channels, seed=sr), sr, format="MP3")
    whole = _whole_mono(path)
    capfd.readouterr()
    for block_s in (30.0, 7.3):
        got = _blocks(path, sr, block_s)
        assert got.shape == whole.shape
        assert np.array_equal(got, whole), f"{int((got != whole).sum())} samples differ (block {block_s} s)"
    err = capfd.readouterr().err
    assert "mpg123" not in err and "part2_3_length" not in err  # an exact decode has nothing to report


def test_old_seeking_reader_differs(tmp_path, capfd):
    """Guards the diagnosis: reading with SoundFile.read per block (it seeks each time) is not exact."""
    sr = 22050
    path = tmp_path / "seek.mp3"
    sf.write(str(path), _chirp(65.0, sr, 1, seed=3), sr, format="MP3")
    with sf.SoundFile(str(path)) as f:
        parts = [f.read(30 * sr, dtype="float32") for _ in range(3)]
    old = np.concatenate(parts)
    whole = _whole_mono(path)
    assert len(old) == len(whole)
    assert np.abs(old - whole).max() > 1e-3  # not just rounding: whole frames decode differently
    assert np.array_equal(_blocks(path, sr), whole)


@pytest.mark.parametrize(
    "fmt,subtype,suffix",
    [
        ("OGG", "VORBIS", ".ogg"),
        ("FLAC", "PCM_16", ".flac"),
        ("WAV", "PCM_16", ".wav"),
        ("OGG", "OPUS", ".opus"),
    ],
)
def test_other_formats_blocks_equal_whole_read(tmp_path, fmt, subtype, suffix):
    sr = 48000 if subtype == "OPUS" else 32000
    path = tmp_path / f"x{suffix}"
    sf.write(str(path), tone(41.0, sr, channels=2, seed=5), sr, format=fmt, subtype=subtype)
    assert np.array_equal(_blocks(path, sr, 30.0), _whole_mono(path))


def test_resampled_mp3_blocks_equal_resampled_whole(tmp_path):
    """What extraction sees (22.05 kHz MP3 -> 32 kHz) does not depend on the block length."""
    path = tmp_path / "r.mp3"
    sf.write(str(path), _chirp(70.0, 22050, 1, seed=9), 22050, format="MP3")
    a, b = _blocks(path, 32000, 30.0), _blocks(path, 32000, 11.0)
    assert np.array_equal(a, b)
    ref = soxr.resample(_whole_mono(path), 22050, 32000, quality="HQ")
    assert len(a) == len(ref)


@pytest.mark.slow
def test_real_recordings_as_mp3(tmp_path, shared_data, capfd):
    """The longest real xeno-canto recordings as 22.05 kHz mono MP3, like the field files in the issue."""
    rows = list(csv.DictReader(open(shared_data / "xc-pr-birds" / "train.csv")))
    rows.sort(key=lambda r: -float(r["duration_s"]))
    mp3s = list(shared_data.rglob("*.mp3"))  # none today (the set is OGG); used as-is if it ever has some
    for r in rows[:3]:
        x, sr = sf.read(str(shared_data / "xc-pr-birds" / "train_audio" / r["filename"]), dtype="float32")
        p = tmp_path / (r["filename"].replace("/", "_") + ".mp3")
        sf.write(str(p), soxr.resample(x, sr, 22050, quality="HQ"), 22050, format="MP3")
        mp3s.append(p)
    capfd.readouterr()
    for p in mp3s:
        with sf.SoundFile(str(p)) as f:
            sr = f.samplerate
        whole = _whole_mono(p)
        assert len(whole) > 60 * sr or p.parent != tmp_path
        assert np.array_equal(_blocks(p, sr), whole), p.name
    assert "mpg123" not in capfd.readouterr().err


def test_decoder_messages_go_to_the_log_with_the_file_name(capfd, caplog):
    """C code writing to fd 2 during a capture: decoder lines are logged under the file's name, once."""
    import os

    line = b"[src/libmpg123/layer3.c:INT123_do_layer3():1774] error: part2_3_length (960) too large\n"
    msgs = DecoderMessages("field/XC1.mp3")
    with caplog.at_level(logging.WARNING, logger="embedkit.audio"):
        with msgs.capture():
            os.write(2, line)
            os.write(2, b"progress 3/10\n")  # not the decoder's: passed through to the terminal
        with msgs.capture():
            os.write(2, b"Note: Trying to resync...\n")
        msgs.report()
    err = capfd.readouterr().err
    assert "part2_3_length" not in err and "resync" not in err and "progress 3/10" in err
    logged = [r.getMessage() for r in caplog.records if r.name == "embedkit.audio"]
    assert logged == ["MP3 decoder, field/XC1.mp3: error: part2_3_length (960) too large (and 1 more)"]


def test_damaged_mp3_messages_are_logged_once_with_its_name(tmp_path, capfd, caplog):
    """libmpg123's complaints about a damaged MP3 become one warning naming it; the samples stay exact."""
    sr = 32000
    path = tmp_path / "damaged field.mp3"
    sf.write(str(path), _chirp(70.0, sr, 1, seed=4), sr, format="MP3")
    raw = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    for off in range(20000, len(raw), 30000):  # garbage in the middle of some frames
        raw[off : off + 40] = rng.bytes(40)
    path.write_bytes(bytes(raw))
    whole = _whole_mono(path)
    capfd.readouterr()
    with caplog.at_level(logging.WARNING, logger="embedkit.audio"):
        got = _blocks(path, sr, 7.0)
    err = capfd.readouterr().err
    assert "Illegal Audio-MPEG-Header" not in err and "mpg123" not in err  # nothing unlabelled
    msgs = [r.getMessage() for r in caplog.records if r.name == "embedkit.audio"]
    assert len(msgs) == 1 and str(path) in msgs[0] and "more)" in msgs[0]
    assert np.array_equal(got, whole)


@pytest.mark.parametrize("fmt,subtype", [("MP3", None), ("OGG", "VORBIS")])
def test_fallback_reader_is_exact_too(tmp_path, monkeypatch, fmt, subtype):
    """Were soundfile's internals to change (no ``_snd``), the fallback reader still gives the whole read."""
    import embedkit.audio.sequential as seq

    monkeypatch.setattr(seq, "_raw_read", lambda: None)
    sr = 22050
    path = tmp_path / f"f.{fmt.lower()}"
    sf.write(str(path), _chirp(40.0, sr, 1, seed=2), sr, format=fmt, subtype=subtype)
    assert np.array_equal(_blocks(path, sr, 30.0), _whole_mono(path))
    assert np.array_equal(_blocks(path, sr, 10.0), _whole_mono(path))  # 40 s: blocks fit exactly

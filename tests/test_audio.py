import os

import numpy as np
import pytest
import soundfile as sf
from conftest import tone, write_audio

from embedkit.audio import (
    AudioError,
    Windowing,
    duration_s,
    iter_windows,
    list_audio,
    load_mono,
    row_id,
    window_spans,
)


@pytest.mark.parametrize(
    ("dur", "ends"),
    [
        (0.3, [5]),  # shorter than a window: still one window
        (0.5, [5]),
        (5.0, [5]),
        (5.5, [5]),  # 0.5 s tail < 1 s: dropped
        (7.0, [5, 10]),  # 2 s tail kept, zero-padded
        (60.0, list(range(5, 61, 5))),
        (61.0, list(range(5, 66, 5))),
    ],
)
def test_window_spans_default_rule(dur, ends):
    spans = window_spans(dur)
    assert spans[:, 1].tolist() == ends
    assert np.allclose(spans[:, 1] - spans[:, 0], 5.0)


def test_window_spans_options():
    assert len(window_spans(60, Windowing(max_windows=3))) == 3
    assert window_spans(12, Windowing(hop_s=2.5))[:, 0].tolist() == [0, 2.5, 5, 7.5]
    assert len(window_spans(6.5, Windowing(min_tail_s=2.0))) == 1
    assert len(window_spans(6.5, Windowing(min_tail_s=1.0))) == 2
    assert len(window_spans(0.0)) == 0
    with pytest.raises(ValueError):
        Windowing(window_s=0)
    with pytest.raises(ValueError):
        Windowing(max_windows=0)


def test_row_id():
    assert row_id("H02_20230420_074000", 60.0) == "H02_20230420_074000_60"
    assert row_id("a", 7.5) == "a_7.5"


@pytest.mark.parametrize("dur", [0.5, 4.99, 5.0, 7.0, 12.3, 61.0])
@pytest.mark.parametrize("sr_in", [16000, 32000, 44100])
def test_iter_windows_matches_spans_and_resamples(tmp_path, dur, sr_in):
    p = write_audio(tmp_path / "x.flac", dur, sr=sr_in, fmt="FLAC", subtype=None)
    pieces = list(iter_windows(p, 48000, block_s=2.0))
    firsts = [f for f, _ in pieces]
    wins = np.concatenate([w for _, w in pieces])
    assert wins.shape == (len(window_spans(dur, sample_rate=48000)), 240000)
    assert firsts == sorted(firsts) and wins.dtype == np.float32
    # content of window 0 = resampled audio (energy preserved roughly), padded tail is zeros
    n_audio = int(round(dur * 48000))
    last_start = (len(wins) - 1) * 240000
    if n_audio - last_start < 240000:
        assert np.all(wins[-1, n_audio - last_start + 50 :] == 0)
    assert np.abs(wins[0, : min(n_audio, 240000) - 100]).mean() > 0.1


def test_streaming_equals_whole_file(tmp_path):
    p = write_audio(tmp_path / "x.wav", 23.0, sr=32000, fmt="WAV", subtype="FLOAT")
    whole = load_mono(p, 32000)
    a = np.concatenate([w for _, w in iter_windows(p, 32000, block_s=1.3)])
    b = np.concatenate([w for _, w in iter_windows(p, 32000, block_s=60)])
    assert np.array_equal(a, b)
    assert np.array_equal(a[0], whole[:160000])
    assert np.array_equal(a[3], whole[480000:640000])


def test_max_windows_stops_early(tmp_path):
    p = write_audio(tmp_path / "long.ogg", 40.0)
    got = np.concatenate([w for _, w in iter_windows(p, 32000, Windowing(max_windows=2))])
    assert got.shape[0] == 2


def test_downmix_and_sanitise(tmp_path):
    x = tone(6.0, channels=4)
    x[1000:1010] = np.nan
    x[2000] = np.inf
    x[3000] = 50.0
    p = tmp_path / "multi.wav"
    sf.write(str(p), x, 32000, subtype="FLOAT")
    y = load_mono(p, 32000)
    assert y.shape == (len(x),)
    assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
    assert np.allclose(y[5000:5100], x[5000:5100].mean(1), atol=1e-6)


def test_bad_files_raise_one_line_reasons(tmp_path):
    empty = tmp_path / "empty.ogg"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.ogg"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    link = tmp_path / "link.ogg"
    os.symlink(tmp_path / "gone.ogg", link)
    for path, word in [
        (empty, "empty"),
        (junk, "cannot decode"),
        (link, "missing"),
        (tmp_path / "no.ogg", "missing"),
    ]:
        with pytest.raises(AudioError, match=word) as e:
            list(iter_windows(path, 32000))
        assert "\n" not in str(e.value)


def test_wav_named_ogg_is_decoded(tmp_path):
    p = tmp_path / "actually_wav.ogg"
    sf.write(str(p), tone(3.0), 32000, format="WAV")
    assert load_mono(p, 32000).shape == (96000,)
    assert duration_s(p) == pytest.approx(3.0)


def test_list_audio_finds_suffixes_recursively(tmp_path):
    write_audio(tmp_path / "a" / "x.ogg", 1.0)
    write_audio(tmp_path / "b" / "y.flac", 1.0, fmt="FLAC", subtype=None)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_audio(tmp_path)] == ["x.ogg", "y.flac"]

"""The block-wise audio writer (libsndfile 1.2.2 SIGSEGVs on one > ~2M-sample Vorbis write) and its users."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import write_audio as write_tone
from test_quality import make_root

from embedkit.audio.write import write_audio

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """A child python (a libsndfile crash kills the child, not the test run)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *(["-c", code] if code else []), *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)  # fmt: skip


@pytest.mark.slow
def test_ten_minutes_at_48k_vorbis_written_and_read_back(tmp_path):
    out = tmp_path / "long.ogg"
    code = (
        "import numpy as np, sys\n"
        "from embedkit.audio.write import write_audio\n"
        "t = np.arange(48000 * 600)\n"
        "x = (0.3 * np.sin(2 * np.pi * 440 * t / 48000)).astype(np.float32)\n"
        "write_audio(sys.argv[1], x, 48000, 'OGG', 'VORBIS')\n"
    )
    r = _run(code, str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    info = sf.info(str(out))
    assert (info.samplerate, info.frames, info.subtype) == (48000, 48000 * 600, "VORBIS")
    with sf.SoundFile(str(out)) as f:
        f.seek(48000 * 599)
        tail = f.read(48000, dtype="float32")
    spec = np.abs(np.fft.rfft(tail))
    assert abs(np.argmax(spec) - 440) <= 1 and 0.15 < np.sqrt(np.mean(tail**2)) < 0.25
    assert [p.name for p in tmp_path.iterdir()] == ["long.ogg"]


def test_writer_formats_blocks_and_no_temp_left_on_failure(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, (30_000, 2)).astype(np.float32)
    p = write_audio(tmp_path / "a.flac", x, 16000, block=4096)  # format from the suffix, 8 blocks
    y, sr = sf.read(str(p), dtype="float32")
    assert sr == 16000 and y.shape == x.shape and np.abs(y - x).max() < 1e-4
    write_audio(tmp_path / "a.flac", x[:100], 16000)  # replaced whole
    assert sf.info(str(p)).frames == 100
    with pytest.raises((sf.LibsndfileError, RuntimeError, ValueError, TypeError)):
        write_audio(tmp_path / "b.wav", x, 16000, "WAV", "NO_SUCH_SUBTYPE")
    with pytest.raises((sf.LibsndfileError, RuntimeError, ValueError, TypeError)):
        write_audio(tmp_path / "c.wav", x, 16000, "WAV", "NO_SUCH_SUBTYPE", atomic=False)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["a.flac"]


@pytest.mark.slow
def test_compose_at_48k_writes_one_minute_vorbis_soundscapes(tmp_path):
    root = make_root(tmp_path / "data")
    write_tone(tmp_path / "bg" / "wind.ogg", 20.0, freq=300.0, seed=5)
    out = tmp_path / "compose_test_48000"
    stale = tmp_path / ".compose_test_48000.tmp-999999999"  # a crashed earlier run (no such pid)
    stale.mkdir()
    r = _run("", "-m", "embedkit", "compose", "--data", str(root), "--backgrounds", str(tmp_path / "bg"),
             "--out", str(out), "--n", "2", "--sample-rate", "48000", "--holdout", "0.34")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    files = sorted(out.glob("*.ogg"))
    assert len(files) == 2 and all(sf.info(str(f)).frames == 48000 * 60 for f in files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bg", "compose_test_48000", "data"]


def test_compose_failing_writer_leaves_no_stage_folder(tmp_path, monkeypatch):
    from embedkit.audio import write as w
    from embedkit.cli import main

    root = make_root(tmp_path / "data")
    write_tone(tmp_path / "bg" / "wind.ogg", 10.0, freq=300.0, seed=5)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(w, "write_audio", boom)
    with pytest.raises(OSError, match="disk full"):
        main(["compose", "--data", str(root), "--backgrounds", str(tmp_path / "bg"),
              "--out", str(tmp_path / "scapes"), "--n", "1", "--sample-rate", "8000", "--holdout", "0.34"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bg", "data"]


def test_no_direct_soundfile_writes_left_in_embedkit():
    hits = []
    for p in (ROOT / "embedkit").rglob("*.py"):
        text = p.read_text()
        if p.name != "write.py" and ("sf.write(" in text or "soundfile.write(" in text):
            hits.append(str(p.relative_to(ROOT)))
    assert hits == []

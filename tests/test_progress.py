"""Progress counters off a terminal, and native stderr (TFLite's INFO line) sent to the embedkit logger."""

import io
import os
import subprocess
import sys
import time

from embedkit.progress import RateLine, native_stderr_to_log, track


def test_rate_line_prints_every_few_seconds_with_an_eta():
    out = io.StringIO()
    r = RateLine(10, "compose", "soundscape", every_s=0.05, file=out)
    r.update(2)
    assert out.getvalue() == ""  # nothing before every_s has passed
    time.sleep(0.06)
    r.update(2)
    first = out.getvalue().strip()
    assert first.startswith("compose: 4/10 soundscape,") and "soundscape/s" in first and "ETA" in first
    r.close()
    r.close()
    assert len(out.getvalue().strip().splitlines()) == 2  # the final line, once


def test_a_short_step_prints_nothing_off_a_terminal(capsys):
    assert list(track(range(3), "index", "shard")) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_native_writes_to_fd2_go_to_the_logger_and_other_text_passes(tmp_path):
    code = (
        "import logging, os, sys\n"
        "from embedkit.progress import native_stderr_to_log\n"
        "logging.basicConfig(level=logging.DEBUG, stream=open(sys.argv[1], 'w'))\n"
        "with native_stderr_to_log():\n"
        "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
        "    os.write(2, b'something else\\n')\n"
        "os.write(2, b'after\\n')\n"
    )
    log = tmp_path / "log.txt"
    r = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.getcwd()})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "TensorFlow Lite" not in r.stderr and "something else\n" in r.stderr and "after" in r.stderr
    assert "embedkit" in log.read_text() and "XNNPACK delegate" in log.read_text()


def test_native_redirect_is_reentrant_and_restores_fd2():
    before = os.fstat(2).st_ino
    with native_stderr_to_log():
        with native_stderr_to_log():
            assert os.fstat(2).st_ino != before
        assert os.fstat(2).st_ino != before  # the outer block still redirects
    assert os.fstat(2).st_ino == before

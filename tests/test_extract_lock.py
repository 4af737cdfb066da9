"""Concurrent extraction into one folder (issue 13): a second writer of the same files is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pandas as pd
import pytest
from fault_harness import DATASET, make_dataset, worker_cmd, worker_env

from embedkit.errors import UsageError
from embedkit.store.lock import extract_lock


def _wait_for(cond, timeout_s: float = 60.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError("condition not met")
        time.sleep(0.02)


def _clean_dataset(root):
    """make_dataset without its two bad files: no failures table, so the folder holds only shards."""
    import shutil

    make_dataset(root, n_files=8)
    shutil.rmtree(root / "train_audio" / "bad")
    return root


def _no_duplicates(folder) -> int:
    df = pd.read_parquet(folder)  # what a user's pandas / DuckDB sees: every raw row of every shard
    assert not df.duplicated(["file", "window"]).any(), "a (file, window) row is on disk twice"
    return len(df)


@pytest.mark.slow
def test_two_extract_processes_never_embed_a_file_twice(tmp_path):
    data, out = _clean_dataset(tmp_path / "data"), tmp_path / "emb"
    log = tmp_path / "a.log"
    cmd = worker_cmd(data, out)
    first = subprocess.Popen(
        cmd, env=worker_env(log, delay_s=1.0), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(lambda: (out / DATASET / ".lock-extract-p0of1").exists() or first.poll() is not None)
        assert first.poll() is None, "the first run ended before the second could start: slow it down"
        second = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True, timeout=120)
        assert first.poll() is None  # the refusal happened while the first run was writing
        assert second.returncode == 2, second.stderr
        err = second.stderr.strip().splitlines()
        assert len(err) == 1 and "being written by another extract" in err[0]
        assert f"pid {first.pid}@" in err[0]
        _, ferr = first.communicate(timeout=120)
        assert first.returncode == 0, ferr
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    n = _no_duplicates(out / DATASET)
    assert n > 0
    # the folder is free again: a third run starts, finds every file done and adds nothing
    third = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True, timeout=120)
    assert third.returncode == 0, third.stderr
    assert "0 files embedded" in third.stderr
    assert _no_duplicates(out / DATASET) == n
    assert not (out / DATASET / ".lock-extract-p0of1").exists()


@pytest.mark.slow
def test_parts_of_one_split_run_side_by_side(tmp_path):
    data, out = _clean_dataset(tmp_path / "data"), tmp_path / "emb"
    procs = [
        subprocess.Popen(
            worker_cmd(data, out, "--part", f"{i}/2"),
            env=worker_env(delay_s=0.05),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    _no_duplicates(out / DATASET)
    assert pd.read_parquet(out / DATASET)["file"].nunique() == 8


def test_lock_of_a_killed_writer_is_taken_over(tmp_path):
    """A SIGKILLed holder leaves its lock file; the kernel dropped the flock, so the next run proceeds."""
    folder = tmp_path / "ds"
    code = (
        "import os, sys; from embedkit.store.lock import extract_lock\n"
        f"with extract_lock({str(folder)!r}):\n    print('held', flush=True); os.kill(os.getpid(), 9)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == -9 and "held" in r.stdout
    assert (folder / ".lock-extract-p0of1").exists()  # left behind by the dead process
    with extract_lock(folder):
        assert f"pid {os.getpid()}@" in (folder / ".lock-extract-p0of1").read_text()
    assert not (folder / ".lock-extract-p0of1").exists()


@pytest.mark.parametrize(
    "held,wanted,refused",
    [((0, 1), (0, 1), True), ((0, 2), (0, 1), True), ((0, 2), (1, 2), False), ((1, 4), (1, 3), True)],
)
def test_overlapping_parts_are_refused(tmp_path, held, wanted, refused):
    # flock locks belong to the open file, so one process can play both writers
    with extract_lock(tmp_path, held):
        if refused:
            with pytest.raises(UsageError, match=f"part {held[0]}/{held[1]}"):
                with extract_lock(tmp_path, wanted):
                    pass
        else:
            with extract_lock(tmp_path, wanted):
                assert (tmp_path / f".lock-extract-p{wanted[0]}of{wanted[1]}").exists()
    assert not list(tmp_path.glob(".lock-extract-p*"))


def test_file_system_without_locks_is_a_note_not_a_failure(tmp_path, monkeypatch, capsys):
    import errno
    import fcntl

    def no_flock(fd, flags):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with extract_lock(tmp_path / "ds"):
        pass
    assert "no file locks on" in capsys.readouterr().err

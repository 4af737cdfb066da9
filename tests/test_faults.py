"""Crash safety of extraction: SIGKILL and Ctrl-C at random points, parallel parts, full or read-only disk.

Workers are subprocesses (``tests/fault_harness.py``) running the real ``embedkit extract`` command with the
toy backbone; after every fault the same command is rerun, and finished datasets are compared with an
uninterrupted run: same (file, window) keys, identical embeddings, no duplicate rows, no unreadable shard,
same failures table, no temporary files. ``benchmarks/fault_injection.py`` runs the same with ≥ 50 kills.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from fault_harness import (
    DATASET,
    compare,
    kill_campaign,
    kill_during_write,
    make_dataset,
    reference,
    run_worker,
    shard_problems,
    snapshot,
    worker_cmd,
    worker_env,
)

from embedkit.cli import main as cli_main
from embedkit.store import StoreError, read_embeddings, shard_paths

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

DELAY_S = 0.08  # per backbone call: a worker run lasts ~2-3 s, so random kill times cover all of it


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    """(data root, work folder, reference snapshot, wall time of an uninterrupted worker run)."""
    work = tmp_path_factory.mktemp("faults")
    data = make_dataset(work / "data")
    ref, wall = reference(data, work, DELAY_S)
    assert len(ref["keys"]) > 20 and set(ref["failures"]) == {"bad/junk.ogg", "bad/empty.ogg"}
    return data, work, ref, wall


def test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run(faults):
    data, work, ref, wall = faults
    rng = np.random.default_rng(20250601)
    tally = kill_campaign(data, work, ref, wall, 10, rng, delay_s=DELAY_S, pause_s=0.02)
    kill_during_write(data, work, ref, tally)  # one kill with half a shard's bytes on disk, for certain
    assert tally.problems == [], tally.line()
    assert tally.kills >= 11 and tally.kills_mid_write >= 1 and tally.resumed_datasets >= 2, tally.line()


def test_ctrl_c_stops_cleanly_with_a_message_then_resume_equals_an_uninterrupted_run(faults):
    data, work, ref, wall = faults
    rng = np.random.default_rng(7)
    tally = kill_campaign(
        data, work, ref, 0.8 * wall, 3, rng, delay_s=DELAY_S, pause_s=0.02, sig=signal.SIGINT
    )
    kill_during_write(data, work, ref, tally, sig=signal.SIGINT)
    kill_during_write(data, work, ref, tally, sig=signal.SIGINT, at="rename")  # a shard is in place, not yet
    assert tally.problems == [], tally.line()  # noted by the run: it must not be written a second time
    assert tally.interrupts >= 5 and tally.interrupts_mid_write >= 1, tally.line()


def test_ctrl_c_before_extraction_starts_is_a_clean_stop(faults, tmp_path, monkeypatch, capsys):
    data, *_ = faults

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("embedkit.extract.run.done_files", interrupted)
    rc = cli_main(
        ["extract", "--backbone", "toy", "--data", str(data), "--out", str(tmp_path), "--no-progress"]
    )
    assert rc == 130
    assert capsys.readouterr().err.strip() == "interrupted before any file was embedded; nothing was written"
    assert not list((tmp_path / DATASET).iterdir())


def test_parallel_parts_write_the_union_once_and_readers_never_see_a_partial_shard(faults):
    data, work, ref, _ = faults
    out = work / "parallel"
    ds = out / DATASET
    procs = [
        subprocess.Popen(
            worker_cmd(data, out, "--part", f"{i}/3"),
            env=worker_env(work / f"par{i}.log", DELAY_S, 0.03),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    reads, seen_rows, problems = 0, set(), []
    try:
        while any(p.poll() is None for p in procs):
            if ds.is_dir() and shard_paths(ds):
                problems += shard_problems(ds)
                keys, _ = read_embeddings(ds)  # never a partial or half-renamed shard
                seen_rows.add(len(keys))
                reads += 1
            time.sleep(0.01)
        errs = [p.communicate()[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    assert problems == []
    assert reads >= 5 and len(seen_rows) >= 3  # the reader really ran while shards appeared
    assert compare(ds, ref) == []  # the union of the parts, each window exactly once
    files_per_shard = [
        set(pq.read_table(p, columns=["file"]).column("file").to_pylist()) for p in shard_paths(ds)
    ]
    assert sum(len(f) for f in files_per_shard) == len(set().union(*files_per_shard))  # a file in one shard


# -- disk full and read-only output --------------------------------------------------------------------------


def _extract_args(data, out):
    return ["extract", "--backbone", "toy", "--data", str(data), "--out", str(out), "--no-progress",
            "--dtype", "float32", "--flush-s", "0"]  # fmt: skip


@pytest.mark.parametrize(
    ("code", "words"), [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system")]
)
def test_write_error_mid_run_is_one_line_and_leaves_nothing_corrupt(
    faults, tmp_path, monkeypatch, capsys, code, words
):
    data, _, ref, _ = faults
    real, calls = pq.write_table, []

    def failing(table, where, **kw):
        calls.append(1)
        if len(calls) > 3:
            where.write(b"PAR1 half a shard")  # bytes hit the temp file, then the disk gives up
            raise OSError(code, os.strerror(code))
        return real(table, where, **kw)

    monkeypatch.setattr(pq, "write_table", failing)
    assert cli_main(_extract_args(data, tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("embedkit extract: error: cannot write to ")
    assert words in err[0] and str(tmp_path / DATASET) in err[0]
    ds = tmp_path / DATASET
    assert not list(ds.glob(".tmp-*")) and shard_problems(ds) == []
    assert 1 <= len(shard_paths(ds)) <= 3
    monkeypatch.setattr(pq, "write_table", real)  # space freed: the same command finishes the job
    assert cli_main(_extract_args(data, tmp_path)) == 0
    assert compare(ds, ref) == []


def test_shard_writer_wraps_os_errors(tmp_path, monkeypatch):
    from embedkit.store import ShardWriter

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    w = ShardWriter(tmp_path, {"backbone": "toy", "dim": 2})
    monkeypatch.setattr(pq, "write_table", full)
    with pytest.raises(StoreError, match="No space left on device") as ei:
        w.write_failures([("a.ogg", "empty file")])
    assert isinstance(ei.value.__cause__, OSError) and "\n" not in str(ei.value)
    assert list(tmp_path.iterdir()) == []


def _namespace_ok() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


needs_namespace = pytest.mark.skipif(
    not _namespace_ok(), reason="needs `unshare -rm` (user + mount namespaces) to mount a private tmpfs"
)


def _in_private_tmpfs(mount: str, data, out, copy, tmp_path):
    """Run a worker with ``out`` on a private tmpfs (``mount`` = mount commands), then copy ``out`` out."""
    script = f"""
{mount} || exit 99
"$0" "$@" 2> "{tmp_path}/stderr"
rc=$?
cp -a "{out}/." "{copy}/"
exit $rc
"""
    cmd = worker_cmd(data, out)
    res = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, *cmd], env=worker_env(), capture_output=True, timeout=120
    )
    if res.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode()[-200:]}")
    return res.returncode, (tmp_path / "stderr").read_text()


@needs_namespace
def test_disk_full_on_a_real_small_tmpfs(faults, tmp_path):
    data, _, ref, _ = faults
    out, copy = tmp_path / "out", tmp_path / "copy"
    out.mkdir()
    copy.mkdir()
    rc, err = _in_private_tmpfs(f'mount -t tmpfs -o size=32k tmpfs "{out}"', data, out, copy, tmp_path)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "Traceback" not in err
    ds = copy / DATASET
    n = len(shard_paths(ds))
    assert 1 <= n < len(ref["keys"]["file"].unique())  # some files were saved before the disk filled
    assert not list(ds.glob(".tmp-*")) and shard_problems(ds) == []
    got = snapshot(ds)
    assert got["raw_duplicates"] == 0
    assert run_worker(worker_cmd(data, copy), worker_env(), tmp_path / "log").rc == 0  # resume elsewhere
    assert compare(ds, ref) == []


@needs_namespace
def test_read_only_output_folder_is_a_one_line_error_before_any_work(faults, tmp_path):
    data, *_ = faults
    out, copy = tmp_path / "out", tmp_path / "copy"
    out.mkdir()
    copy.mkdir()
    ds = out / DATASET
    mount = f'mount -t tmpfs -o size=1m tmpfs "{out}" && mkdir -p "{ds}" && mount -o remount,ro "{out}"'
    rc, err = _in_private_tmpfs(mount, data, out, copy, tmp_path)
    assert rc == 2, err
    assert err.strip().splitlines() == [
        f"embedkit extract: error: cannot write to {out / DATASET}: Read-only file system; make it writable "
        "or choose another output folder (files already written are complete, and a rerun continues where "
        "this one stopped)"
    ]
    assert list((copy / DATASET).iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores folder permissions")
def test_unwritable_output_folder_is_a_one_line_error(faults, tmp_path, capsys):
    data, *_ = faults
    ds = tmp_path / DATASET
    ds.mkdir(parents=True)
    ds.chmod(0o555)
    try:
        assert cli_main(_extract_args(data, tmp_path)) == 2
    finally:
        ds.chmod(0o755)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Permission denied" in err[0] and list(ds.iterdir()) == []

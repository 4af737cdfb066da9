"""Fault-injection worker: the process ``fault_harness.py`` kills and interrupts.

``python tests/fault_worker.py extract --backbone toy ...`` is the
``embedkit`` command with the test-only ``toy`` backbone registered (see ``conftest.py``) and these hooks:

- ``EMBEDKIT_TOY_DELAY_S``: sleep per backbone call (spreads the run over time);
- ``EMBEDKIT_FAULT_LOG``: file to which the worker appends ``run`` / ``done`` when extraction starts /
  returns, and ``begin`` / ``end`` around the bytes of every Parquet write (so a kill can be classified as
  "during a shard write");
- ``EMBEDKIT_FAULT_WRITE_PAUSE_S``: sleep after writing the first half of each Parquet file's bytes;
- ``EMBEDKIT_FAULT_STALL_S``: a longer sleep, once per process, at ``EMBEDKIT_FAULT_STALL_AT``: ``write``
  (between the halves of the first Parquet write, the default) or ``rename`` (after the first shard is
  renamed into place; logged as ``renamed``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _mark(tag: str) -> None:
    log = os.environ.get("EMBEDKIT_FAULT_LOG")
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{tag}\n".encode())
        finally:
            os.close(fd)


def _install_hooks() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    import embedkit.extract

    pause = float(os.environ.get("EMBEDKIT_FAULT_WRITE_PAUSE_S") or 0)
    import embedkit.store.write

    stall_at = os.environ.get("EMBEDKIT_FAULT_STALL_AT") or "write"
    stall = [float(os.environ.get("EMBEDKIT_FAULT_STALL_S") or 0)]
    real_write, real_run, real_fsync_dir = (
        pq.write_table,
        embedkit.extract.run_extract,
        embedkit.store.write._fsync_dir,
    )

    def stall_once(at: str) -> float:
        wait = stall[0] if at == stall_at else 0.0
        if wait:
            stall[0] = 0.0
        return wait

    def write_table(table, where, **kw):
        if not hasattr(where, "write"):
            return real_write(table, where, **kw)
        sink = pa.BufferOutputStream()
        real_write(table, sink, **kw)
        data = sink.getvalue().to_pybytes()
        _mark("begin")
        where.write(data[: len(data) // 2])
        where.flush()
        time.sleep(pause + stall_once("write"))
        where.write(data[len(data) // 2 :])
        _mark("end")

    def run_extract(*a, **kw):
        _mark("run")
        summary = real_run(*a, **kw)
        _mark("done")
        return summary

    def fsync_dir(folder):  # called right after a shard is renamed into place
        real_fsync_dir(folder)
        _mark("renamed")
        time.sleep(stall_once("rename"))

    pq.write_table = write_table
    embedkit.extract.run_extract = run_extract
    embedkit.store.write._fsync_dir = fsync_dir


def _worker() -> int:
    # a shell starts background jobs with SIGINT ignored, which Python keeps; a user's Ctrl-C is not ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, str(TESTS))
    import conftest  # noqa: F401  (registers the toy backbone)

    from embedkit.cli import main

    _install_hooks()
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(_worker())

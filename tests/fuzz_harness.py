"""The fuzzer's engine: a long-lived worker process with a timeout and a memory cap, and the property.

:class:`Worker` runs ``fuzz_worker.py`` under ``RLIMIT_AS`` (``EMBEDKIT_FUZZ_MEM_MB``, default 3072 MiB;
set in ``preexec_fn``), sends it one case at a time and waits ``EMBEDKIT_FUZZ_TIMEOUT_S`` (default 20 s)
for the answer. A case that kills the worker (a signal) or does not answer (a hang: the worker is killed)
is recorded and a fresh worker is started for the next case. :func:`run_case` copies the target's corpus
entry, applies the mutations, recomputes the hashes, and loads it; :func:`verdict` is the property:
success, or ONE line (an ``EmbedkitError``, what the CLI prints before exit 2) and nothing else on
stderr; never a signal, a hang, a traceback, an allocation over the cap, or extra stderr lines.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fuzz_mutate import apply
from fuzz_tamper import REHASH

TESTS = Path(__file__).resolve().parent
MEM_MB = int(os.environ.get("EMBEDKIT_FUZZ_MEM_MB", "3072"))
TIMEOUT_S = float(os.environ.get("EMBEDKIT_FUZZ_TIMEOUT_S", "20"))
#: an error message that is an allocation failure in disguise (wrapped by a loader's ``except Exception``)
_ALLOC = re.compile(
    r"MemoryError|can't allocate|cannot allocate|out of memory|bad_alloc|unable to allocate", re.I
)


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    cap = MEM_MB * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    os.setsid()


class Worker:
    """One ``fuzz_worker.py`` process, restarted after it dies or hangs."""

    def __init__(self, timeout_s: float = TIMEOUT_S, preload: bool = True) -> None:
        self.proc: subprocess.Popen | None = None
        self.buf = b""
        self.starts = 0
        self.timeout_s = timeout_s
        self.preload = preload

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(TESTS.parent), "OMP_NUM_THREADS": "2", "PYTHONHASHSEED": "0",
               "EMBEDKIT_FUZZ_PRELOAD": "1" if self.preload else "0"}  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, str(TESTS / "fuzz_worker.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, preexec_fn=_limit_memory, env=env,
        )  # fmt: skip
        self.buf = b""
        self.starts += 1
        line = self._line(300)
        if line is None or b"ready" not in line:
            self.stop()
            raise RuntimeError("the fuzz worker did not start")

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout):
                f.close()
            self.proc = None

    def _line(self, timeout: float) -> bytes | None:
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return b""
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def run(self, request: dict) -> dict:
        """The worker's answer to one request, or ``{"outcome": "signal" | "hang" | "died", ...}``."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()
        t0 = time.monotonic()
        line = self._line(self.timeout_s)
        if line:
            return {**json.loads(line), "seconds": time.monotonic() - t0}
        if line is None:
            self.stop()
            return {"outcome": "hang", "message": f"no answer in {self.timeout_s:g} s", "stderr": ""}
        rc = self.proc.wait()
        self.stop()
        kind = "signal" if rc < 0 else "died"
        name = signal.Signals(-rc).name if rc < 0 else str(rc)
        return {"outcome": kind, "message": f"worker ended: {name}", "stderr": ""}


def verdict(res: dict) -> str | None:
    """None if the outcome has the property, else the kind of failure."""
    if res["outcome"] == "error" and _ALLOC.search(res["message"]):
        return "memory"
    if res["outcome"] not in ("ok", "error"):
        return res["outcome"]
    if res.get("stderr", "").strip():
        return "stderr"  # lines besides the one error line (native warnings, Python warnings)
    return None


def pick(folder: Path, pattern: str, k: int) -> str:
    """The ``k``-th (modulo) file matching ``pattern`` (a path or glob) inside ``folder``."""
    if not pattern:
        return ""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    hits = [f for f in files if fnmatch.fnmatch(f, pattern)]
    return hits[k % len(hits)] if hits else pattern


def run_case(worker: Worker, target, corpus: dict, ops: list, choice: int, dim: int, scratch: Path) -> dict:
    """Copy the target's entry, apply ``ops`` to one of its files, recompute hashes, load it in the worker.

    Args:
        worker: the worker.
        target: a ``fuzz_targets.Target``.
        corpus: ``fuzz_corpus.build_corpus``'s entries.
        ops: mutations (``fuzz_mutate.mutations``).
        choice: which of the target's files (and of a glob's matches) is mutated.
        dim: the embedding dimension of the corpus (for predictions).
        scratch: an empty folder for the copy (removed afterwards).

    Returns:
        The worker's answer plus ``file`` (what was mutated) and ``failure`` (:func:`verdict`).
    """
    src = Path(corpus[target.corpus])
    pattern, fmt = target.files[choice % len(target.files)]
    if src.is_dir():
        entry = scratch / src.name
        shutil.copytree(src.resolve(), entry)
        rel = pick(entry, pattern, choice // len(target.files))
        path = entry / rel
    else:
        entry = path = scratch / src.name
        shutil.copyfile(src, path)
        rel = src.name
    try:
        path.write_bytes(apply(fmt, path.read_bytes(), ops))
        if target.rehash:
            try:
                REHASH[target.rehash](entry)
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError, OSError):
                pass  # the mutation broke a manifest itself: loaded as it is
        res = worker.run({"loader": target.loader, "path": str(entry), "dim": dim})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True, exist_ok=True)
    res["file"] = rel
    res["failure"] = verdict(res)
    return res


def new_scratch() -> Path:
    """A private scratch folder for case copies."""
    return Path(tempfile.mkdtemp(prefix="embedkit-fuzz-"))

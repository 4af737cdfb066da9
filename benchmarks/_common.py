"""Shared helpers of the benchmark scripts: child processes with peak RSS, the real-audio subset, tables.

Every measured tool runs in its own child process, so its peak RSS (``ru_maxrss`` from ``wait4``, which
covers the child and the processes it waited for) and CPU time are its own. Scripts print Markdown (a
``### title``, notes, tables) and end with ``ratio:`` lines; ``run_all.py`` collects them into RESULTS.md.
"""

from __future__ import annotations

import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
XC = SHARED / "xc-pr-birds"
VENV_PY = sys.executable


@dataclass
class Child:
    """A finished child process."""

    rc: int
    out: str
    err: str
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_mb: float

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def run_child(argv: list[str], *, env: dict | None = None, cwd: str | Path | None = None,
              check: bool = True) -> Child:
    """Run ``argv`` to completion; wall time, CPU time and peak RSS of it (and its waited-for children)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd or REPO, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        rss = ru.ru_maxrss / 1024
        child = Child(p.returncode, out.read(), err.read(), wall, ru.ru_utime, ru.ru_stime, rss)
    if check and child.rc != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({child.rc}):\n{child.err[-3000:]}")
    return child


def last_json(text: str) -> dict:
    """The last line of ``text`` that parses as a JSON object (what child drivers print as their result)."""
    import json

    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError(f"no JSON result in output:\n{text[-2000:]}")


def interleaved(script: str, whos: list[str], reps: int, args: list[str]) -> dict[str, list[dict]]:
    """Each configuration's child results, ``reps`` runs each, interleaved A B C, then C B A, ...

    Every configuration thus sees early and late load on a shared machine. A child is ``python script
    --child WHO *args`` and prints its result as a JSON line (:func:`last_json`); its wall time
    (``elapsed_s``) goes to stderr as it finishes.
    """
    runs: dict[str, list[dict]] = {w: [] for w in whos}
    for r in range(reps):
        for who in whos if r % 2 == 0 else whos[::-1]:
            runs[who].append(last_json(run_child([sys.executable, script, "--child", who, *args]).out))
            print(f"  {who}: {runs[who][-1]['elapsed_s']:.1f} s", file=sys.stderr, flush=True)
    return runs


def xc_files() -> list[tuple[Path, float]]:
    """(path, duration s) of the real xeno-canto recordings, sorted by path."""
    rows = list(csv.DictReader((XC / "train.csv").open(newline="")))
    return sorted((XC / "train_audio" / r["filename"], float(r["duration_s"])) for r in rows)


def xc_subset(minutes: float, seed: int = 0) -> tuple[list[Path], float]:
    """A fixed subset of the recordings (seeded order) holding at least ``minutes`` of audio; (paths, s)."""
    import numpy as np

    files = xc_files()
    order = np.random.default_rng(seed).permutation(len(files))
    picked, total = [], 0.0
    for i in order:
        if total >= minutes * 60:
            break
        picked.append(files[i])
        total += files[i][1]
    return sorted(p for p, _ in picked), total


def require_shared() -> None:
    """Exit with a clear line when the shared real data is missing."""
    if not (XC / "train.csv").is_file():
        sys.exit(f"benchmark needs the real recordings at {XC} (see ../shared/data/README.md)")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def load() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def table(rows: list[dict], cols: list[str] | None = None) -> str:
    """A Markdown table of dicts (columns: ``cols`` or the first row's keys)."""
    if not rows:
        return "(no rows)"
    cols = cols or list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |")
    return "\n".join(out)


def _fmt(v) -> str:
    if isinstance(v, float):
        if v == 0 or abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        if abs(v) >= 0.01:
            return f"{v:.2f}"
        return f"{v:.2g}"
    return str(v)


def header(title: str, note: str = "") -> None:
    """Print the section title (and a note paragraph) of a benchmark."""
    print(f"### {title}\n")
    if note:
        print(note.strip() + "\n")
    print(f"Load average at start (1/5/15 min): {load()} on {cores()} cores.\n", flush=True)

"""Fault-injection harness: extraction in a subprocess, killed or interrupted at random points, then resumed.

Used by ``tests/test_faults.py`` (seeded kills in CI) and ``benchmarks/fault_injection.py`` (≥ 50 kills).

The worker (the process that is killed) is ``fault_worker.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
LABELS = ("aaa", "bbb", "ccc")
#: the dataset folder of an extraction of ``make_dataset``'s split with the toy backbone
DATASET = Path("toy") / "train_audio"


def make_dataset(root: Path, n_files: int = 12, seed: int = 0) -> Path:
    """A data root with ``train_audio/``: ``n_files`` OGGs of 3-17 s in 3 label folders, plus 2 bad files.

    One name has a space and a non-ASCII letter; ``bad/junk.ogg`` is random bytes and ``bad/empty.ogg`` is
    empty, so every run also writes a failures table.
    """
    from conftest import write_audio

    rng = np.random.default_rng(seed)
    for k in range(n_files):
        li = k % len(LABELS)
        name = f"XC{k:03d} é.ogg" if k == 1 else f"XC{k:03d}.ogg"
        dur = float(rng.uniform(3.0, 17.0))
        write_audio(
            root / "train_audio" / LABELS[li] / name, dur, freq=500.0 + 1500 * li, seed=seed * 1000 + k
        )
    bad = root / "train_audio" / "bad"
    bad.mkdir(parents=True, exist_ok=True)
    (bad / "junk.ogg").write_bytes(rng.bytes(3000))
    (bad / "empty.ogg").write_bytes(b"")
    return root


def worker_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    """Command line of one extraction worker (float32 storage, a shard per finished file)."""
    return [
        sys.executable, str(TESTS / "fault_worker.py"), "extract",
        "--backbone", "toy", "--data", str(data), "--split", "train_audio", "--out", str(out),
        "--no-progress", "--dtype", "float32", "--batch-size", "2", "--flush-s", "0", *extra,
    ]  # fmt: skip


def worker_env(
    log: Path | None = None,
    delay_s: float = 0.0,
    pause_s: float = 0.0,
    stall_s: float = 0.0,
    stall_at: str = "write",
) -> dict[str, str]:
    """Environment of a worker: this interpreter's, plus the hooks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDKIT_TOY", "EMBEDKIT_FAULT"))}
    env["EMBEDKIT_TOY_DELAY_S"] = str(delay_s)
    env["EMBEDKIT_FAULT_WRITE_PAUSE_S"] = str(pause_s)
    env["EMBEDKIT_FAULT_STALL_S"] = str(stall_s)
    env["EMBEDKIT_FAULT_STALL_AT"] = stall_at
    if log is not None:
        env["EMBEDKIT_FAULT_LOG"] = str(log)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _log_lines(log: Path) -> list[str]:
    try:
        return log.read_text().split()
    except FileNotFoundError:
        return []


@dataclass
class Outcome:
    """How one worker run ended."""

    rc: int
    stderr: str
    signalled: bool  # the signal was sent before the worker finished
    mid_write: bool  # ... while the bytes of a Parquet file were half written
    wall_s: float
    late: bool = False  # ... after extraction had returned (interpreter shutdown)
    last_mark: str = ""  # the last hook mark logged before the signal


def run_worker(
    cmd: list[str],
    env: dict[str, str],
    log: Path,
    *,
    after_s: float | None = None,
    sig: int = signal.SIGKILL,
    from_mark: str | None = None,
    timeout_s: float = 120.0,
) -> Outcome:
    """Run a worker; send ``sig`` ``after_s`` seconds after it starts (or after ``from_mark`` is logged).

    ``after_s=None`` runs it to completion. ``from_mark="begin"`` with ``after_s=0`` hits the first write.
    """
    log.unlink(missing_ok=True)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    signalled, mid, late, last = False, False, False, ""
    try:
        if after_s is not None:
            start = t0
            if from_mark is not None:
                while from_mark not in _log_lines(log) and p.poll() is None:
                    if time.monotonic() - t0 > timeout_s:
                        raise TimeoutError(f"worker never logged {from_mark!r}")
                    time.sleep(0.002)
                start = time.monotonic()
            while p.poll() is None and time.monotonic() - start < after_s:
                time.sleep(min(0.005, max(0.0, after_s - (time.monotonic() - start))))
            if p.poll() is None:
                lines = _log_lines(log)
                p.send_signal(sig)
                signalled = True
                last = lines[-1] if lines else ""
                mid, late = last == "begin", "done" in lines
        _, err = p.communicate(timeout=timeout_s)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return Outcome(p.returncode, err, signalled, mid, time.monotonic() - t0, late, last)


# -- checks --------------------------------------------------------------------------------------------------


def shard_problems(dataset: Path) -> list[str]:
    """Problems visible to a reader right now: unreadable shards or failure tables (partial files)."""
    import pyarrow.parquet as pq

    from embedkit.store import failure_paths, read_meta, shard_paths

    out = []
    for sp in shard_paths(dataset) + failure_paths(dataset):
        try:
            if sp.name.startswith("part-"):
                read_meta(sp)
            pq.read_table(sp)
        except Exception as e:
            out.append(f"unreadable {sp.name}: {type(e).__name__}: {e}")
    return out


def snapshot(dataset: Path) -> dict:
    """Everything compared between runs: sorted keys, float32 embeddings, failures, raw duplicates, temps."""
    import pyarrow.parquet as pq

    from embedkit.store import read_embeddings, read_failures, shard_paths

    keys, X = read_embeddings(dataset)
    raw = [pq.read_table(sp, columns=["file", "window"]).to_pandas() for sp in shard_paths(dataset)]
    n_raw = sum(len(r) for r in raw)
    fails = read_failures(dataset)
    return {
        "keys": keys,
        "X": X,
        "failures": dict(zip(fails["file"], fails["reason"], strict=True)),
        "raw_duplicates": n_raw - len(keys),
        "temps": sorted(p.name for p in dataset.glob(".tmp-*")),
    }


def compare(dataset: Path, ref: dict) -> list[str]:
    """Problems of a finished dataset against the reference snapshot (empty list = identical)."""
    out = shard_problems(dataset)
    try:
        got = snapshot(dataset)
    except Exception as e:
        return [*out, f"cannot read {dataset}: {type(e).__name__}: {e}"]
    cols = ["file", "window", "start_s", "end_s", "row_id"]
    if not got["keys"][cols].equals(ref["keys"][cols]):
        a = set(map(tuple, got["keys"][["file", "window"]].values))
        b = set(map(tuple, ref["keys"][["file", "window"]].values))
        out.append(f"keys differ: {len(a - b)} extra, {len(b - a)} missing")
    elif not np.array_equal(got["X"], ref["X"]):
        out.append(f"embeddings differ (max abs diff {np.abs(got['X'] - ref['X']).max():.3g})")
    if got["raw_duplicates"]:
        out.append(f"{got['raw_duplicates']} duplicate rows across shards")
    if got["failures"] != ref["failures"]:
        out.append(f"failures differ: {got['failures']} vs {ref['failures']}")
    if got["temps"]:
        out.append(f"temporary files left: {got['temps']}")
    return out


# -- campaigns -----------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Counts of a fault-injection campaign."""

    kills: int = 0
    kills_mid_write: int = 0
    interrupts: int = 0
    interrupts_mid_write: int = 0
    late_signals: int = 0
    completed_runs: int = 0
    resumed_datasets: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One-line summary."""
        return (
            f"{self.kills} SIGKILLs ({self.kills_mid_write} during a shard write), {self.interrupts} SIGINTs "
            f"({self.interrupts_mid_write} during a shard write), {self.completed_runs} runs to completion, "
            f"{self.resumed_datasets} resumed datasets compared with the uninterrupted run, "
            f"{self.late_signals} signals after extraction had finished (not counted), "
            f"{len(self.problems)} problems"
        )


def reference(data: Path, work: Path, delay_s: float) -> tuple[dict, float]:
    """An uninterrupted worker run: (snapshot, wall seconds)."""
    out = work / "reference"
    res = run_worker(worker_cmd(data, out), worker_env(work / "ref.log", delay_s), work / "ref.log")
    if res.rc != 0:
        raise RuntimeError(f"reference run failed (rc {res.rc}):\n{res.stderr}")
    return snapshot(out / DATASET), res.wall_s


def kill_campaign(
    data: Path,
    work: Path,
    ref: dict,
    span_s: float,
    n_kills: int,
    rng: np.random.Generator,
    *,
    delay_s: float,
    pause_s: float,
    tally: Tally | None = None,
    sig: int = signal.SIGKILL,
    max_runs: int = 1000,
) -> Tally:
    """Kill workers at uniform random times in [0, span_s) until ``n_kills`` signals were delivered.

    A dataset is resumed (same command) after every kill; once a run completes, the dataset is compared with
    the reference and a fresh dataset starts. With ``sig=SIGINT`` the time counts from the start of
    extraction and each interrupted run must exit 130 with a message, no traceback and no temp file.
    """
    t = tally or Tally()
    done_signals, runs, episode = 0, 0, 0
    while done_signals < n_kills and runs < max_runs:
        episode += 1
        out = work / f"{signal.Signals(sig).name.lower()}-{episode}"
        while runs < max_runs:
            runs += 1
            log = work / f"run-{episode}-{runs}.log"
            cmd, env = worker_cmd(data, out), worker_env(log, delay_s, pause_s)
            mark = "run" if sig == signal.SIGINT else None
            res = run_worker(cmd, env, log, after_s=float(rng.uniform(0, span_s)), sig=sig, from_mark=mark)
            log.unlink(missing_ok=True)
            ds = out / DATASET
            finished = res.late or "files embedded, " in res.stderr  # the summary follows the last write
            if res.signalled and finished and sig != signal.SIGKILL:
                t.late_signals += 1  # the work was done: a Ctrl-C while printing or exiting is not a fault
                t.completed_runs += 1
                t.resumed_datasets += 1
                t.problems += [f"{out.name}: {p}" for p in compare(ds, ref)]
                break
            if res.signalled:
                done_signals += 1
                if sig == signal.SIGKILL:
                    t.kills += 1
                    t.kills_mid_write += res.mid_write
                else:
                    t.interrupts += 1
                    t.interrupts_mid_write += res.mid_write
                    t.problems += [f"SIGINT: {p}" for p in interrupt_problems(res, ds)]
                t.problems += [f"after a kill: {p}" for p in shard_problems(ds)] if ds.exists() else []
                continue
            if res.rc != 0:
                t.problems.append(f"run ended with rc {res.rc}: {res.stderr.strip()[-500:]}")
                break
            t.completed_runs += 1
            t.resumed_datasets += 1
            t.problems += [f"{out.name}: {p}" for p in compare(ds, ref)]
            break
    return t


def interrupt_problems(res: Outcome, dataset: Path) -> list[str]:
    """What a clean Ctrl-C stop must look like: exit 130, one line saying so (no traceback), no temp files."""
    out = []
    if res.rc != 130:
        out.append(f"exit status {res.rc}, expected 130")
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    if len(lines) != 1 or not lines[0].startswith("interrupted"):
        out.append(f"stderr is not one 'interrupted ...' line: {res.stderr.strip()[-500:]!r}")
    temps = sorted(p.name for p in dataset.glob(".tmp-*")) if dataset.exists() else []
    if temps:
        out.append(f"temporary files left after a clean stop: {temps}")
    return out


def kill_during_write(
    data: Path, work: Path, ref: dict, tally: Tally, sig: int = signal.SIGKILL, at: str = "write"
) -> None:
    """Signal a worker while the first half of a shard's bytes is on disk (``at="write"``) or right after the
    shard was renamed into place (``at="rename"``, before the run has noted it); then resume and compare."""
    out = work / f"at-{at}-{signal.Signals(sig).name.lower()}"
    log = work / f"at-{at}.log"
    mark = {"write": "begin", "rename": "renamed"}[at]
    # a SIGINT that the OS hands to a decoder thread is only seen by the main thread after its sleep ends
    stall = 30.0 if sig == signal.SIGKILL else 1.0
    env = worker_env(log, stall_s=stall, stall_at=at)
    res = run_worker(worker_cmd(data, out), env, log, after_s=0.0, sig=sig, from_mark=mark)
    ds = out / DATASET
    if not (res.signalled and res.last_mark == mark):
        tally.problems.append(
            f"the worker was not stopped at {mark!r} (rc {res.rc}, last mark {res.last_mark!r})"
        )
        return
    if sig == signal.SIGKILL:
        tally.kills += 1
        tally.kills_mid_write += res.mid_write
        if res.mid_write and not list(ds.glob(".tmp-*")):
            tally.problems.append("a kill during a write left no temporary file (was the write hit?)")
    else:
        tally.interrupts += 1
        tally.interrupts_mid_write += res.mid_write
        tally.problems += [f"SIGINT at {mark!r}: {p}" for p in interrupt_problems(res, ds)]
    tally.problems += [f"after a kill during a write: {p}" for p in shard_problems(ds)]
    res = run_worker(worker_cmd(data, out), worker_env(log), log)
    if res.rc != 0:
        tally.problems.append(f"resume after a kill during a write failed: rc {res.rc}: {res.stderr[-300:]}")
        return
    tally.completed_runs += 1
    tally.resumed_datasets += 1
    tally.problems += [f"{out.name}: {p}" for p in compare(ds, ref)]

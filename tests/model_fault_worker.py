"""Fault injection for model saves: SIGKILL a forked save at every step and at random instants.

Usage: ``python model_fault_worker.py SOURCE_MODEL ROOT N_KILLS SEED [fallback]``. Each round forks a child
that saves the source model's head under ``ROOT/m`` with ``meta["version"] = round``; the child is killed
either by itself on entering step k of the save (every step is taken in turn) or by the parent after a
random delay within a save's duration. After each kill the parent loads ``ROOT/m`` and records a problem
unless it is a complete model of the last finished version or of the attempted one. With ``fallback`` the
saves run without ``renameat2`` (rename aside, then rename in), so kills also land in the gap between the
two renames. Prints one JSON summary line.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

from embedkit.predict import model as pm
from embedkit.store import atomic

#: (module, attribute) of every step a save goes through
STEPS = [
    (atomic, "staging_dir"),
    (pm.Path, "write_text"),
    (atomic, "fsync_tree"),
    (atomic, "fsync_dir"),
    (os, "rename"),
    (atomic, "exchange"),
    (atomic, "prune_versions"),
]


def instrument(kill_at: int | None) -> list[int]:
    """Wrap every step; on entering step number ``kill_at`` (1-based, counted over calls) SIGKILL self."""
    seen: list[int] = []
    for i, (obj, name) in enumerate(STEPS):
        real = getattr(obj, name)

        def wrapped(*a, _real=real, _i=i, **kw):
            seen.append(_i)
            if kill_at is not None and len(seen) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return _real(*a, **kw)

        setattr(obj, name, wrapped)
    return seen


def save(src, final: Path, version: int) -> None:
    pm.save_model(final, src.head, src.meta["head"], src.labels, src.provenance, {"version": version})


def child(src, final: Path, version: int, kill_at: int | None, pipe_w: int | None) -> None:
    if FALLBACK:  # before instrument(): the no-renameat2 path is what gets wrapped
        atomic.exchange = lambda a, b: False
    seen = instrument(kill_at)
    save(src, final, version)
    if pipe_w is not None:
        os.write(pipe_w, json.dumps(seen).encode())
    os._exit(0)


def run_child(src, final, version, kill_at=None, delay=None) -> tuple[bool, list[int]]:
    """Fork a save; returns (was killed, steps seen by an uninterrupted child)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        child(src, final, version, kill_at, w)
    os.close(w)
    if delay is not None:
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    data = os.read(r, 1 << 16)
    os.close(r)
    killed = os.WIFSIGNALED(status)
    return killed, (json.loads(data) if data else [])


FALLBACK = len(sys.argv) > 5 and sys.argv[5] == "fallback"


def main() -> int:
    src_path, root, n_kills, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    src = pm.load_model(src_path)
    final = root / "m"
    save(src, final, 0)
    t = time.monotonic()
    _, steps = run_child(src, final, 1)  # calibration: the steps of one save and its duration
    duration = time.monotonic() - t
    n_steps = len(steps)
    done, kills, problems, hit = 1, 0, [], set()
    saw = {"old": 0, "new": 0}
    version = 1
    while kills < n_kills:
        version += 1
        k = kills % (2 * n_steps)
        if k < n_steps:  # deterministic: die on entering step k+1
            killed, _ = run_child(src, final, version, kill_at=k + 1)
            if killed:
                hit.add(k)
        else:  # an instant anywhere in the save
            killed, _ = run_child(src, final, version, delay=rng.uniform(0, duration))
        if not killed:
            done = version
            continue
        kills += 1
        try:
            got = pm.load_model(final).meta.get("version")
        except Exception as e:  # noqa: BLE001 - any failure to load is the problem being counted
            problems.append(f"kill {kills}: {type(e).__name__}: {e}")
            continue
        if got == done:
            saw["old"] += 1
        elif got == version:
            saw["new"] += 1
            done = version
        else:
            problems.append(f"kill {kills}: version {got}, expected {done} or {version}")
    save(src, final, version + 1)  # a clean save afterwards removes every dead writer's leftovers
    left = sorted(p.name for p in root.iterdir())
    if left[-1] != "m" or len(left) != 1 + atomic.KEEP_VERSIONS or any(
        not n.startswith(".m.prev-") for n in left[:-1]
    ):
        problems.append(f"after a clean save: {left}")
    for n in left[:-1]:  # every kept version is a complete model too
        try:
            pm.load_model(root / n)
        except Exception as e:  # noqa: BLE001
            problems.append(f"kept version {n}: {type(e).__name__}: {e}")
    print(json.dumps({"kills": kills, "steps": n_steps, "steps_hit": sorted(hit), "problems": problems,
                      "saw_old": saw["old"], "saw_new": saw["new"]}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

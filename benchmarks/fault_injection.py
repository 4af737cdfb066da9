"""Fault injection at scale: SIGKILL and SIGINT extraction at random points, resume, compare.

Each worker is the real ``embedkit extract`` command (toy backbone, ``tests/fault_harness.py``) on a small
synthetic split, killed at a uniformly random time in its run; the same command is rerun on the same folder
until a run completes, and the finished dataset is compared with an uninterrupted run (same (file, window)
keys, identical float32 embeddings, no duplicate rows, no unreadable shard, same failures table, no temporary
file). Prints the counts; exit status 1 when any problem was seen.

    python benchmarks/fault_injection.py                  # 50 SIGKILLs + 10 SIGINTs, seed 0
    python benchmarks/fault_injection.py --kills 200 --seed 3
    python benchmarks/fault_injection.py --kills 0 --interrupts 0 --model-kills 200   # model saves only

``--model-kills N`` also SIGKILLs N model saves (``tests/model_fault_worker.py``: every step of a save and
random instants) with ``renameat2`` and N more on its fallback (rename aside, rename in); after each kill the
name must load as the complete old or new model.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fault_harness import Tally, kill_campaign, kill_during_write, make_dataset, reference  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=50, help="SIGKILLs at random times (default 50)")
    ap.add_argument(
        "--interrupts", type=int, default=10, help="SIGINTs (Ctrl-C) at random times (default 10)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--files", type=int, default=12, help="audio files in the split (plus 2 bad ones)")
    ap.add_argument("--delay", type=float, default=0.08, help="seconds per backbone call (spreads the run)")
    ap.add_argument(
        "--pause", type=float, default=0.02, help="seconds between the halves of each shard write"
    )
    ap.add_argument("--work", help="work folder (default: a temporary folder, removed afterwards)")
    ap.add_argument("--model-kills", type=int, default=0, help="SIGKILLs of model saves, per swap mode")
    args = ap.parse_args()
    if args.model_kills:
        bad = model_kills(args.model_kills, args.seed)
        if not args.kills and not args.interrupts:
            return 1 if bad else 0

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        data = make_dataset(work / "data", n_files=args.files, seed=args.seed)
        ref, wall = reference(data, work, args.delay)
        print(
            f"reference: {len(ref['keys'])} windows of {ref['keys']['file'].nunique()} files, "
            f"{len(ref['failures'])} failures, uninterrupted worker run {wall:.2f} s"
        )
        rng = np.random.default_rng(args.seed)
        tally = Tally()
        kill_campaign(
            data, work, ref, wall, args.kills, rng, delay_s=args.delay, pause_s=args.pause, tally=tally
        )
        kill_during_write(data, work, ref, tally)
        kill_during_write(data, work, ref, tally, at="rename")
        kill_campaign(
            data, work, ref, 0.8 * wall, args.interrupts, rng,
            delay_s=args.delay, pause_s=args.pause, tally=tally, sig=signal.SIGINT,
        )  # fmt: skip
        kill_during_write(data, work, ref, tally, sig=signal.SIGINT)
        kill_during_write(data, work, ref, tally, sig=signal.SIGINT, at="rename")
        print(tally.line())
        for p in tally.problems:
            print(f"  PROBLEM: {p}")
        print(f"seed {args.seed}, {time.monotonic() - t0:.0f} s")
    return 1 if tally.problems else 0


def model_kills(n: int, seed: int) -> int:
    """Run the model-save kill campaign in both swap modes; prints one line each; returns problems seen."""
    import json
    import os
    import subprocess

    from embedkit.heads.logreg import LogRegHead
    from embedkit.predict.model import save_model

    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        X = np.random.default_rng(seed).normal(size=(300, 64)).astype(np.float32)
        Y = np.eye(5, dtype=bool)[np.arange(300) % 5]
        src = save_model(Path(tmp) / "src", LogRegHead().fit(X, Y), "logreg", list("abcde"),
                         {"backbone": "toy", "dim": 64}, {})  # fmt: skip
        worker = Path(__file__).resolve().parents[1] / "tests" / "model_fault_worker.py"
        env = {**os.environ, "PYTHONPATH": str(worker.parents[1])}
        for mode in ("exchange", "fallback"):
            t0 = time.monotonic()
            res = subprocess.run(
                [sys.executable, str(worker), str(src), str(Path(tmp) / mode), str(n), str(seed), mode],
                capture_output=True, text=True, env=env,
            )  # fmt: skip
            s = json.loads(res.stdout.strip().splitlines()[-1])
            bad += len(s["problems"]) + (res.returncode != 0)
            print(
                f"model saves ({mode}): {s['kills']} SIGKILLs, {len(s['steps_hit'])}/{s['steps']} steps hit, "
                f"after the kill the name held the old model {s['saw_old']}x, the new {s['saw_new']}x, "
                f"problems {len(s['problems'])} ({time.monotonic() - t0:.0f} s)"
            )
            for p in s["problems"]:
                print(f"  PROBLEM: {p}")
    return bad


if __name__ == "__main__":
    sys.exit(main())

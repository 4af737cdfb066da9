"""Fault injection at scale: SIGKILL and SIGINT extraction at random points, resume, compare.

Each worker is the real ``embedkit extract`` command (toy backbone, ``tests/fault_harness.py``) on a small
synthetic split, killed at a uniformly random time in its run; the same command is rerun on the same folder
until a run completes, and the finished dataset is compared with an uninterrupted run (same (file, window)
keys, identical float32 embeddings, no duplicate rows, no unreadable shard, same failures table, no temporary
file). Prints the counts; exit status 1 when any problem was seen.

    python benchmarks/fault_injection.py                  # 50 SIGKILLs + 10 SIGINTs, seed 0
    python benchmarks/fault_injection.py --kills 200 --seed 3
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
    args = ap.parse_args()

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


if __name__ == "__main__":
    sys.exit(main())

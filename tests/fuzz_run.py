"""The long fuzz run (``make fuzz``): every target in turn, random seeds, until the time is up; counts.

    python tests/fuzz_run.py --minutes 30 [--targets booster,kit-booster | all] [--batch 20] [--log F]

Unlike ``test_fuzz.py`` (stops at the first failure, shrinks it), this keeps going and counts per target:
cases, failures by kind (signal, hang, traceback, memory, multiline, stderr, died), and the distinct first
lines of the failures; each failing case (target, file, mutations, message) is appended to ``--log`` (JSON
lines). Prints a summary table and one JSON line; exit 1 if anything failed. Hypothesis settings through
``EMBEDKIT_FUZZ_*`` (``MEM_MB``, ``TIMEOUT_S``) and ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS.parent))

import conftest  # noqa: E402,F401  (registers the toy backbone)
from fuzz_corpus import build_corpus  # noqa: E402
from fuzz_harness import Worker, new_scratch, run_case  # noqa: E402
from fuzz_mutate import mutations  # noqa: E402
from fuzz_targets import ALL, selected  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _first_line(res: dict) -> str:
    text = (res.get("message") or "").strip().splitlines()
    last = text[-1] if text else ""
    return f"{res['failure']}: {last[:160]}"


def fuzz_batch(target, corpus, worker, dim, scratch, n, s, stats, log) -> None:
    """``n`` hypothesis examples of ``target`` with seed ``s``; outcomes counted in ``stats``."""

    @seed(s)
    @settings(max_examples=n, derandomize=False, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(data=st.data())
    def body(data):
        choice = data.draw(st.integers(0, 7))
        ops = data.draw(mutations(target.files[choice % len(target.files)][1]))
        res = run_case(worker, target, corpus, ops, choice, dim, scratch)
        st_ = stats[target.name]
        st_["cases"] += 1
        st_[res["outcome"]] += 1
        if res["failure"]:
            st_["fail:" + res["failure"]] += 1
            st_["lines"][_first_line(res)] += 1
            if log:
                with open(log, "a") as f:
                    f.write(json.dumps({"target": target.name, "file": res["file"], "ops": repr(ops)[:3000],
                                        "failure": res["failure"], "message": res["message"][-3000:],
                                        "stderr": res.get("stderr", "")[-1000:]}) + "\n")  # fmt: skip

    body()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--targets", default="", help="comma-separated target names, or all (default: all)")
    ap.add_argument("--batch", type=int, default=20, help="examples per target per turn")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--log", default="fuzz-failures.jsonl")
    a = ap.parse_args(argv)
    names = list(ALL) if a.targets in ("", "all") else a.targets.split(",")
    targets = selected(names)
    base = Path(tempfile.mkdtemp(prefix="embedkit-fuzz-corpus-"))
    t0 = time.monotonic()
    try:
        corpus = build_corpus(base)
        dim = int(json.loads((corpus["model-lgbm"] / "model.json").read_text())["provenance"]["dim"])
        print(f"corpus built in {time.monotonic() - t0:.0f} s; fuzzing {len(targets)} targets for "
              f"{a.minutes:g} min, seed {a.seed}", flush=True)  # fmt: skip
        stats = defaultdict(lambda: Counter(lines=Counter()))
        worker, scratch = Worker(), new_scratch()
        end, turn = time.monotonic() + 60 * a.minutes, 0
        try:
            while time.monotonic() < end:
                for target in targets:
                    if time.monotonic() >= end:
                        break
                    fuzz_batch(target, corpus, worker, dim, scratch, a.batch, a.seed + turn, stats, a.log)
                turn += 1
        finally:
            worker.stop()
            shutil.rmtree(scratch, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return report(stats, time.monotonic() - t0, worker.starts)


def report(stats, seconds: float, starts: int) -> int:
    """Print the per-target table and the JSON summary; 1 if any case failed."""
    kinds = ("signal", "hang", "traceback", "memory", "multiline", "stderr", "died")
    total = Counter()
    print(f"{'target':24s} {'cases':>6s} {'ok':>5s} {'error':>6s} " + " ".join(f"{k:>9s}" for k in kinds))
    for name, s in stats.items():
        fails = [s["fail:" + k] for k in kinds]
        row = f"{name:24s} {s['cases']:6d} {s['ok']:5d} {s['error']:6d} "
        print(row + " ".join(f"{f:9d}" for f in fails))
        for line, n in s["lines"].most_common(5):
            print(f"    {n:5d} x {line}")
        total["cases"] += s["cases"]
        for k in kinds:
            total[k] += s["fail:" + k]
    summary = {"seconds": round(seconds), "worker_starts": starts, **total}
    print(json.dumps(summary))
    return 1 if any(total[k] for k in kinds) else 0


if __name__ == "__main__":
    sys.exit(main())

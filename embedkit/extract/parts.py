"""``--part``: the share of the files this run takes (``i/N``, or ``auto`` from the scheduler's environment).

``i/N`` takes the files whose path hashes to i modulo N (:func:`in_part`), so N machines or array tasks
share one extraction without talking to each other.

Slurm job arrays (``sbatch --array=0-7``) set ``SLURM_ARRAY_TASK_ID``, ``SLURM_ARRAY_TASK_MIN`` and
``SLURM_ARRAY_TASK_COUNT`` (and ``SLURM_ARRAY_TASK_STEP`` for ``--array=0-14:2``); the part is
``(ID - MIN) / STEP`` of ``COUNT``, so ``--array=1-8`` works as well as ``0-7``. Arrays with a list of
indices (``--array=1,4,9``) are refused: their IDs do not map onto 0..N-1.

A Kubernetes Indexed Job (``completionMode: Indexed``) sets ``JOB_COMPLETION_INDEX`` in every pod but does
not expose ``spec.completions``; pass it as ``EMBEDKIT_PART_COUNT`` in the pod's ``env``. The same pair
(``EMBEDKIT_PART_INDEX`` + ``EMBEDKIT_PART_COUNT``) works for any other launcher.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping

from embedkit.errors import UsageError

_HINT = (
    "--part auto needs a Slurm job array (SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT), a Kubernetes "
    "Indexed Job (JOB_COMPLETION_INDEX plus EMBEDKIT_PART_COUNT = spec.completions) or EMBEDKIT_PART_INDEX "
    "and EMBEDKIT_PART_COUNT"
)


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise UsageError(f"--part auto: {name}={env[name]!r} is not an integer") from None


def part_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int, str]:
    """(i, N, where from) of this task; 0 <= i < N.

    Args:
        env: environment to read (default ``os.environ``).

    Raises:
        UsageError: no scheduler variables, or values that do not give 0 <= i < N (one line, with the fix).
    """
    env = os.environ if env is None else env
    if "SLURM_ARRAY_TASK_ID" in env:
        if "SLURM_ARRAY_TASK_COUNT" not in env:
            raise UsageError(f"--part auto: SLURM_ARRAY_TASK_ID is set, SLURM_ARRAY_TASK_COUNT not; {_HINT}")
        tid, n = _int(env, "SLURM_ARRAY_TASK_ID"), _int(env, "SLURM_ARRAY_TASK_COUNT")
        lo = _int(env, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in env else 0
        step = _int(env, "SLURM_ARRAY_TASK_STEP") if "SLURM_ARRAY_TASK_STEP" in env else 1
        if step < 1 or (tid - lo) % step:
            raise UsageError(
                f"--part auto: Slurm array task {tid} is not on the array's grid (min {lo}, step {step}); "
                f"use --array=A-B or A-B:S, or --part i/N"
            )
        i, where = (tid - lo) // step, f"Slurm array task {tid} (min {lo}, step {step}, count {n})"
    elif "JOB_COMPLETION_INDEX" in env or "EMBEDKIT_PART_INDEX" in env:
        name = "JOB_COMPLETION_INDEX" if "JOB_COMPLETION_INDEX" in env else "EMBEDKIT_PART_INDEX"
        if "EMBEDKIT_PART_COUNT" not in env:
            raise UsageError(
                f"--part auto: {name} is set but EMBEDKIT_PART_COUNT is not; set it to the number of "
                f"parts (a Kubernetes Indexed Job's spec.completions)"
            )
        i, n = _int(env, name), _int(env, "EMBEDKIT_PART_COUNT")
        where = f"{name}={i} of EMBEDKIT_PART_COUNT={n}"
    else:
        raise UsageError(_HINT)
    if not (n >= 1 and 0 <= i < n):
        raise UsageError(f"--part auto: {where} does not give a part 0 <= i < N (i={i}, N={n})")
    return i, n, where


def parse_part(part: str | None) -> tuple[int, int]:
    """``"i/N"`` → (i, N) with 0 <= i < N; ``None`` → (0, 1); ``"auto"`` → from Slurm / Kubernetes."""
    if not part:
        return 0, 1
    if part == "auto":
        i, n, where = part_from_env()
        print(f"--part auto: part {i}/{n} ({where})", file=sys.stderr)
        return i, n
    try:
        i, n = (int(x) for x in part.split("/"))
    except ValueError:
        raise UsageError(f"--part must look like i/N (e.g. 0/4), got {part!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise UsageError(f"--part {part}: need 0 <= i < N")
    return i, n


def in_part(rel: str, i: int, n: int) -> bool:
    """Stable assignment of a relative path to one of ``n`` parts (hash of the path)."""
    return n == 1 or int.from_bytes(hashlib.sha1(rel.encode()).digest()[:8], "big") % n == i

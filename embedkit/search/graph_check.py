"""A search graph from elsewhere is opened in a separate process first: usearch's loader trusts its bytes.

Hashes prove that ``vectors-*.usearch`` is the file ``index.json`` names, not that its bytes are sane: a graph
changed on purpose (hashes recomputed) can make usearch's native loader or search read out of bounds
(SIGSEGV, found by the fuzzer, ``tests/test_fuzz.py``). So before a graph is loaded in the user's process,
:func:`check_graph` loads it in a child process under a memory cap and a timeout, checks its size and
dimension, and searches a sample of its own vectors; a child that dies by a signal, runs out of memory or
time, or fails a check means the file is refused in one line. Graphs this user's ``embedkit index`` wrote,
and graphs that passed once, are remembered by SHA-256 in ``~/.cache/embedkit/trusted-graphs.txt``
(``$EMBEDKIT_TRUSTED_GRAPHS`` moves it) and load without the extra process. It is a defence in depth,
not a proof: a crafted graph could pass the sample and fail another query.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from embedkit.store import StoreError

#: seconds the check process may take (plus one per 100 MB of graph)
TIMEOUT_S = 60.0
#: address-space cap of the check process: this much plus 4x the graph's size
MEMORY_BASE = 2 << 30

_CHILD = """
import sys, json
import numpy as np
from embedkit.search import ann

def check(path, dim, n, params):
    g = ann.load_graph(path, dim, params)
    if len(g) != n or int(g.ndim) != dim:
        print(f"graph has {len(g)} vectors of {int(g.ndim)} dims, index.json says {n} of {dim}"); sys.exit(3)
    if n:
        keys = np.unique(np.linspace(0, n - 1, min(n, 64)).astype(np.int64))
        X = np.asarray(g.get(keys), np.float32).reshape(len(keys), dim)
        if not np.isfinite(X).all():
            print("graph holds non-finite vectors"); sys.exit(3)
        ann.graph_topk(g, X, min(10, n), threads=1)

try:
    check(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4]))
except (MemoryError, RuntimeError) as e:
    if isinstance(e, MemoryError) or "memory" in str(e).lower():
        sys.exit(4)  # more than the cap: said by the parent
    raise
"""


def trusted_file() -> Path:
    """``$EMBEDKIT_TRUSTED_GRAPHS``, default ``~/.cache/embedkit/trusted-graphs.txt``."""
    default = Path.home() / ".cache" / "embedkit" / "trusted-graphs.txt"
    return Path(os.environ.get("EMBEDKIT_TRUSTED_GRAPHS") or default)


def is_trusted(sha: str) -> bool:
    """Whether a graph of this SHA-256 was written here or passed a check."""
    try:
        return sha in trusted_file().read_text().split()
    except OSError:
        return False


def trust(sha: str) -> None:
    """Remember a graph's SHA-256 (written by this user's ``embedkit index``, or checked); best effort."""
    try:
        f = trusted_file()
        f.parent.mkdir(parents=True, exist_ok=True)
        with open(f, "a") as out:
            out.write(sha + "\n")
    except OSError:
        pass  # an unwritable cache only costs the check next time


def _limit(cap: int):
    def preexec():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return preexec


def check_graph(path: Path, sha: str, dim: int, n: int, params: dict) -> None:
    """Open the graph in a child process unless trusted (see the module docstring).

    Args:
        path: the graph file (its SHA-256 checked against ``index.json`` already).
        sha: its SHA-256.
        dim: vector dimension of ``index.json``.
        n: number of vectors of ``index.json``.
        params: the engine's parameters of ``index.json``.

    Raises:
        StoreError: the child failed: one line naming the file, what happened and the fix.
    """
    import json

    if is_trusted(sha):
        return
    size = path.stat().st_size
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-c", _CHILD, str(path), str(int(dim)), str(int(n)), json.dumps(params)]
    fix = "it is corrupt or was altered; rebuild it: embedkit index --embeddings DATASET --rebuild"
    try:
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=TIMEOUT_S + size / 100e6,
                           preexec_fn=_limit(MEMORY_BASE + 4 * size))  # fmt: skip
    except subprocess.TimeoutExpired:
        raise StoreError(f"{path}: refused: checking the search graph took too long; {fix}") from None
    if r.returncode != 0:
        cap = (MEMORY_BASE + 4 * size) >> 20
        if r.returncode == 4:
            what = f"asks for more than its check process may hold ({cap} MiB for {n} vectors of {dim} dims)"
        elif r.returncode < 0:
            what = f"crashed its check process (signal {-r.returncode})"
        else:
            last = (r.stdout.strip() or r.stderr.strip() or f"exit {r.returncode}").splitlines()[-1]
            what = f"failed its check ({' '.join(last.split())[:160]})"
        raise StoreError(f"{path}: refused: the search graph {what}; {fix}")
    trust(sha)

"""The process in which the fuzzer's loaders run: killed by a signal, a hang or the memory cap, not pytest.

Long-lived mode (``python fuzz_worker.py``): reads one JSON request per line on stdin,
``{"loader": "model", "path": "...", "dim": 16}``, runs the loader with fds 1 and 2 sent to a file, and writes
one JSON line on its original stdout: ``{"outcome": "ok" | "error" | "traceback" | "memory", "message": ...,
"stderr": what the loader wrote on fds 1/2}``. ``error`` is an ``EmbedkitError`` (or the kit script's
``sys.exit(message)``) whose message is one line: what the CLI prints as its one line before exit 2.

One-shot mode (``python fuzz_worker.py --once LOADER PATH DIM``): the loader as the CLI runs it: a user error
is one line on stderr and exit 2, anything else a traceback (exit 1), a signal kills the process.

Loaders (``LOADERS``): ``model`` (``load_model`` + predict on 4 random rows), ``index`` (``load_index`` + a
3-NN graph query), ``kit`` (the kit script's ``verify()`` + each listed model as ``model``), ``config-*``
(``config.load`` of that dataclass), ``hits`` (``read_hits``), ``sample`` (``load_labels_from_sample``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

# this checkout's embedkit, not whichever one the interpreter has installed
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _model(path: str, dim: int) -> None:
    from embedkit.predict.model import load_model

    m = load_model(path)
    X = np.random.default_rng(0).normal(size=(4, dim)).astype(np.float32)
    p = m.predict(X)
    assert p.shape == (4, len(m.labels)), p.shape


def _index(path: str, dim: int) -> None:
    from embedkit.search import ann
    from embedkit.search.index import load_index

    idx = load_index(path)
    q = ann.normalise(np.random.default_rng(0).normal(size=(1, dim)).astype(np.float32))
    ann.graph_topk(idx.graph, q, 3)


def _kit(path: str, dim: int) -> None:
    spec = importlib.util.spec_from_file_location("kaggle_infer_fuzz", Path(path) / "kaggle_infer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.verify()
    for name in mod.MODELS:
        _model(str(Path(path) / "models" / name), dim)


def _config(kind: str):
    def load(path: str, dim: int) -> None:
        from embedkit import config

        cls = {"extract": config.ExtractConfig, "fit": config.FitConfig, "infer": config.InferConfig}[kind]
        config.load(cls, path)

    return load


def _hits(path: str, dim: int) -> None:
    from embedkit.search.label import read_hits

    read_hits(path)


def _sample(path: str, dim: int) -> None:
    from embedkit.birdclef import load_labels_from_sample

    load_labels_from_sample(path)


def _selftest(path: str, dim: int) -> None:
    """Fails the way ``path`` names (segv, hang, alloc, traceback, noise, error): the harness's own test."""
    import signal
    import time

    from embedkit.errors import UsageError

    kind = Path(path).name
    if kind == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "hang":
        time.sleep(3600)
    if kind == "alloc":
        bytearray(64 * 2**30)
    if kind == "traceback":
        raise KeyError(kind)
    if kind == "noise":
        os.write(2, b"[native] a warning\n")
    if kind == "error":
        raise UsageError("one line")


LOADERS = {
    "selftest": _selftest,
    "model": _model,
    "index": _index,
    "kit": _kit,
    "config-extract": _config("extract"),
    "config-fit": _config("fit"),
    "config-infer": _config("infer"),
    "hits": _hits,
    "sample": _sample,
}


def _preload() -> None:
    """Import what the loaders use once, so each case costs only its own work."""
    import lightgbm  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import safetensors.numpy  # noqa: F401
    import torch  # noqa: F401

    import embedkit.birdclef  # noqa: F401
    import embedkit.config  # noqa: F401
    import embedkit.heads.lgbm  # noqa: F401
    import embedkit.heads.logreg  # noqa: F401
    import embedkit.heads.mil  # noqa: F401
    import embedkit.heads.mlp  # noqa: F401
    import embedkit.predict.model  # noqa: F401
    import embedkit.search.index  # noqa: F401
    import embedkit.search.label  # noqa: F401


def run_case(req: dict) -> dict:
    """Run one request with fds 1 and 2 captured; the outcome as a dict (see the module docstring)."""
    from embedkit.errors import user_errors

    with tempfile.TemporaryFile() as cap:
        sys.stdout.flush(), sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(cap.fileno(), 1), os.dup2(cap.fileno(), 2)
        try:
            LOADERS[req["loader"]](req["path"], int(req.get("dim", 16)))
            res = {"outcome": "ok", "message": ""}
        except user_errors() as e:
            res = {"outcome": "error", "message": str(e)}
        except SystemExit as e:  # the kit script: sys.exit("[kit] ..."), or one line on stderr + sys.exit(2)
            ok = isinstance(e.code, str) and req["loader"] == "kit"
            printed = e.code == 2 and req["loader"] == "kit"
            outcome = "error" if ok else "kit-exit-2" if printed else "traceback"
            res = {"outcome": outcome, "message": str(e.code)}
        except MemoryError:
            res = {"outcome": "memory", "message": traceback.format_exc(limit=-3)}
        except BaseException:  # noqa: BLE001 - what the CLI would show as a traceback
            res = {"outcome": "traceback", "message": traceback.format_exc(limit=-4)}
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])
        cap.seek(0)
        res["stderr"] = cap.read(4000).decode("utf-8", "replace")
    if res["outcome"] == "kit-exit-2":  # what it printed is its one line (more lines: multiline below)
        res = {"outcome": "error", "message": res["stderr"].strip(), "stderr": ""}
    if res["outcome"] == "error" and "\n" in res["message"].strip():
        res["outcome"] = "multiline"
    return res


def serve() -> None:
    """The long-lived loop: one JSON request per stdin line, one JSON result per stdout line."""
    if os.environ.get("EMBEDKIT_FUZZ_PRELOAD", "1") == "1":
        _preload()
    out = os.fdopen(os.dup(1), "w")
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        out.write(json.dumps(run_case(json.loads(line))) + "\n")
        out.flush()


def once(loader: str, path: str, dim: int) -> int:
    """One loader as the CLI runs it: a user error → one line on stderr, exit 2."""
    from embedkit.errors import user_errors

    try:
        LOADERS[loader](path, dim)
    except user_errors() as e:
        print(f"embedkit: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--once"]:
        sys.exit(once(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    serve()

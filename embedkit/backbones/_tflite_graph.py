"""TFLite flatbuffer rewrites shared by the TFLite backbones: expose inner tensors as graph outputs, cached.

With the default XNNPACK delegate the interpreter keeps intermediate tensors private, so a layer that is not
a graph output cannot be read. :func:`with_outputs` writes a copy of the model with the named tensors added
to the first subgraph's outputs (the numbers do not change: same operators and kernels), cached under
``$EMBEDKIT_CACHE`` or ``~/.cache/embedkit`` by the source's SHA-256 and the names. Uses the TFLite schema
module bundled in ai-edge-litert.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from embedkit.backbones.base import BackboneError


def cache_dir() -> Path:
    """Cache folder for derived model files: ``$EMBEDKIT_CACHE`` or ``~/.cache/embedkit``."""
    return Path(os.environ.get("EMBEDKIT_CACHE") or Path.home() / ".cache" / "embedkit")


def load_model(buf: bytes):
    """The mutable object tree (``ModelT``) of a TFLite flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema

    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))


def pack_model(model, size_hint: int = 0) -> bytes:
    """Serialise a ``ModelT`` back to TFLite flatbuffer bytes."""
    import flatbuffers

    builder = flatbuffers.Builder(size_hint + (1 << 16))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def tensor_names(sg) -> list[str]:
    """Names of the tensors of a subgraph (``SubGraphT``), in index order."""
    return [(t.name or b"").decode() for t in sg.tensors]


def add_outputs(sg, indices: list[int]) -> None:
    """In place: append tensor ``indices`` that are not outputs yet to the subgraph's outputs."""
    outputs = [int(i) for i in sg.outputs]
    sg.outputs = outputs + [i for i in indices if i not in outputs]


def write_atomic(dst: Path, data: bytes) -> None:
    """Write ``data`` to ``dst`` through a temp file + ``os.replace`` (a reader never sees a partial file)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dst.name + ".", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached(sub: str, name: str, build: Callable[[Path], None]) -> Path:
    """``cache_dir()/sub/name``, made by ``build(dst)`` if missing; under the temp dir if not writable."""
    fallback = Path(tempfile.gettempdir()) / f"embedkit-{os.getuid() if hasattr(os, 'getuid') else 'u'}"
    for folder in (cache_dir() / sub, fallback / sub):
        dst = folder / name
        if dst.is_file() and dst.stat().st_size > 0:
            return dst
        try:
            build(dst)
            return dst
        except OSError:
            continue
    raise BackboneError("cannot write a rewritten TFLite model; set EMBEDKIT_CACHE to a writable folder")


def with_outputs(src: Path, sha: str, names: list[str]) -> Path:
    """Path of a cached copy of the TFLite model ``src`` (SHA-256 ``sha``) with tensors ``names`` as outputs.

    Raises:
        BackboneError: a name is not a tensor of the model (the message lists a few similar ones).
    """
    key = hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]

    def build(dst: Path) -> None:
        buf = src.read_bytes()
        model = load_model(buf)
        sg = model.subgraphs[0]
        all_names = tensor_names(sg)
        missing = [n for n in names if n not in all_names]
        if missing:
            near = [t for t in all_names if missing[0].split("/")[-1].lower() in t.lower()][:5]
            raise BackboneError(
                f"{src}: no tensor named {missing[0]!r}" + (f" (similar: {near})" if near else "")
            )
        add_outputs(sg, [all_names.index(n) for n in names])
        write_atomic(dst, pack_model(model, len(buf)))

    return cached("tflite", f"{sha}_{key}.tflite", build)


def graph_tensors(src: Path) -> list[str]:
    """Names of all tensors of the first subgraph of a TFLite file."""
    return tensor_names(load_model(src.read_bytes()).subgraphs[0])

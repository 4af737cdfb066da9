"""``embedkit export MODEL --from-audio``: one graph from audio windows to probabilities (onnx, perch).

For a model whose backbone is itself an ONNX file (``--backbone onnx`` / ``perch``), the backbone's graph is
put in front of the head's, doing what :class:`~embedkit.backbones._described.DescribedBackbone` does around
it: input ``audio`` float32 ``[batch, samples]`` (mono windows at the description's ``sample_rate``,
``samples = window_s * sample_rate``), the optional per-window normalisation (mean removed, peak scaled to
``normalize``), the ``B,1,S`` layout, the model, and mean/max pooling of ``[B, T, D]`` outputs; its embedding
(and logits) then feed the head. Decoding, resampling and cutting windows stay outside, as do TTA and
smoothing. The backbone's file is found where the model's provenance says (or ``--weights``) and must have
the recorded SHA-256; its graph is converted to opset 17 when it declares another.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedkit.errors import UsageError
from embedkit.predict.onnx_graph import OPSET, Graph

#: backbones whose model is an ONNX file described by ``provenance["model"]``
AUDIO_BACKBONES = ("onnx", "perch")


def _backbone_file(model, weights: str | None) -> Path:
    from embedkit.files import sha256_file

    prov = model.provenance
    if prov.get("backbone") not in AUDIO_BACKBONES or model.meta.get("fusion"):
        raise UsageError(
            f"export --from-audio: {model.folder} uses the {prov.get('backbone')!r} backbone"
            f"{' (fused)' if model.meta.get('fusion') else ''}; one graph from audio needs a single "
            f"{' or '.join(AUDIO_BACKBONES)} backbone (export the head alone: drop --from-audio)"
        )
    path = Path(weights or prov.get("model_file") or "")
    if not path.is_file():
        raise UsageError(f"export --from-audio: backbone file {path} not found; pass --weights MODEL.onnx")
    want = str(prov.get("weights", ""))
    if want.startswith("sha256:") and f"sha256:{sha256_file(path)}" != want:
        raise UsageError(
            f"export --from-audio: {path} is not the backbone the model was fit on (SHA-256 differs)"
        )
    return path


def _load_at_opset(path: Path):
    import onnx
    from onnx import version_converter

    bb = onnx.load(str(path))
    have = next((o.version for o in bb.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    if have != OPSET:
        try:
            bb = version_converter.convert_version(bb, OPSET)
        except Exception as e:  # the converter's own errors: an op it cannot move between versions
            raise UsageError(f"export --from-audio: {path} (opset {have}) cannot be converted to opset "
                             f"{OPSET} ({' '.join(str(e).split())[:120]})") from None  # fmt: skip
    return bb


def _pooled(g: Graph, name: str, rank: int | None, pool: str) -> str:
    if rank == 3:
        return g.op("ReduceMean" if pool == "mean" else "ReduceMax", [name], "pooled", axes=[1], keepdims=0)
    return name


def audio_front(g: Graph, model, weights: str | None = None):
    """Add the backbone's nodes to ``g``.

    Returns:
        ``(graph inputs, embedding tensor, logits tensor or None, extra opset imports, functions)``.
    """
    from onnx import TensorProto, helper
    from onnx.compose import add_prefix

    spec = model.provenance["model"]
    path = _backbone_file(model, weights)
    bb = add_prefix(_load_at_opset(path), "backbone/")
    samples = round(float(spec["window_s"]) * int(spec["sample_rate"]))
    inputs = [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", samples])]
    x = "audio"
    if spec.get("normalize"):
        x = g.op("Sub", [x, g.op("ReduceMean", [x], axes=[1], keepdims=1)], "centred")
        peak = g.op("ReduceMax", [g.op("Abs", [x])], "peak", axes=[1], keepdims=1)
        safe = g.op("Where", [g.op("Greater", [peak, g.const(np.float32(0))]), peak, g.const(np.float32(1))])
        x = g.op("Mul", [x, g.op("Div", [g.const(np.float32(spec["normalize"])), safe])], "normalized")
    if spec.get("layout") == "B,1,S":
        x = g.op("Unsqueeze", [x, g.const(np.array([1], np.int64))], "audio_b1s")
    graph_inputs = [i.name for i in bb.graph.input if i.name not in {t.name for t in bb.graph.initializer}]
    named = "backbone/" + spec["input"] if spec.get("input") else graph_inputs[0]
    if named not in graph_inputs:
        raise UsageError(f"export --from-audio: {path} has no input {spec.get('input')!r}")
    g.op("Identity", [x], out=named)
    g.nodes.extend(bb.graph.node)
    g.inits.extend(bb.graph.initializer)
    rank = {o.name: len(o.type.tensor_type.shape.dim) or None for o in bb.graph.output}
    emb_name = "backbone/" + spec["embedding"]
    emb = _pooled(g, emb_name, rank.get(emb_name), spec.get("pool", "mean"))
    logits = None
    if spec.get("logits"):
        lg_name = "backbone/" + spec["logits"]
        logits = _pooled(g, lg_name, rank.get(lg_name), spec.get("pool", "mean"))
    extra = [o for o in bb.opset_import if o.domain not in ("", "ai.onnx", "ai.onnx.ml")]
    return inputs, emb, logits, extra, list(bb.functions)


__all__ = ["AUDIO_BACKBONES", "audio_front"]

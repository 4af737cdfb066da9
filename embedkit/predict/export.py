"""``embedkit export MODEL --format onnx --out FILE``: a saved model as one ONNX graph, runnable anywhere.

The graph is what :meth:`embedkit.predict.model.Model.predict` computes for one batch of windows:

* input ``embedding`` float32 ``[B, D]``: the backbone's embeddings of B windows (a fused model: the parts'
  embeddings concatenated in the order of ``model.json`` ``fusion``);
* input ``logits`` float32 ``[B, K]`` only when the model uses the backbone's own classifier (the zero-shot
  prior or features): the backbone's K class logits of the same windows;
* output ``probabilities`` float32 ``[B, C]``, columns in the order of the label file written beside it.

Inside: the zero-shot logits of the labels (``z[:, c] = logits[:, index[c]]``, 0 where unmapped), the head
(:mod:`embedkit.predict.onnx_graph`; with ``z`` as extra input columns for ``--zero-shot features``), and the
prior blend ``sigmoid(logit(clip(p, 1e-6, 1 - 1e-6)) + w * (z - o))`` in float64 as in
:func:`embedkit.zeroshot.apply_prior`. A merged or extended model (``model.json`` ``composite``) is each
part's graph, then per label the weighted mean over the parts that know it.

Two steps stay outside the graph because they are not per window (the sidecar JSON and the README give them):
test-time augmentation (``infer --tta S``: run the graph on the window and on the window shifted by -S and +S
seconds, each with its own logits, and average the three outputs) and temporal smoothing over neighbouring
windows of one file (``p'[t] = (1 - s) * p[t] + s / 2 * (p[t-1] + p[t+1])``, a missing neighbour at either
end counted as ``p[t]``; ``s`` is the model's learned smoothing, else 0.5), in that order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from embedkit.errors import UsageError
from embedkit.predict.onnx_graph import ML_OPSET, OPSET, Graph, head_nodes

#: test-time augmentation offsets of ``infer.py``'s default (configs/infer.toml)
DEFAULT_TTA = (1.25,)


def _parts(model) -> list:
    return model.head.parts if model.meta.get("composite") else []


def embedding_dim(model) -> int:
    """D of the ``embedding`` input: the backbone's dim, or the sum over a fused model's parts."""
    parts = _parts(model)
    if parts:
        return embedding_dim(parts[0])
    fusion = model.meta.get("fusion")
    return int(sum(p["dim"] for p in fusion) if fusion else model.provenance["dim"])


def needs_logits(model) -> bool:
    """Whether the graph takes the backbone's logits (the zero-shot prior or features, in any part)."""
    parts = _parts(model)
    if parts:
        return any(needs_logits(p) for p in parts)
    return (model.meta.get("zero_shot") or {}).get("mode", "off") != "off"


def _model_nodes(g: Graph, model, emb: str, logits: str | None) -> str:
    """Nodes of ``model.predict(embedding, logits)``; returns the [B, C] output's name."""
    parts = _parts(model)
    if parts:
        return _composite_nodes(g, model, emb, logits)
    zs = model.meta.get("zero_shot") or {}
    mode = zs.get("mode", "off")
    x, z = emb, None
    if mode != "off":
        index = np.asarray(zs["index"], np.int64)
        picked = g.op("Gather", [logits, g.const(np.maximum(index, 0))], "z_all", axis=1)
        z = g.op("Mul", [picked, g.const((index >= 0).astype(np.float32))], "z")
        if mode in ("features", "both"):
            x = g.op("Concat", [emb, z], "head_in", axis=1)
    p = head_nodes(g, model.head, x)
    if mode in ("prior", "both") and zs.get("weights") is not None:
        a = zs.get("head_weight")
        p = _prior_nodes(g, p, z, np.asarray(zs["weights"], np.float64), np.asarray(zs["offset"], np.float64),
                         None if a is None else np.asarray(a, np.float64))  # fmt: skip
    return g.op("Clip", [p, g.const(np.float32(0)), g.const(np.float32(1))], "model_p")


def _prior_nodes(g: Graph, p: str, z: str, w: np.ndarray, o: np.ndarray, a: np.ndarray | None = None) -> str:
    """``sigmoid(a * logit(clip(p, 1e-6, 1 - 1e-6)) + w * (z - o))`` in float64, as ``apply_prior``.

    ``a`` [C] is the head's weight per class (``zero_shot.head_weight``; None = 1 for every class); where it
    is 0 the offset is too (the backbone alone is its own probability, as ``apply_prior``).
    """
    from embedkit.zeroshot import prior_offset

    o = prior_offset(o, a)
    pd_ = g.op("Cast", [p], "p64", to=11)  # DOUBLE
    pd_ = g.op("Min", [g.op("Max", [pd_, g.const(np.float64(1e-6))]), g.const(np.float64(1 - 1e-6))])
    lg = g.op("Log", [g.op("Div", [pd_, g.op("Sub", [g.const(np.float64(1.0)), pd_])])], "logit")
    if a is not None:
        lg = g.op("Mul", [g.const(a), lg], "head_weighted")
    shift = g.op("Mul", [g.const(w), g.op("Sub", [g.op("Cast", [z], to=11), g.const(o)])])
    return g.op("Cast", [g.op("Sigmoid", [g.op("Add", [lg, shift])])], "blended", to=1)  # FLOAT


def _composite_nodes(g: Graph, model, emb: str, logits: str | None) -> str:
    """Each part's output mapped to the composite's labels: a weighted mean over the parts knowing a label."""
    from embedkit.predict.merge import part_matrices

    out = None
    for part, M in zip(model.head.parts, part_matrices(model), strict=True):
        q = g.op("MatMul", [_model_nodes(g, part, emb, logits), g.const(M.astype(np.float32), "map")])
        out = q if out is None else g.op("Add", [out, q])
    return out


def build_onnx(model, from_audio: bool = False, weights: str | None = None):
    """The ONNX ``ModelProto`` of a loaded model (see the module docstring for inputs and outputs).

    Args:
        model: a loaded model.
        from_audio: start from audio windows: the backbone's own ONNX graph in front of the head
            (:mod:`embedkit.predict.export_audio`; ``onnx`` and ``perch`` backbones).
        weights: the backbone's ONNX file when not where the model's provenance says (``from_audio``).

    Raises:
        UsageError: a head, split or backbone that has no ONNX form (one line saying which).
    """
    from onnx import TensorProto, checker, helper

    g = Graph()
    extra_opsets, functions = [], []
    if from_audio:
        from embedkit.predict.export_audio import audio_front

        inputs, emb, logits, extra_opsets, functions = audio_front(g, model, weights)
        if needs_logits(model) and logits is None:
            raise UsageError(
                f"export {model.folder}: the model needs logits the backbone's description lacks"
            )
    else:
        emb, logits = "embedding", ("logits" if needs_logits(model) else None)
        inputs = [
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", embedding_dim(model)])
        ]
        if logits:
            inputs.append(
                helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "backbone_classes"])
            )
    try:
        p = _model_nodes(g, model, emb, logits)
    except ValueError as e:
        raise UsageError(f"export {model.folder}: {e}") from None
    g.op("Identity", [p], out="probabilities")
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(model.labels)])
    graph = helper.make_graph(g.nodes, "embedkit_head", inputs, [out], initializer=g.inits)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET), *extra_opsets]
    onnx_model = helper.make_model(graph, opset_imports=opsets, producer_name="embedkit", functions=functions)
    onnx_model.ir_version = 8
    helper.set_model_props(onnx_model, {"embedkit": json.dumps(describe(model, from_audio))})
    checker.check_model(onnx_model)
    return onnx_model


def describe(model, from_audio: bool = False) -> dict:
    """What a user of the graph needs besides it: inputs, labels, backbone, windows, TTA and smoothing."""
    from embedkit import __version__
    from embedkit.predict.smoothing import DEFAULT_SMOOTH

    prov = model.provenance
    smooth = model.meta.get("smooth")
    return {
        "embedkit_version": __version__,
        "model": model.folder.name,
        "inputs": _inputs(model, from_audio),
        "outputs": {"probabilities": ["batch", len(model.labels)]},
        "labels": list(model.labels),
        "backbone": prov,  # how the embeddings were made: backbone, window_s, chunk_offsets, pool, ...
        "fusion": [p.get("backbone") for p in model.meta.get("fusion") or []],
        "tta": {
            "offsets_s": list(DEFAULT_TTA),
            "reduce": "mean",
            "formula": "p = mean(graph(window), graph(window shifted by -S s), graph(window shifted by "
            "+S s)) for each S, each variant with its own logits",
        },  # fmt: skip
        "smoothing": {
            "weight": DEFAULT_SMOOTH if smooth is None else float(smooth),
            "source": "default" if smooth is None else "learned by fit.py --tune-on",
            "formula": "p'[t] = (1 - s) * p[t] + s / 2 * (p[t-1] + p[t+1]) over one file's "
            "consecutive windows, p[-1] = p[0] and p[W] = p[W-1]; after TTA",
        },  # fmt: skip
    }


def _inputs(model, from_audio: bool) -> dict:
    if from_audio:
        spec = model.provenance["model"]
        n = round(float(spec["window_s"]) * int(spec["sample_rate"]))
        return {"audio": ["batch", n], "sample_rate": int(spec["sample_rate"])}
    lg = {"logits": ["batch", "backbone_classes"]} if needs_logits(model) else {}
    return {"embedding": ["batch", embedding_dim(model)], **lg}


def export_onnx(model_dir: str | Path, out: str | Path, from_audio: bool = False,
                weights: str | None = None) -> list[Path]:  # fmt: skip
    """Write ``out`` (the graph), ``<out stem>.labels.txt`` (one label a line) and ``<out stem>.json``.

    Every file is replaced atomically; nothing is written when the model cannot be exported.

    Returns:
        The written paths.
    """
    from embedkit.files import replace_atomically
    from embedkit.predict.model import load_model

    model = load_model(model_dir)
    proto = build_onnx(model, from_audio, weights)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    labels, info = out.with_suffix(".labels.txt"), out.with_suffix(".json")
    texts = {
        labels: "\n".join(model.labels) + "\n",
        info: json.dumps(describe(model, from_audio), indent=1) + "\n",
    }
    replace_atomically(out, lambda tmp: Path(tmp).write_bytes(proto.SerializeToString()))
    for path, text in texts.items():
        replace_atomically(path, lambda tmp, t=text: Path(tmp).write_text(t))
    return [out, labels, info]


def add_args(p: argparse.ArgumentParser) -> None:
    """Flags of ``embedkit export``."""
    p.add_argument("model", help="saved model folder (fit.py, merge-models or fit.py --add-to)")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="output format (default: onnx)")
    p.add_argument("--out", help="output file (default: MODEL.onnx, beside the model folder)")
    p.add_argument(
        "--from-audio",
        action="store_true",
        help="onnx/perch backbones: one graph from audio windows (the backbone's graph in front)",
    )
    p.add_argument("--weights", help="--from-audio: the backbone's ONNX file (default: where it was used)")


def cmd_export(args: argparse.Namespace) -> int:
    """CLI body of ``embedkit export``."""
    out = args.out or f"{str(args.model).rstrip('/')}.{args.format}"
    paths = export_onnx(args.model, out, args.from_audio, args.weights)
    print(f"[export] wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0


__all__ = ["DEFAULT_TTA", "add_args", "build_onnx", "cmd_export", "describe", "export_onnx"]

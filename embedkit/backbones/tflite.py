"""Any TFLite audio model as a frozen backbone, run by LiteRT (ai-edge-litert) from a small description.

``--backbone tflite --weights model.tflite --model-config model.toml``: the same description as the ``onnx``
backbone (:mod:`embedkit.backbones._describe`). Names are looked up as signature names (``serving_default``
inputs/outputs, e.g. Perch v2's ``embedding``/``label``), then as tensor names of the graph's inputs and
outputs, then as *any* tensor of the graph: an inner tensor (a layer's activations) is made a graph output by
a cached flatbuffer rewrite (:func:`embedkit.backbones._tflite_graph.with_outputs`), so embeddings can come
from any layer. Example, BirdNET V2.4's file through this generic path (one 3 s chunk per window; the
``birdnet`` backbone pools several chunks of a 5 s window and has a faster front end)::

    sample_rate = 48000
    window_s = 3.0
    embedding = "model/GLOBAL_AVG_POOL/Mean"
    logits = "Identity"
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedkit.backbones import register
from embedkit.backbones._described import DescribedBackbone
from embedkit.backbones._tflite_graph import graph_tensors, with_outputs
from embedkit.backbones.base import BackboneError, MissingDependency, sha256_file
from embedkit.progress import native_stderr_to_log


def _shape(d: dict) -> list:
    sig = d.get("shape_signature")
    sig = d["shape"] if sig is None or len(sig) == 0 else sig
    return [int(v) if int(v) > 0 else None for v in sig]


class LiteRunner:
    """A LiteRT interpreter behind the :class:`~embedkit.backbones._described.Runner` interface.

    Args:
        path: the ``.tflite`` file.
        wanted: output/tensor names that will be read (inner tensors are exposed by a rewrite).
        threads: interpreter threads.
        who: backbone name for messages.
    """

    def __init__(self, path: Path, wanted: list[str], threads: int | None, who: str):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise MissingDependency("ai-edge-litert", who) from None
        self._make = lambda p: Interpreter(model_path=str(p), num_threads=int(threads) if threads else None)
        try:
            self.interp = self._make(path)
        except (ValueError, RuntimeError) as e:
            raise BackboneError(
                f"{who}: cannot load {path} as a TFLite model ({str(e).splitlines()[0]})"
            ) from None
        self._index()
        inner = [n for n in wanted if n and n not in self.outputs]
        if inner and all(n in graph_tensors(path) for n in inner):
            self.interp = self._make(with_outputs(path, sha256_file(path), inner))
            self._index()
        self._rows: tuple | None = None

    def _index(self) -> None:
        """Name → (tensor index, shape) for the inputs and outputs (signature names first)."""
        interp = self.interp
        sigs = interp.get_signature_list()
        ins, outs = {}, {}
        if sigs:
            key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
            runner = interp.get_signature_runner(key)
            ins = {n: (d["index"], _shape(d)) for n, d in runner.get_input_details().items()}
            outs = {n: (d["index"], _shape(d)) for n, d in runner.get_output_details().items()}
        if not ins:
            ins = {d["name"]: (d["index"], _shape(d)) for d in interp.get_input_details()}
        for d in interp.get_output_details():
            outs.setdefault(d["name"], (d["index"], _shape(d)))
        self._in, self._out = ins, outs
        self.inputs = {n: s for n, (_, s) in ins.items()}
        self.outputs = {n: s for n, (_, s) in outs.items()}

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs ``names`` for the inputs ``feed`` (inputs resized to the fed shapes when they change)."""
        shapes = tuple((n, x.shape) for n, x in feed.items())
        if shapes != self._rows:
            for n, x in feed.items():
                self.interp.resize_tensor_input(self._in[n][0], list(x.shape))
            with native_stderr_to_log():  # TFLite's XNNPACK INFO line → the embedkit logger
                self.interp.allocate_tensors()
            self._rows = shapes
        for n, x in feed.items():
            self.interp.set_tensor(self._in[n][0], x)
        self.interp.invoke()
        return [self.interp.get_tensor(self._out[n][0]).copy() for n in names]

    def close(self) -> None:
        """Drop the interpreter."""
        self.interp = None


@register("tflite")
class TfliteBackbone(DescribedBackbone):
    """A TFLite model described by ``--model-config`` / ``--model`` (see the module docstring).

    Args: as :class:`~embedkit.backbones._described.DescribedBackbone` (``device`` is ignored: CPU).
    """

    runtime = "ai-edge-litert"
    fixed_batch_matters = False  # LiteRT resizes the input to any batch

    def load_runner(self, path: Path, wanted: list[str], threads: int | None, device: str) -> LiteRunner:
        """A LiteRT interpreter for ``path`` with ``wanted`` inner tensors exposed."""
        return LiteRunner(path, wanted, threads, self.name)

    @classmethod
    def weights_help(cls) -> str:
        """Where the model comes from."""
        return "--weights model.tflite + --model-config description.toml (any layer by tensor name)"

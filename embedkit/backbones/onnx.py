"""Any ONNX audio model as a frozen backbone, run by ONNX Runtime from a small description.

``--backbone onnx --weights model.onnx --model-config model.toml`` (and/or ``--model key=value``): the
description (:mod:`embedkit.backbones._describe`) says the sample rate, window, input name and layout, the
embedding output (``[B, D]``, or ``[B, T, D]`` pooled), and optionally a logits output with its class list.
Sessions use the CUDA provider when ONNX Runtime has it (and ``device`` is not ``"cpu"``), with
``threads`` intra-op threads; windows go to the model ``batch_size`` at a time (a model exported with a
fixed batch size gets exactly that many rows, zero-padded). Exporting a model: ``torch.onnx.export(model,
(x,), "model.onnx", input_names=["audio"], output_names=["embedding"], dynamic_axes={"audio": {0: "b"},
"embedding": {0: "b"}})``; BirdSet's and many Hugging Face audio models export the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from embedkit.backbones import register
from embedkit.backbones._described import DescribedBackbone
from embedkit.backbones.base import BackboneError, MissingDependency


def import_ort(backbone: str) -> Any:
    """Import onnxruntime or raise :class:`MissingDependency` naming ``backbone``."""
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependency("onnxruntime", backbone) from None
    return onnxruntime


def _dims(shape) -> list:
    return [d if isinstance(d, int) else None for d in shape]


class OrtRunner:
    """An ONNX Runtime session behind the :class:`~embedkit.backbones._described.Runner` interface.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (None: ONNX Runtime's default, all cores).
        device: ``"auto"``/``"cuda"``: CUDA provider first when available; ``"cpu"``: CPU only.
        who: backbone name for messages.
    """

    def __init__(self, path: Path, threads: int | None, device: str, who: str):
        ort = import_ort(who)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.inter_op_num_threads = 1
        if threads:
            opts.intra_op_num_threads = int(threads)
        providers = ["CPUExecutionProvider"]
        if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own classes for unreadable or invalid files
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise BackboneError(f"{who}: cannot load {path} as an ONNX model ({first})") from None
        self.providers = self.session.get_providers()
        self.inputs = {i.name: _dims(i.shape) for i in self.session.get_inputs()}
        self.outputs = {o.name: _dims(o.shape) for o in self.session.get_outputs()}

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs ``names`` for the inputs ``feed``."""
        return self.session.run(names, feed)

    def close(self) -> None:
        """Drop the session."""
        self.session = None


@register("onnx")
class OnnxBackbone(DescribedBackbone):
    """An ONNX model described by ``--model-config`` / ``--model`` (see the module docstring).

    Args: as :class:`~embedkit.backbones._described.DescribedBackbone`.

    Attributes:
        providers: the ONNX Runtime execution providers in use.
    """

    runtime = "onnxruntime"  # sample_rate and dim come from the description and the model

    def load_runner(self, path: Path, wanted: list[str], threads: int | None, device: str) -> OrtRunner:
        """An ONNX Runtime session for ``path``."""
        runner = OrtRunner(path, threads, device, self.name)
        self.providers = runner.providers
        return runner

    @classmethod
    def weights_help(cls) -> str:
        """Where the model comes from."""
        return "--weights model.onnx (any exported audio model) + --model-config description.toml"

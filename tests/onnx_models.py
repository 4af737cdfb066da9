"""Stand-in models exported to ONNX inside the tests (random weights; nothing is downloaded).

``perch_standin`` has Perch v2's interface as the public ONNX conversions document it: input ``inputs``
float32 [B, 160000] (5 s at 32 kHz); outputs ``label`` [B, K] logits, ``embedding`` [B, 1536],
``spatial_embedding`` [B, 16, 4, 1536] and ``spectrogram`` [B, 500, 128]. Its embedding is a real function of
the audio (framed log-magnitude features through random linear layers), so different sounds embed differently.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np

PERCH_SAMPLES = 160_000
PERCH_DIM = 1536


def _torch():
    import torch

    return torch


def perch_module(n_classes: int, seed: int = 0):
    """A small torch module with Perch v2's input/output shapes (eval mode, random weights)."""
    torch = _torch()
    nn = torch.nn

    class PerchStandin(nn.Module):
        def __init__(self):
            super().__init__()
            self.frame = nn.Linear(320, 128)
            self.emb = nn.Linear(128, PERCH_DIM)
            self.head = nn.Linear(PERCH_DIM, n_classes)
            self.pos = nn.Parameter(torch.rand(16, 4, 1))

        def forward(self, inputs):
            frames = inputs.reshape(inputs.shape[0], 500, 320)
            spec = torch.log1p(torch.abs(self.frame(frames)))  # [B, 500, 128]
            emb = torch.relu(self.emb(spec)).mean(dim=1)  # [B, 1536]
            label = self.head(emb)
            spatial = emb[:, None, None, :] * self.pos  # [B, 16, 4, 1536]
            return label, emb, spatial, spec

    torch.manual_seed(seed)
    return PerchStandin().eval()


def export(
    module, path: Path, x, input_name: str, output_names: list[str], fixed_batch: bool = False
) -> Path:
    """``torch.onnx.export`` (TorchScript exporter) of a deep copy of ``module`` with a dynamic batch axis."""
    torch = _torch()
    axes = None if fixed_batch else {n: {0: "batch"} for n in [input_name, *output_names]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            copy.deepcopy(module), (x,), str(path), input_names=[input_name], output_names=output_names,
            dynamic_axes=axes, dynamo=False, opset_version=17,
        )  # fmt: skip
    return path


def perch_standin(
    folder: Path, labels: list[str], codes: list[str] | None = None, seed: int = 0, fixed_batch: bool = False
):
    """Write ``perch_v2.onnx`` + ``labels.csv`` (+ ``perch_v2_ebird_classes.csv``) in ``folder``.

    Returns:
        (model path, the torch module, labels path, codes path or None).
    """
    torch = _torch()
    folder.mkdir(parents=True, exist_ok=True)
    module = perch_module(len(labels), seed)
    x = torch.zeros(1 if fixed_batch else 2, PERCH_SAMPLES)
    path = export(
        module,
        folder / "perch_v2.onnx",
        x,
        "inputs",
        ["label", "embedding", "spatial_embedding", "spectrogram"],
        fixed_batch,
    )
    lab = folder / "labels.csv"
    lab.write_text("inat2024_fsd50k\n" + "".join(f"{s}\n" for s in labels), encoding="utf-8")
    cod = None
    if codes is not None:
        cod = folder / "perch_v2_ebird_classes.csv"
        cod.write_text("ebird2021\n" + "".join(f"{c}\n" for c in codes), encoding="utf-8")
    return path, module, lab, cod


def torch_outputs(module, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """The module's outputs on windows ``x`` [B, S], as numpy."""
    torch = _torch()
    with torch.no_grad():
        return tuple(o.numpy() for o in module(torch.from_numpy(np.ascontiguousarray(x, np.float32))))

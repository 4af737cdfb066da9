"""PANNs Cnn14 (AudioSet-pretrained CNN, Kong et al. 2020): the 2048-d ``embedding`` output at 32 kHz.

The model class comes from the ``panns-inference`` package, but that package's ``__init__`` (through
``panns_inference.config``) runs ``wget`` at import time to fetch an AudioSet labels CSV into
``~/panns_data`` and leaves an empty file there when offline. We never import ``panns_inference`` itself:
its ``models`` module is loaded under a private package alias (:data:`_PKG_ALIAS`) whose ``__path__``
points at the installed package folder, so ``models.py`` and its relative imports run but the package
``__init__`` and ``config.py`` do not.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.backbones import register
from embedkit.backbones._torch import (
    channels_last,
    fold_conv_bn,
    import_torch,
    pick_precision,
    run_batched,
    set_threads,
)
from embedkit.backbones.base import Backbone, BackboneError, MissingDependency, resolve_device, sha256_file

CHECKPOINT_NAME = "Cnn14_mAP=0.431.pth"
ZENODO = "https://zenodo.org/record/3987831"
ENV_VAR = "PANNS_CHECKPOINT"
CNN14_KWARGS: dict[str, int] = dict(
    sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64, fmin=50, fmax=14000, classes_num=527
)
_PKG_ALIAS = "_embedkit_panns_inference"


def default_checkpoint() -> Path:
    """``~/panns_data/Cnn14_mAP=0.431.pth``, where ``panns-inference`` itself keeps the file."""
    return Path.home() / "panns_data" / CHECKPOINT_NAME


def find_checkpoint(weights: str | os.PathLike | None = None) -> Path:
    """The checkpoint to load: ``weights``, else ``$PANNS_CHECKPOINT``, else :func:`default_checkpoint`.

    The first of these that is set is used; it is an error if that file does not exist.

    Raises:
        BackboneError: the chosen file does not exist (one line saying where to put which file).
    """
    if weights:
        path, source = Path(weights).expanduser(), "--weights"
    elif os.environ.get(ENV_VAR):
        path, source = Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    else:
        path, source = default_checkpoint(), "default location"
    if not path.is_file():
        raise BackboneError(
            f"PANNs Cnn14 weights not found ({source}: {path}); pass --weights /path/to/{CHECKPOINT_NAME}, "
            f"set ${ENV_VAR}, or put the file at ~/panns_data/{CHECKPOINT_NAME} "
            f"(download {CHECKPOINT_NAME} from zenodo record 3987831: {ZENODO})"
        )
    return path


def cnn14_class() -> type:
    """``panns_inference.models.Cnn14``, loaded without running the ``panns_inference`` package ``__init__``.

    Raises:
        MissingDependency: torch, ``panns-inference`` or one of its imports (torchlibrosa) is missing.
    """
    import_torch("panns")
    mod = sys.modules.get(f"{_PKG_ALIAS}.models")
    if mod is None:
        spec = importlib.util.find_spec("panns_inference")  # top-level: finds, does not import
        if spec is None or not spec.submodule_search_locations:
            raise MissingDependency("panns_inference", "panns", "panns-inference")
        if _PKG_ALIAS not in sys.modules:
            pkg = types.ModuleType(_PKG_ALIAS, "private alias of panns_inference without its __init__")
            pkg.__path__ = list(spec.submodule_search_locations)
            sys.modules[_PKG_ALIAS] = pkg
        try:
            mod = importlib.import_module(f"{_PKG_ALIAS}.models")
        except ImportError as e:
            missing = (e.name or "torchlibrosa").split(".")[0]
            raise MissingDependency(missing, "panns") from e
    return mod.Cnn14


def embedding_module(model: Any) -> Any:
    """A torch module mapping audio [B, samples] to ``model``'s embedding [B, 2048] (e.g. for ONNX export).

    PANNs' Cnn14 returns a dict; ONNX export and plain callers want the ``embedding`` tensor alone.
    """
    import torch

    class CnnEmbedding(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x)["embedding"]

    return CnnEmbedding(model)


def load_state_dict(path: Path) -> dict[str, Any]:
    """Read a Cnn14 state dict from ``{'model': state_dict}`` or a bare state dict (``module.`` stripped)."""
    import pickle

    import torch

    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # Training checkpoints may hold numpy scalars/arrays next to the weights (iteration counters,
            # sampler state): allow exactly those numpy types, nothing else.
            with torch.serialization.safe_globals(_numpy_globals()):
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any failure here means a bad or foreign file
        raise BackboneError(
            f"cannot read {path} as a Cnn14 checkpoint ({type(e).__name__}); "
            f"get {CHECKPOINT_NAME} from zenodo record 3987831: {ZENODO}"
        ) from e
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise BackboneError(f"{path} is not a Cnn14 checkpoint (expected {{'model': state_dict}})")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _numpy_globals() -> list:
    """Numpy types that a pickled numpy scalar or array needs (for ``torch.serialization.safe_globals``)."""
    core = getattr(np, "_core", None) or np.core
    dtype_classes = {type(np.dtype(t)) for t in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "?")}
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype, *dtype_classes]


def _fp32_frontend(module: Any) -> Any:
    """Wrap the STFT / log-mel extractor so that it always runs in float32, even under autocast.

    A 1024-tap STFT in bf16 rounds the waveform to 8 mantissa bits, which puts a noise floor about
    50 dB under the loudest component into the quiet bands; keeping the front end in float32 costs
    little (most of the time is in the conv blocks).
    """
    import torch

    class Fp32(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.autocast(device_type=x.device.type, enabled=False):
                return self.inner(x.float())

    return Fp32(module)


@register("panns")
class PANNs(Backbone):
    """PANNs Cnn14 embedding: 5 s of 32 kHz audio → the 2048-d ``embedding`` (ReLU of ``fc1``).

    Args:
        weights: path of ``Cnn14_mAP=0.431.pth``; default ``$PANNS_CHECKPOINT``, then
            ``~/panns_data/Cnn14_mAP=0.431.pth``.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        bf16: reduced precision: bf16 autocast on CPUs with native bf16 (else float32), bf16 or fp16
            autocast on CUDA. The STFT/log-mel front end always runs in float32.
        batch_size: windows per forward pass.
        threads: torch CPU threads (process-wide); default: torch's choice.

    Attributes:
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``: what ``bf16`` resolved to on this machine.
        checkpoint: the checkpoint file in use.
    """

    sample_rate = 32000
    dim = 2048

    def __init__(self, weights=None, device="auto", bf16=True, batch_size=32, threads=None):
        self.checkpoint = find_checkpoint(weights)
        cnn14 = cnn14_class()
        set_threads(threads)
        self.device = resolve_device(device)
        self.precision = pick_precision(self.device, bool(bf16))
        self.batch_size = int(batch_size)
        state = load_state_dict(self.checkpoint)
        model = cnn14(**CNN14_KWARGS)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise BackboneError(f"{self.checkpoint} does not fit Cnn14 ({first})") from e
        model.spectrogram_extractor = _fp32_frontend(model.spectrogram_extractor)
        model.logmel_extractor = _fp32_frontend(model.logmel_extractor)
        model.eval()
        fold_conv_bn(model)  # conv blocks: BatchNorm folded into the convs; ~1e-8 change, ~10 % less time
        self.model = channels_last(model).to(self.device)
        self._weights_id: str | None = None

    def _forward(self, x):
        return self.model(x)["embedding"]

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Embed windows.

        Args:
            batch: float32 [B, samples] mono audio at 32 kHz (5 s windows: samples = 160000).

        Returns:
            float32 [B, 2048].
        """
        return run_batched(
            self._forward,
            batch,
            dim=self.dim,
            device=self.device,
            precision=self.precision,
            batch_size=self.batch_size,
        )

    def weights_id(self) -> str:
        """SHA-256 of the checkpoint file (computed once)."""
        if self._weights_id is None:
            self._weights_id = sha256_file(self.checkpoint)
        return self._weights_id

    @classmethod
    def weights_help(cls) -> str:
        """Where the checkpoint is looked for."""
        return (
            f"--weights, ${ENV_VAR} or ~/panns_data/{CHECKPOINT_NAME} "
            f"(download {CHECKPOINT_NAME} from {ZENODO})"
        )

    def close(self) -> None:
        """Drop the model (and free CUDA memory)."""
        self.model = None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

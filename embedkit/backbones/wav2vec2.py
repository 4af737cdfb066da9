"""wav2vec 2.0 (self-supervised speech model) via Hugging Face transformers: time-mean of one hidden layer.

Weights come only from a local Hugging Face model folder (``config.json`` + weights, e.g. a copy of
``facebook/wav2vec2-base`` downloaded beforehand); loading never touches the network.
"""

from __future__ import annotations

import json
import operator
import os
from pathlib import Path

import numpy as np

from embedkit.backbones import register
from embedkit.backbones._torch import import_torch, pick_precision, run_batched, set_threads
from embedkit.backbones.base import Backbone, BackboneError, MissingDependency, resolve_device, sha256_dir

ENV_VAR = "WAV2VEC2_MODEL"
_HOW = (
    "pass --weights /path/to/local/hf/wav2vec2-base (a Hugging Face model folder with config.json and "
    f"weights, e.g. facebook/wav2vec2-base downloaded beforehand) or set ${ENV_VAR}"
)


def find_model_dir(weights: str | os.PathLike | None = None) -> Path:
    """The local model folder: ``weights``, else ``$WAV2VEC2_MODEL``.

    Raises:
        BackboneError: neither is set, or the folder has no ``config.json`` (one line saying what to do).
    """
    given = weights or os.environ.get(ENV_VAR)
    if not given:
        raise BackboneError(f"wav2vec2 needs local weights: {_HOW}")
    path = Path(given).expanduser()
    if not (path / "config.json").is_file():
        raise BackboneError(f"{path} is not a local Hugging Face model folder (no config.json): {_HOW}")
    return path


def read_do_normalize(model_dir: Path) -> bool:
    """``do_normalize`` from the folder's ``preprocessor_config.json``; ``True`` when absent."""
    cfg = model_dir / "preprocessor_config.json"
    if not cfg.is_file():
        return True
    try:
        return bool(json.loads(cfg.read_text(encoding="utf-8")).get("do_normalize", True))
    except (OSError, ValueError) as e:
        raise BackboneError(f"cannot read {cfg}: {e}") from e


def normalize(batch: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per row, as ``Wav2Vec2FeatureExtractor`` does with ``do_normalize``.

    Args:
        batch: float32 [B, samples].

    Returns:
        float32 [B, samples]: ``(x - mean) / sqrt(var + 1e-7)`` per row.
    """
    x = np.asarray(batch, dtype=np.float32)
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return ((x - mean) / np.sqrt(var + 1e-7)).astype(np.float32, copy=False)


@register("wav2vec2")
class Wav2Vec2(Backbone):
    """wav2vec 2.0 embedding: mean over time of hidden state ``layer`` (16 kHz input).

    Args:
        weights: local Hugging Face model folder; default ``$WAV2VEC2_MODEL``.
        layer: index into the ``num_hidden_layers + 1`` hidden states (0 = the projected CNN features
            before the transformer, last = transformer output); negative counts from the end. Default:
            last.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        bf16: reduced-precision autocast (bf16 on CPUs with native bf16, bf16/fp16 on CUDA).
        batch_size: windows per forward pass.
        threads: torch CPU threads (process-wide); default: torch's choice.

    Attributes:
        layer: the resolved, non-negative layer index.
        num_states: number of hidden states (``num_hidden_layers + 1``).
        do_normalize: whether windows are normalised to zero mean, unit variance.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    """

    sample_rate = 16000

    def __init__(self, weights=None, layer=None, device="auto", bf16=False, batch_size=16, threads=None):
        self.model_dir = find_model_dir(weights)
        import_torch("wav2vec2")
        try:
            from transformers import Wav2Vec2Config, Wav2Vec2Model
        except ImportError:
            raise MissingDependency("transformers", "wav2vec2") from None
        set_threads(threads)
        try:
            config = Wav2Vec2Config.from_pretrained(self.model_dir, local_files_only=True)
        except (OSError, ValueError) as e:
            raise BackboneError(f"cannot read {self.model_dir / 'config.json'}: {e}") from e
        self.dim = int(config.hidden_size)
        self.num_states = int(config.num_hidden_layers) + 1
        self.layer = self._resolve_layer(layer)
        self.do_normalize = read_do_normalize(self.model_dir)
        self.device = resolve_device(device)
        self.precision = pick_precision(self.device, bool(bf16))
        self.batch_size = int(batch_size)
        self.model = self._load(Wav2Vec2Model, config).float().eval().to(self.device)
        self._weights_id: str | None = None

    def _load(self, model_cls, config):
        """Load the model from ``model.safetensors`` when the folder has one, else ``pytorch_model.bin``.

        transformers reads a ``.bin`` with ``torch.load(weights_only=True)``, so a pickle holding anything
        but tensors is refused (nothing in it runs); every failure becomes one :class:`BackboneError` line.
        """
        import pickle

        safe = (self.model_dir / "model.safetensors").is_file()
        try:
            return model_cls.from_pretrained(
                self.model_dir, config=config, local_files_only=True, use_safetensors=True if safe else None
            )
        except pickle.UnpicklingError as e:
            why = "pytorch_model.bin is not a plain state dict of tensors; its other objects were not loaded"
            raise BackboneError(f"cannot load wav2vec2 weights from {self.model_dir} ({why}): {_HOW}") from e
        except (OSError, ValueError, TypeError, RuntimeError, KeyError, AttributeError, EOFError) as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise BackboneError(
                f"cannot load wav2vec2 weights from {self.model_dir} ({type(e).__name__}: {first}): {_HOW}"
            ) from e

    def _resolve_layer(self, layer) -> int:
        if layer is None:
            return self.num_states - 1
        n = self.num_states
        try:
            value = int(layer) if isinstance(layer, str) else operator.index(layer)
        except (TypeError, ValueError):
            value = None
        if value is None or isinstance(layer, bool) or not -n <= value < n:
            raise BackboneError(f"wav2vec2 --layer must be an integer in [{-n}, {n - 1}], got {layer!r}")
        return value % n

    def _forward(self, x):
        out = self.model(x, output_hidden_states=True, return_dict=True)
        return out.hidden_states[self.layer].float().mean(dim=1)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Embed windows.

        Args:
            batch: float32 [B, samples] mono audio at 16 kHz (5 s windows: samples = 80000).

        Returns:
            float32 [B, dim] (dim = ``hidden_size``, 768 for wav2vec2-base).
        """
        x = np.asarray(batch, dtype=np.float32)
        if self.do_normalize and x.ndim == 2:
            x = normalize(x)
        return run_batched(
            self._forward,
            x,
            dim=self.dim,
            device=self.device,
            precision=self.precision,
            batch_size=self.batch_size,
        )

    def identity(self) -> dict:
        """Base identity plus the resolved ``layer``."""
        return {**super().identity(), "layer": self.layer}

    def weights_id(self) -> str:
        """SHA-256 over the files of the model folder (computed once)."""
        if self._weights_id is None:
            self._weights_id = sha256_dir(self.model_dir)
        return self._weights_id

    @classmethod
    def weights_help(cls) -> str:
        """Where the model folder is looked for."""
        return f"--weights /path/to/local/hf/wav2vec2-base or ${ENV_VAR} (a local Hugging Face folder)"

    def close(self) -> None:
        """Drop the model (and free CUDA memory)."""
        self.model = None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

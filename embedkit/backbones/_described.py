"""A backbone run from a description (:class:`~embedkit.backbones._describe.ModelSpec`) by a model runtime.

:class:`DescribedBackbone` does what is the same for every runtime: checks the description against the
model (input name, rank and sample count; output names and ranks) with one-line errors, normalises and lays
out the windows, runs them in batches, pools ``[B, T, D]`` outputs, and records the model file's SHA-256 and
the description in the identity. A :class:`Runner` (ONNX Runtime in ``onnx.py``, LiteRT in ``tflite.py``)
only lists the model's inputs/outputs and runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from embedkit.backbones._describe import ClassList, ModelSpec, load_spec, read_class_list
from embedkit.backbones.base import Backbone, BackboneError, sha256_file

Shape = list  # a tensor shape; ``None`` or -1 for a dimension fixed only at run time


class Runner(Protocol):
    """One loaded model of some runtime.

    Attributes:
        inputs: input name → shape.
        outputs: readable output name → shape (for TFLite also the inner tensors exposed on request).
    """

    inputs: dict[str, Shape]
    outputs: dict[str, Shape]

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model on ``feed`` (input name → array) and return the outputs ``names``."""

    def close(self) -> None:
        """Release the runtime."""


def _static(d: Any) -> int | None:
    return int(d) if isinstance(d, int | np.integer) and int(d) > 0 else None


class DescribedBackbone(Backbone):
    """Base of the ``onnx``, ``tflite`` and ``perch`` backbones (see the module docstring).

    Args:
        weights: the model file.
        model_config: a TOML file with the description (a ``[model]`` table or top-level keys).
        model: description keys that override the file's (e.g. from ``--model embedding=emb``).
        window_s: the window the extraction cuts (must equal the description's ``window_s``).
        threads: runtime intra-op CPU threads (default: the runtime's choice).
        batch_size: windows per model call (a model with a fixed batch size gets that many, zero-padded).
        device: ``"auto"`` (the runtime's GPU provider when present), ``"cpu"`` or ``"cuda"``.

    Attributes:
        spec: the resolved description.
        model_file: the model file.
        logits_dim: K, the number of class logits (0 without a logits output).
    """

    #: description keys a preset fixes (overridable); the generic backbones have none
    preset: ClassVar[dict[str, Any]] = {}
    #: what the error messages call this backbone
    runtime: ClassVar[str] = "?"

    def __init__(self, weights=None, model_config=None, model=None, window_s=None, threads=None,
                 batch_size=32, device="auto"):  # fmt: skip
        model = dict(model or {})
        recorded_k = model.pop("n_logits", None)  # a recorded identity (inference) carries the logit count
        self.spec: ModelSpec = load_spec(self.name, self.preset, model_config, model)
        if window_s is not None and abs(float(window_s) - self.spec.window_s) > 1e-9:
            raise BackboneError(
                f"{self.name}: the model takes {self.spec.window_s:g} s windows (description window_s) but "
                f"extraction cuts {float(window_s):g} s; pass --window-s {self.spec.window_s:g}"
            )
        if int(batch_size) < 1 or (threads is not None and int(threads) < 1):
            raise BackboneError(f"{self.name}: batch_size and threads must be >= 1")
        self.model_file = self._model_path(weights)
        self.sample_rate = self.spec.sample_rate
        self.batch_size = int(batch_size)
        self._sha = sha256_file(self.model_file)
        wanted = [n for n in (self.spec.embedding, self.spec.logits) if n]
        self.runner: Runner | None = self.load_runner(self.model_file, wanted, threads, device)
        self._classes: ClassList | None = None
        self._check_input()
        self._check_outputs()
        self.dim, self.logits_dim = self._probe()
        if recorded_k is not None and int(recorded_k) != self.logits_dim:
            raise BackboneError(
                f"{self.name}: the model gives {self.logits_dim} logits, {recorded_k} were recorded"
            )
        if self.spec.labels:
            self._classes = read_class_list(self.spec.labels, self.spec.label_codes or None)
            if len(self._classes) != self.logits_dim:
                raise BackboneError(
                    f"{self.name}: {self.spec.labels} lists {len(self._classes)} classes but output "
                    f"{self.spec.logits!r} has {self.logits_dim} logits"
                )

    # -- for subclasses --------------------------------------------------------------------------------
    def load_runner(self, path: Path, wanted: list[str], threads: int | None, device: str) -> Runner:
        """Load ``path`` with the runtime (``wanted``: output or tensor names the backbone will read)."""
        raise NotImplementedError

    def _model_path(self, weights) -> Path:
        """The model file from ``weights`` (one-line errors for none, a missing file or a folder)."""
        if not weights:
            raise BackboneError(f"{self.name}: pass the model file with --weights PATH")
        path = Path(weights).expanduser()
        if path.is_dir():
            raise BackboneError(f"{self.name}: --weights {path} is a folder; give the model file itself")
        if not path.is_file():
            raise BackboneError(f"{self.name}: no model file {path}")
        return path

    # -- checks ------------------------------------------------------------------------------------------
    def _check_input(self) -> None:
        inputs = self.runner.inputs
        if not self.spec.input:
            if len(inputs) != 1:
                raise BackboneError(
                    f"{self.name}: the model has inputs {sorted(inputs)}; name one with input="
                )
            self.spec.input = next(iter(inputs))
        if self.spec.input not in inputs:
            raise BackboneError(
                f"{self.name}: no input {self.spec.input!r} in the model (inputs: {sorted(inputs)})"
            )
        shape = list(inputs[self.spec.input])
        rank = len(self.spec.layout.split(","))
        if len(shape) != rank:
            raise BackboneError(
                f"{self.name}: input {self.spec.input!r} has rank {len(shape)} {shape}, "
                f"the description's layout "
                f"{self.spec.layout!r} has rank {rank}"
            )
        n = _static(shape[-1])
        if n is not None and n != self.spec.samples:
            raise BackboneError(
                f"{self.name}: input {self.spec.input!r} takes {n} samples per row, the description gives "
                f"{self.spec.window_s:g} s at {self.spec.sample_rate} Hz = {self.spec.samples}"
            )
        self._fixed_batch = _static(shape[0]) if self.fixed_batch_matters else None

    #: whether a static batch dimension binds (ONNX Runtime: yes; LiteRT resizes inputs)
    fixed_batch_matters: ClassVar[bool] = True

    def _check_outputs(self) -> None:
        outs = self.runner.outputs
        if not self.spec.embedding:
            if len(outs) != 1:
                raise BackboneError(
                    f"{self.name}: the model has outputs {sorted(outs)}; name one with embedding="
                )
            self.spec.embedding = next(iter(outs))
        for key in ("embedding", "logits"):
            name = getattr(self.spec, key)
            if not name:
                continue
            if name not in outs:
                shown = sorted(outs)[:12]
                raise BackboneError(
                    f"{self.name}: no output {name!r} ({key}) in the model (outputs: {shown})"
                )
            rank = len(outs[name]) if outs[name] is not None else None
            if rank is not None and rank not in (2, 3):
                raise BackboneError(
                    f"{self.name}: output {name!r} ({key}) has rank {rank} {list(outs[name])}; "
                    f"expected [B, D] or [B, T, D]"
                )

    def _probe(self) -> tuple[int, int]:
        """Run one silent window: (D, K) from the outputs actually returned (a clear error when it fails)."""
        emb, logits = self._run(np.zeros((1, self.spec.samples), np.float32))
        return int(emb.shape[1]), 0 if logits is None else int(logits.shape[1])

    # -- running -----------------------------------------------------------------------------------------
    def _layout(self, x: np.ndarray) -> np.ndarray:
        if self.spec.normalize:
            x = x - x.mean(axis=1, keepdims=True)
            peak = np.abs(x).max(axis=1, keepdims=True)
            x = x * (self.spec.normalize / np.where(peak > 0, peak, 1.0))
        x = np.ascontiguousarray(x, dtype=np.float32)
        return x[:, None, :] if self.spec.layout == "B,1,S" else x

    def _pooled(self, y: np.ndarray, name: str, rows: int) -> np.ndarray:
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 3:
            y = y.mean(axis=1) if self.spec.pool == "mean" else y.max(axis=1)
        if y.ndim != 2 or y.shape[0] != rows:
            raise BackboneError(
                f"{self.name}: output {name!r} came back with shape {list(y.shape)} for {rows} windows; "
                f"expected [B, D] or [B, T, D]"
            )
        return y

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One model call on windows [b, samples] → (emb [b, D], logits [b, K] or None), pooled."""
        if self.runner is None:
            raise BackboneError(f"{self.name}: this backbone was closed; build a new one")
        b = x.shape[0]
        if self._fixed_batch and b != self._fixed_batch:
            x = np.concatenate([x, np.zeros((self._fixed_batch - b, x.shape[1]), x.dtype)])
        names = [self.spec.embedding] + ([self.spec.logits] if self.spec.logits else [])
        try:
            outs = self.runner.run(names, {self.spec.input: self._layout(x)})
        except BackboneError:
            raise
        except Exception as e:  # the runtime's own exception types; reduced to one line
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise BackboneError(
                f"{self.name}: the model failed on input {self.spec.input!r} of shape "
                f"{list(self._layout(x[:1]).shape[1:])} per row ({first}); check the description "
                f"(sample_rate, window_s, layout)"
            ) from None
        emb = self._pooled(outs[0][:b] if self._fixed_batch else outs[0], names[0], b)
        logits = (
            self._pooled(outs[1][:b] if self._fixed_batch else outs[1], names[1], b)
            if len(names) > 1
            else None
        )
        return emb, logits

    def embed_with_logits(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Embed windows and return the model's class logits too.

        Args:
            batch: float32 [B, samples] mono audio at ``sample_rate``, ``samples = round(window_s * rate)``.

        Returns:
            (embeddings float32 [B, D], logits float32 [B, K]); logits are [B, 0] without a logits output.
        """
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 2 or batch.shape[1] != self.spec.samples:
            raise BackboneError(
                f"{self.name}: expected a batch [B, {self.spec.samples}] ({self.spec.window_s:g} s at "
                f"{self.sample_rate} Hz), got shape {batch.shape}"
            )
        step = self._fixed_batch or self.batch_size
        embs, logits = [np.zeros((0, self.dim), np.float32)], [np.zeros((0, self.logits_dim), np.float32)]
        for i in range(0, batch.shape[0], step):
            e, lg = self._run(batch[i : i + step])
            embs.append(e)
            if lg is not None:
                logits.append(lg)
        return np.concatenate(embs), np.concatenate(logits)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Embed windows: float32 [B, samples] → float32 [B, D] (see :meth:`embed_with_logits`)."""
        return self.embed_with_logits(batch)[0]

    # -- identity and classes ------------------------------------------------------------------------------
    def weights_id(self) -> str:
        """``sha256:<hex>`` of the model file."""
        return f"sha256:{self._sha}"

    def identity(self) -> dict[str, Any]:
        """Base identity plus the description (without file paths) and the number of logits."""
        return {**super().identity(), "model": {**self.spec.identity(), "n_logits": self.logits_dim}}

    def extra_provenance(self) -> dict[str, Any]:
        """Informational provenance: where the model file and class list were (not compared)."""
        info: dict[str, Any] = {"model_file": str(self.model_file.resolve())}
        if self.spec.labels:
            info["classes"] = {
                "labels": str(Path(self.spec.labels).resolve()),
                "label_codes": str(Path(self.spec.label_codes).resolve()) if self.spec.label_codes else "",
                "sha256": sha256_file(self.spec.labels),
            }
        return info

    def classes(self) -> ClassList | None:
        """The class list of the logits (from the description's ``labels``), or None."""
        return self._classes

    def close(self) -> None:
        """Drop the runtime session."""
        if self.runner is not None:
            self.runner.close()
        self.runner = None


"""The one interface every backbone implements."""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from embedkit.errors import EmbedkitError
from embedkit.files import sha256_file


class BackboneError(EmbedkitError, RuntimeError):
    """A backbone cannot be built or run (missing weights, bad options). The message says what to do."""


class MissingDependency(BackboneError):
    """An optional dependency of a backbone is not installed."""

    def __init__(self, package: str, backbone: str, pip_name: str | None = None):
        super().__init__(
            f"backbone {backbone!r} needs the package {package!r}: pip install {pip_name or package}"
        )


def sha256_dir(path: str | os.PathLike) -> str:
    """SHA-256 over the names and contents of the files in a folder (sorted, hidden ones skipped)."""
    h = hashlib.sha256()
    root = Path(path)
    files = (q for q in root.rglob("*") if q.is_file())
    # hidden entries (.cache/, .git/) differ between copies of the same model: leave them out
    for p in sorted(q for q in files if not any(part.startswith(".") for part in q.relative_to(root).parts)):
        h.update(str(p.relative_to(root)).encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def resolve_device(device: str | None) -> str:
    """Map ``"auto"``/``None`` to ``"cuda"`` when torch sees a GPU, else ``"cpu"``; pass others through."""
    if device in (None, "", "auto"):
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"
    return device


class Backbone(ABC):
    """A frozen audio model that maps fixed-length mono windows to embedding vectors.

    Subclasses set ``sample_rate`` and ``dim`` (class attributes or in ``__init__``) and implement
    :meth:`embed`. Constructor keyword arguments are the backbone's options; those that change the
    embedding values (a layer, chunk offsets, pooling) are listed in :meth:`identity`, which goes into
    every shard's provenance. Runtime options (batch size, threads, device) do not.

    Attributes:
        name: registry name, set by ``@register``.
        sample_rate: input sample rate in Hz.
        dim: embedding dimension D.
    """

    name: ClassVar[str] = "?"
    sample_rate: int
    dim: int

    @abstractmethod
    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Embed a batch of windows.

        Args:
            batch: float32 array [B, samples] of mono audio at ``sample_rate``, roughly in [-1, 1].

        Returns:
            float32 array [B, dim].
        """

    def identity(self) -> dict[str, Any]:
        """Everything that determines the embedding values: compared when shards or heads are combined.

        Returns:
            JSON-serialisable dict; the base version gives name, sample rate, dim and weights id.
        """
        return {
            "backbone": self.name,
            "sample_rate": int(self.sample_rate),
            "dim": int(self.dim),
            "weights": self.weights_id(),
        }

    def weights_id(self) -> str:
        """A stable id of the weights in use (a SHA-256, or a name for bundled weights)."""
        return "unknown"

    @classmethod
    def weights_help(cls) -> str:
        """Where the backbone looks for its weights, in one line (for ``embedkit backbones``)."""
        return "bundled"

    @classmethod
    def bundled_classes(cls) -> Any:
        """The class list of a classifier that ships with the backbone (BirdNET's), read without building it.

        None for backbones whose class list comes with the user's model file (recorded in the shards'
        provenance, see :func:`embedkit.zeroshot.backbone_classes`) or that have no classifier.
        """
        return None

    def classes(self) -> Any:
        """The class list of the backbone's own classifier, in logit order, or None when it has none.

        Returns:
            :class:`~embedkit.backbones._describe.ClassList` (scientific names, eBird codes, iNaturalist ids
            as the list has them) or None. Backbones with a classifier also have ``embed_with_logits``.
        """
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (interpreters, GPU memory). Optional."""

"""Build a backbone from what was saved about it: a shard's or a model's provenance, or a stage config.

One place decides which constructor arguments a backbone takes (:func:`accepted_kwargs`), so extraction,
inference, evaluation, search and the Kaggle pre-flight build the same backbone from the same facts.
"""

from __future__ import annotations

import inspect
from typing import Any

from embedkit.backbones import backbone_class
from embedkit.backbones.base import Backbone

#: provenance fields that change the embedding values and are constructor arguments of some backbone
VALUE_FIELDS = ("chunk_offsets", "pool", "logit_pool", "time_pool", "layer", "window_s", "model")


def accepted_kwargs(name: str, candidates: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``candidates`` that the constructor of backbone ``name`` accepts (None values dropped).

    Raises:
        BackboneError: unknown backbone name (the message lists the registered ones).
    """
    params = inspect.signature(backbone_class(name).__init__).parameters
    return {k: v for k, v in candidates.items() if k in params and v is not None}


def build_backbone(
    provenance: dict[str, Any],
    weights: str | None = None,
    threads: int | None = None,
    batch_size: int | None = None,
    device: str | None = None,
) -> Backbone:
    """The backbone a provenance describes, with this run's weights path, threads, batch size and device.

    Args:
        provenance: a shard's or model's provenance (``backbone`` and the value-changing options it records:
            :data:`VALUE_FIELDS`).
        weights: where the weights are on this machine (they may live elsewhere than where they were
            first used; the provenance's hash of them is checked by the caller against the built backbone).
        threads: CPU threads for the backbone.
        batch_size: windows per call.
        device: ``auto`` | ``cpu`` | ``cuda`` (torch backbones).
    """
    kw = {k: provenance[k] for k in VALUE_FIELDS if k in provenance}
    if "chunk_offsets" in kw:
        kw["chunk_offsets"] = tuple(kw["chunk_offsets"])
    # a described model (onnx, tflite, perch) finds its file where it was first used unless told otherwise
    weights = weights or provenance.get("model_file")
    kw.update(weights=weights, threads=threads, batch_size=batch_size, device=device)
    name = provenance["backbone"]
    return backbone_class(name)(**accepted_kwargs(name, kw))


__all__ = ["VALUE_FIELDS", "accepted_kwargs", "build_backbone"]

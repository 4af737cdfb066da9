"""Shard names, provenance metadata and their checks (the store's vocabulary, shared by writer and reader)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from embedkit.errors import EmbedkitError

META_KEY = b"embedkit"
KEY_COLUMNS = ["file", "window", "start_s", "end_s", "row_id"]
#: provenance fields that are informational only (never a reason to refuse a mix)
#: ``model_file`` / ``classes``: where a described (onnx/tflite/perch) model and its class list were
#: ``augment``: how the ``variant`` rows were made (``extract.py --augment-background``); compared only
#: between the shards of one dataset (:func:`check_augment`), so clean test windows still match the model
INFO_FIELDS = frozenset(
    {"embedkit_version", "created", "split", "source", "precision", "layout", "model_file", "classes"}
    | {"augment"}
)
#: optional key column of augmented datasets: 0 = the clean window, 1..K = its augmented variants
VARIANT = "variant"
#: how ``emb``/``logits`` are stored (recorded in every shard; informational: the reader handles both)
LAYOUT = "fixed-binary-le"


class StoreError(EmbedkitError, RuntimeError):
    """Shards are missing, unreadable or of mixed provenance; the message says which."""


def shard_paths(folder: str | os.PathLike) -> list[Path]:
    """Finished embedding shards of a dataset folder, sorted by name."""
    return sorted(Path(folder).glob("part-*.parquet"))


def failure_paths(folder: str | os.PathLike) -> list[Path]:
    """Failure tables of a dataset folder, sorted by name."""
    return sorted(Path(folder).glob("failures-*.parquet"))


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The embedkit metadata (provenance) of one shard."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as e:
        raise StoreError(f"{path}: not a readable parquet shard ({e})") from None
    if META_KEY not in meta:
        raise StoreError(f"{path}: no embedkit provenance metadata; not an embedkit shard")
    from embedkit.schemas import SchemaError, loads_json, provenance

    try:  # bounded parse, then the provenance schema (types, finite window/hop, dim within bounds)
        doc = loads_json(meta[META_KEY].decode("utf-8", "replace"), f"{path} (metadata)")
        return provenance(doc, str(path))
    except SchemaError as e:
        raise StoreError(f"refused: {e}") from None


def provenance_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Fields (other than informational ones) whose values differ between two provenance dicts."""
    keys = sorted((set(a) | set(b)) - INFO_FIELDS)
    return [k for k in keys if _norm(a.get(k)) != _norm(b.get(k))]


def _norm(v: Any) -> Any:
    return json.loads(json.dumps(v))  # tuples → lists, so saved and live values compare equal


def check_provenance(
    expected: dict[str, Any], found: dict[str, Any], *, what: str = "embeddings", where: str = ""
) -> None:
    """Raise :class:`StoreError` naming the first differing field when two provenances disagree."""
    diff = provenance_diff(expected, found)
    if diff:
        k = diff[0]
        raise StoreError(
            f"{what}{' in ' + where if where else ''} do not match: {k}={_norm(found.get(k))!r} "
            f"but {_norm(expected.get(k))!r} was expected"
            + (f" (also differ: {', '.join(diff[1:])})" if len(diff) > 1 else "")
        )


def check_augment(expected: dict[str, Any], found: dict[str, Any], *, where: str = "") -> None:
    """Refuse shards of one dataset made with different augmentation (``provenance["augment"]``)."""
    a, b = _norm(expected.get("augment")), _norm(found.get("augment"))
    if a != b:
        raise StoreError(
            f"shards{' in ' + where if where else ''} mix augmentation settings: augment={b!r} but {a!r} was "
            f"expected (extract augmented and clean windows into different --out/--name folders)"
        )


def check_same_dataset(first: dict[str, Any], found: dict[str, Any], *, where: str = "") -> None:
    """Shards of one dataset agree in provenance and in augmentation (one metadata read per shard)."""
    check_provenance(first, found, what="shards", where=where)
    check_augment(first, found, where=where)

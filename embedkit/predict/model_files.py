"""Checks of a model folder's files before anything in it is used (issue 24), kept apart from ``model.py``.

``model.json`` is parsed within limits and checked against its schema (:mod:`embedkit.schemas`); a folder
that says format 2 but holds a pickle is refused, and only a genuine embedkit 0.1 folder gets the
``--trust-pickle`` hint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.schemas import SchemaError, model_meta, read_json


def read_checked(meta_path: Path, f: Path, formats: tuple[int, int]) -> dict[str, Any]:
    """``model.json`` parsed and checked; one of another format is returned as is (the caller names it).

    Raises:
        SchemaError: not a regular file, unreadable, beyond the limits, against the schema, or format 2 with a
            pickle in ``head/``.
    """
    if meta_path.is_symlink() or not meta_path.is_file():
        raise SchemaError(f"{meta_path}: not a regular file inside the model folder (a link or special file)")
    meta = read_json(meta_path, "model.json")
    if isinstance(meta, dict) and meta.get("format") not in formats:
        return meta
    model_meta(meta, str(meta_path))
    if meta["format"] == 2 and (meta_path.parent / "head" / "state.joblib").exists():
        raise SchemaError(
            f"{f}: model.json says format 2 but head/ holds a pickle (state.joblib): not a folder written by "
            f"embedkit; refit the model"
        )
    return meta


def legacy_problem(f: Path, real: Path, meta: dict) -> str | None:
    """Why a folder that says format 1 is not a genuine embedkit 0.1 folder (None when it is one).

    Genuine: no ``files`` manifest, ``head/state.joblib``, no format-2 head files.
    """
    head = real / "head"
    newer = any((head / n).exists() for n in ("state.safetensors", "model.safetensors"))
    if "files" in meta or not (head / "state.joblib").is_file() or newer or _head_format(head) == 2:
        return (
            f"{f}: model.json says format 1 (embedkit 0.1), but the folder is not one of embedkit 0.1 "
            f"(head/state.joblib and no format-2 files); refused"
        )
    return None


def _head_format(head: Path) -> Any:
    try:
        return json.loads((head / "head.json").read_text()).get("format")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None


def head_bytes(head) -> int:
    """About how many bytes a head's files take: its arrays and torch weights (LightGBM text: 0)."""
    total = 0
    for v in getattr(head, "__dict__", {}).values():
        if isinstance(v, np.ndarray):
            total += v.nbytes
        elif hasattr(v, "parameters"):
            total += sum(p.numel() * p.element_size() for p in v.parameters())
    return total

"""What a fit reads besides one backbone's embeddings: other backbones' (fusion), logits, unlabelled windows.

Fusion (``fit.py --fuse panns``): the datasets ``EMBEDDINGS/<backbone>/<split>`` of the main backbone and of
each fused one are joined on (file, window) — windows missing from any part are dropped and counted — and
the head is fit on the concatenation ``[main | fused 1 | ...]``. Each part keeps its own provenance (the
model's ``fusion`` entry lists them in order with their dims), and inference runs every part's backbone on
each file and concatenates in the same order.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.errors import UsageError
from embedkit.store import StoreError, read_embeddings, read_provenance, shard_paths


def has_logits(folder: str | Path) -> bool:
    """Whether the shards of a dataset hold a ``logits`` column (``extract.py --save-logits``)."""
    import pyarrow.parquet as pq

    paths = shard_paths(folder)
    return bool(paths) and "logits" in pq.read_schema(paths[0]).names


def resolve_zero_shot(cfg, labels: list[str]) -> tuple[str, np.ndarray | None]:
    """The zero-shot mode a fit uses and the label → backbone class map.

    ``auto`` becomes ``prior`` when the shards hold the backbone's logits (birdnet, or a described model with
    a class list) and ``taxonomy.csv`` maps at least one label; otherwise ``off`` (with a note on stderr).

    Returns:
        ``(mode, index [C] or None)``.

    Raises:
        UsageError: an explicit mode whose logits are missing from the shards.
        DataError: no usable taxonomy.csv, or no label maps.
    """
    from embedkit.birdclef import DataError
    from embedkit.store import read_provenance
    from embedkit.zeroshot import species_map

    dataset = Path(cfg.embeddings) / cfg.backbone / cfg.split
    mode = cfg.zero_shot
    if mode == "off":
        return "off", None
    logits = has_logits(dataset)
    prov = read_provenance(dataset) if logits else None
    if mode == "auto":
        if not logits:
            return "off", None
        try:
            return "prior", species_map(cfg.data, labels, cfg.backbone, prov)
        except DataError as e:
            print(f"[fit] zero-shot off: {e}", file=sys.stderr)
            return "off", None
    if not logits:
        raise UsageError(
            f"--zero-shot {mode} needs the backbone's own logits, but the shards in {dataset} have none; "
            f"re-extract with extract.py --save-logits (or use --zero-shot off)"
        )
    return mode, species_map(cfg.data, labels, cfg.backbone, prov)


def read_windows(
    root: str | Path, backbones: list[str], split: str, logits: bool = False
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None, list[dict]]:
    """Embeddings of ``split`` from one backbone, or several joined on (file, window).

    Args:
        root: embeddings root (``EMBEDDINGS``).
        backbones: the main backbone first, then the fused ones.
        split: dataset name under ``ROOT/<backbone>/``.
        logits: also read the main backbone's logits.

    Returns:
        ``(keys [N], X float32 [N, sum of dims], logits [N, K] or None, parts)``; ``parts`` holds one
        ``{"backbone", "dim", "provenance"}`` per backbone, in column order.

    Raises:
        StoreError: a dataset is missing or unreadable; UsageError: the join leaves no window.
    """
    for name in backbones:
        if not shard_paths(Path(root) / name / split):
            raise StoreError(
                f"no embedding shards in {Path(root) / name / split}: extract {split!r} first "
                f"(python extract.py --backbone {name} --split {split} --out {root})"
            )
    if logits and not has_logits(Path(root) / backbones[0] / split):
        raise UsageError(
            f"the shards in {Path(root) / backbones[0] / split} hold no logits; "
            f"re-extract with extract.py --save-logits"
        )
    out = read_embeddings(Path(root) / backbones[0] / split, logits=logits)
    keys, X = out[0], out[1]
    L = out[2] if logits else None
    parts = [_part(root, backbones[0], split, X.shape[1])]
    if len(backbones) == 1:
        return keys, X, L, parts
    blocks = [X]
    for name in backbones[1:]:
        k2, X2 = read_embeddings(Path(root) / name / split)
        pos = pd.Series(np.arange(len(k2)), index=pd.MultiIndex.from_frame(k2[["file", "window"]]))
        idx = pos.reindex(pd.MultiIndex.from_frame(keys[["file", "window"]])).to_numpy()
        ok = ~np.isnan(idx)
        if not ok.all():
            print(
                f"[fit] fusion: {int((~ok).sum())} windows have no {name} embedding; dropped", file=sys.stderr
            )
        keys, blocks = keys[ok].reset_index(drop=True), [b[ok] for b in blocks]
        L = None if L is None else L[ok]
        blocks.append(X2[idx[ok].astype(np.int64)])
        parts.append(_part(root, name, split, X2.shape[1]))
    if not len(keys):
        raise UsageError(f"fusion: no window of {split} has embeddings from all of {backbones}")
    return keys, np.hstack(blocks).astype(np.float32), L, parts


def _part(root, backbone: str, split: str, dim: int) -> dict:
    return {
        "backbone": backbone,
        "dim": int(dim),
        "provenance": read_provenance(Path(root) / backbone / split),
    }


def read_unlabelled(
    cfg, parts: list[dict], logits: bool
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """The ``--unlabelled`` windows, from the same backbones as the training windows (provenance checked).

    Returns:
        ``(keys [M], X [M, D], logits [M, K] or None)``.
    """
    from embedkit.store import check_provenance

    names = [p["backbone"] for p in parts]
    keys, X, L, got = read_windows(cfg.embeddings, names, cfg.unlabelled, logits)
    for want, have in zip(parts, got, strict=True):
        check_provenance(
            want["provenance"], have["provenance"], what="unlabelled embeddings", where=cfg.unlabelled
        )
    return keys, X, L


def chunk_params(cfg, provenance: dict) -> dict:
    """The head's parameters, with ``chunks`` set for a head that takes it when the shards keep chunks apart.

    BirdNET shards extracted with ``--pool concat`` (the default) hold each window's n 3 s chunks side by
    side ([N, n * 1024]); a head with a ``chunks`` parameter (``proto``) then compares each chunk on its own
    unless ``--params chunks=...`` says otherwise. Not with fused backbones or zero-shot features, whose
    extra columns do not split into chunks.
    """
    import inspect

    from embedkit.heads import head_class

    params = dict(cfg.params)
    n = len(provenance.get("chunk_offsets") or [])
    takes = "chunks" in inspect.signature(head_class(cfg.head).__init__).parameters
    plain = not cfg.fuse and cfg.zero_shot not in ("features", "both")
    if takes and "chunks" not in params and provenance.get("pool") == "concat" and n > 1 and plain:
        params["chunks"] = n
    return params


__all__ = ["chunk_params", "has_logits", "read_unlabelled", "read_windows", "resolve_zero_shot"]

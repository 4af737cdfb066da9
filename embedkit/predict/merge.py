"""Composite models: several saved models of one backbone answering together (merge-models, fit --add-to).

A composite model folder holds its parts as complete model folders, ``parts/0``, ``parts/1``, ... (each with
its own ``model.json`` and hashes), and a ``model.json`` with ``head: "composite"``, the union of the parts'
labels, and ``composite: {"parts": [...], "weights": [...]}``. Its top-level ``files`` hashes every file
below it, the parts' included, so loading checks them twice. A label's probability is the weighted mean over
the parts that know it (:func:`part_matrices`); a label only one part knows is that part's output.

``embedkit merge-models A B --out C`` joins two (or more) models; ``fit.py --add-to MODEL`` writes MODEL and a
head over the new labels only as one composite (:mod:`embedkit.train.addto`). Parts must have been fit on the
same backbone (identical provenance, fused parts included): the composite takes one embedding per window.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from embedkit.errors import UsageError
from embedkit.predict.post import blend_weights


class CompositeHead:
    """The ``head`` of a loaded composite model: its loaded parts and their blend weights.

    Attributes:
        parts: loaded :class:`~embedkit.predict.model.Model` parts.
        weights: blend weights float64 [P], summing to 1.
        maps: per part, float64 [C_i, C]: part outputs → composite labels (:func:`part_matrices`).
    """

    name = "composite"

    def __init__(self, parts: list, weights, labels: list[str]):
        self.parts = parts
        self.weights = np.asarray(weights, np.float64)
        self.maps = _matrices([p.labels for p in parts], self.weights, labels)
        self.n_classes_ = len(labels)
        self.n_features_in_ = getattr(parts[0].head, "n_features_in_", None)

    def predict(self, X: np.ndarray, logits: np.ndarray | None = None) -> np.ndarray:
        """Probabilities float32 [N, C] for embeddings [N, D] (and the backbone's logits [N, K])."""
        out = sum(
            p.predict(X, logits).astype(np.float64) @ M for p, M in zip(self.parts, self.maps, strict=True)
        )
        return np.asarray(out, np.float32)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """:meth:`predict` without logits (parts that need them raise)."""
        return self.predict(X, None)


def _matrices(part_labels: list[list[str]], weights: np.ndarray, labels: list[str]) -> list[np.ndarray]:
    col = {c: j for j, c in enumerate(labels)}
    known, count = np.zeros(len(labels)), np.zeros(len(labels))
    for w, ls in zip(weights, part_labels, strict=True):
        known[[col[c] for c in ls]] += w
        count[[col[c] for c in ls]] += 1
    out = []
    for w, ls in zip(weights, part_labels, strict=True):
        M = np.zeros((len(ls), len(labels)))
        for i, c in enumerate(ls):  # a label known only to parts of weight 0: their plain mean
            j = col[c]
            M[i, j] = w / known[j] if known[j] > 0 else 1.0 / count[j]
        out.append(M)
    return out


def part_matrices(model) -> list[np.ndarray]:
    """Per part of a loaded composite model, float64 [C_i, C]: its columns' shares of the composite's labels.

    Column c of the composite is ``sum_i p_i @ M_i``: the weighted mean over the parts that know label c
    (a part's weight divided by the summed weights of those parts). Rows of a part sum to its share.
    """
    return model.head.maps


def union_labels(part_labels: list[list[str]]) -> list[str]:
    """The labels of the first part, then each later part's new ones, in their order."""
    out: list[str] = []
    seen: set[str] = set()
    for ls in part_labels:
        for c in ls:
            if c not in seen:
                seen.add(c)
                out.append(c)
    return out


def check_same_backbone(models: list, what: str = "merge-models") -> None:
    """Refuse models fit on different embeddings (backbone, weights, window, fused parts) in one line."""
    from embedkit.predict.fusion import model_parts
    from embedkit.store.provenance import provenance_diff

    first = model_parts(models[0])
    for m in models[1:]:
        parts = model_parts(m)
        names = ([p.get("backbone") for p in first], [p.get("backbone") for p in parts])
        diff = [] if len(parts) == len(first) else ["fused parts"]
        diff += [k for a, b in zip(first, parts, strict=False) for k in provenance_diff(a, b)]
        if diff:
            raise UsageError(
                f"{what}: {models[0].folder} was fit on {'+'.join(map(str, names[0]))} embeddings and "
                f"{m.folder} on {'+'.join(map(str, names[1]))} ({', '.join(dict.fromkeys(diff))} differ); "
                f"a composite takes one embedding per window, so both must share the backbone"
            )


def load_composite(folder: Path, real: Path, meta: dict):
    """A :class:`~embedkit.predict.model.Model` whose head is a :class:`CompositeHead` of its parts."""
    from embedkit.predict.model import Model, ModelError, load_model

    comp = meta["composite"]
    parts = []
    for rel in comp.get("parts") or []:
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise ModelError(f"{folder}: composite part {rel!r} is not a folder inside the model")
        parts.append(load_model(real / rel))
    labels = list(meta.get("labels") or [])
    if not parts or union_labels([p.labels for p in parts]) != labels:
        raise ModelError(f"{folder}: the composite's labels are not those of its parts; rebuild it")
    head = CompositeHead(parts, comp.get("weights") or blend_weights(None, len(parts)), labels)
    return Model(folder=folder, head=head, labels=labels, provenance=meta.get("provenance") or {}, meta=meta)


def save_composite(final: str | Path, models: list, weights=None, extra: dict | None = None) -> Path:
    """Write the models as one composite model folder (atomically, as :func:`save_model` does).

    Args:
        final: the new model folder.
        models: loaded models of one backbone (checked).
        weights: blend weights where several parts know a label (default: equal).
        extra: more ``model.json`` entries.

    Returns:
        The final folder.
    """
    from embedkit import __version__
    from embedkit.predict.smoothing import DEFAULT_SMOOTH
    from embedkit.store.atomic import prune_versions, publish_dir, staging_dir
    from embedkit.store.manifest import manifest

    check_same_backbone(models, (extra or {}).get("made_by", "merge-models"))
    w = blend_weights(None if weights is None else list(weights), len(models))
    labels = union_labels([m.labels for m in models])
    maps = _matrices([m.labels for m in models], w, labels)
    smooth = [m.meta.get("smooth") for m in models]
    priors = sum(m.priors.astype(np.float64) @ M for m, M in zip(models, maps, strict=True))
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = staging_dir(final)
    try:
        for i, m in enumerate(models):  # copies of the parts' current versions, every file
            shutil.copytree(m.folder.resolve(), staged / "parts" / str(i), symlinks=False)
        doc = {
            "format": 2,
            "embedkit_version": __version__,
            "head": "composite",
            "labels": labels,
            "provenance": models[0].provenance,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "composite": {"parts": [f"parts/{i}" for i in range(len(models))], "weights": w.tolist(),
                          "sources": [str(m.folder) for m in models]},  # fmt: skip
            "needs_logits": any(bool(m.meta.get("needs_logits")) for m in models),
            "priors": priors.tolist(),
            **({"fusion": models[0].meta["fusion"]} if models[0].meta.get("fusion") else {}),
            **({} if all(s is None for s in smooth) else
               {"smooth": float(np.dot(w, [DEFAULT_SMOOTH if s is None else float(s) for s in smooth]))}),
            **(extra or {}),
            "files": manifest(staged),
        }  # fmt: skip
        (staged / "model.json").write_text(json.dumps(doc, indent=1))
        prev = publish_dir(staged, final)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    prune_versions(final, keep=prev)
    return final


def add_args(p: argparse.ArgumentParser) -> None:
    """Flags of ``embedkit merge-models``."""
    p.add_argument("models", nargs="+", help="two or more model folders fit on the same backbone")
    p.add_argument("--out", required=True, help="the merged model folder to write")
    p.add_argument("--weights", nargs="+", type=float, help="blend weights where several know a label")


def cmd_merge(args: argparse.Namespace) -> int:
    """CLI body of ``embedkit merge-models``."""
    from embedkit.predict.model import load_model

    if len(args.models) < 2:
        raise UsageError("merge-models needs at least two model folders")
    models = [load_model(m) for m in args.models]
    out = save_composite(args.out, models, args.weights)
    shared = set(models[0].labels).intersection(*[m.labels for m in models[1:]])
    n = len(union_labels([m.labels for m in models]))
    print(f"[merge-models] {out}: {n} labels ({len(shared)} known to every part, blended)", file=sys.stderr)
    return 0


__all__ = [
    "CompositeHead",
    "add_args",
    "check_same_backbone",
    "cmd_merge",
    "load_composite",
    "part_matrices",
    "save_composite",
    "union_labels",
]

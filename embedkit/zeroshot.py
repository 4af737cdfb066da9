"""Zero-shot knowledge of the backbone's own classifier: BirdNET's logits as features or as a prior.

BirdNET V2.4 classifies 6522 species. A label of the task is *mapped* to one of them when its scientific
name (``taxonomy.csv``) equals the part of a BirdNET label before ``_`` (case and spacing ignored). For the
mapped labels BirdNET's logits can

* enter the head as extra input columns (``--zero-shot features``): ``[emb | z]`` with ``z`` [N, C] the
  logits of the mapped labels (0 for unmapped ones), or
* act as a prior the head's output is blended with (``--zero-shot prior``): per window and class
  ``sigmoid(logit(p_head) + w_c * (z_c - o_c))``, where ``o_c`` is the mean logit of class c over the training
  windows (so the blend keeps the head's calibration on average) and ``w_c`` is learned from out-of-fold
  predictions by :func:`fit_prior_weights`: one weight shared by the mapped classes (the default; per-class
  weights chosen on a few recordings per class over-fit, measured in the README) or, with ``per_class``, one
  per class shrunk to the shared one. Unmapped labels keep the head alone (``w_c = 0``).

``--zero-shot both`` does both. Whatever is used is recorded in the model (``model.json`` ``zero_shot``), and
inference then asks the backbone for its logits (``embed_with_logits``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embedkit.birdclef import DataError

MODES = ("off", "features", "prior", "both")
#: grid of prior weights searched by :func:`fit_prior_weights`
PRIOR_GRID = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0)


def backbone_labels(backbone: str) -> list[str]:
    """The class labels of a backbone's own classifier (:meth:`Backbone.classifier_labels`), not loading it.

    Raises:
        DataError: the backbone has no classifier of its own.
    """
    from embedkit.backbones import backbone_class

    labels = backbone_class(backbone).classifier_labels()
    if not labels:
        raise DataError(f"--zero-shot: backbone {backbone!r} has no classifier of its own; use birdnet")
    return list(labels)


def _norm(name: str) -> str:
    return " ".join(str(name).replace("_", " ").split()).lower()


def map_species(labels: list[str], scientific: dict[str, str], backbone_labels: list[str]) -> np.ndarray:
    """Index of each label's species among the backbone's classes, by scientific name.

    Args:
        labels: C task labels (e.g. eBird codes).
        scientific: label → scientific name (labels missing here stay unmapped).
        backbone_labels: K backbone class labels, ``"Scientific name_Common name"``.

    Returns:
        int64 [C]: the backbone class index, -1 where unmapped.
    """
    index: dict[str, int] = {}
    for i, s in enumerate(backbone_labels):
        index.setdefault(_norm(s.split("_", 1)[0]), i)
    return np.array([index.get(_norm(scientific.get(c, "")), -1) for c in labels], dtype=np.int64)


def species_map(data_root: str | os.PathLike, labels: list[str], backbone: str = "birdnet") -> np.ndarray:
    """:func:`map_species` with the scientific names of ``DATA/taxonomy.csv``.

    Raises:
        DataError: no taxonomy.csv with ``primary_label`` and ``scientific_name``, or no label maps.
    """
    import pandas as pd

    path = Path(data_root) / "taxonomy.csv"
    if not path.is_file():
        raise DataError(f"--zero-shot needs {path} (primary_label, scientific_name) to map the labels")
    tax = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"primary_label", "scientific_name"} <= set(tax.columns):
        raise DataError(f"{path}: --zero-shot needs columns primary_label and scientific_name")
    idx = map_species(
        labels,
        dict(zip(tax["primary_label"], tax["scientific_name"], strict=True)),
        backbone_labels(backbone),
    )
    if not (idx >= 0).any():
        raise DataError(
            f"--zero-shot: none of the {len(labels)} labels is a {backbone} class by scientific name"
        )
    return idx


def class_logits(logits: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Backbone logits [N, K] → logits of the mapped labels [N, C] (0 where ``index`` is -1)."""
    out = np.zeros((len(logits), len(index)), np.float32)
    ok = index >= 0
    out[:, ok] = logits[:, index[ok]]
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def apply_prior(p: np.ndarray, z: np.ndarray, weights: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Blend head probabilities with the zero-shot prior.

    Args:
        p: head probabilities [N, C].
        z: zero-shot logits of the labels [N, C] (:func:`class_logits`).
        weights: w [C] (0 = head alone).
        offset: o [C], mean training logit of each class.

    Returns:
        float32 [N, C]: ``sigmoid(logit(p) + w * (z - o))``.
    """
    s = _logit(p) + weights * (np.asarray(z, np.float64) - offset)
    return (1.0 / (1.0 + np.exp(-s))).astype(np.float32)


def fit_prior_weights(
    p: np.ndarray,
    z: np.ndarray,
    truth: np.ndarray,
    mapped: np.ndarray,
    per_class: bool = False,
    grid: tuple[float, ...] = PRIOR_GRID,
    margin: float = 0.01,
) -> np.ndarray:
    """Prior weights that maximise out-of-fold macro ROC-AUC.

    Args:
        p: out-of-fold head probabilities [N, C].
        z: zero-shot logits [N, C].
        truth: targets [N, C] (positive where >= 0.5).
        mapped: bool [C], labels the backbone knows.
        per_class: also pick a weight per class, kept only where it beats the shared one by ``margin`` AUC.
        grid: candidate weights.
        margin: AUC a class's own weight must gain over the shared weight.

    Returns:
        float32 [C]: 0 for unmapped labels and labels without positives and negatives.
    """
    from embedkit.metrics import per_class_auc, scorable_classes

    w = np.zeros(len(mapped), np.float32)
    cols = np.flatnonzero(mapped & scorable_classes(truth))
    if cols.size == 0:
        return w
    h = _logit(p[:, cols])
    auc = np.stack([per_class_auc(truth[:, cols], h + g * z[:, cols]) for g in grid])  # [G, k]
    shared = int(np.argmax(auc.mean(axis=1)))
    w[cols] = grid[shared]
    if per_class:
        own = auc.argmax(axis=0)
        better = auc[own, np.arange(cols.size)] - auc[shared] > margin
        w[cols[better]] = np.asarray(grid)[own[better]]
    return w


__all__ = [
    "MODES",
    "apply_prior",
    "backbone_labels",
    "class_logits",
    "fit_prior_weights",
    "map_species",
    "species_map",
]

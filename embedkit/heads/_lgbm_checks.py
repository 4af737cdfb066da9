"""Checks of a parsed LightGBM model (``_lgbm_text``) and of the lgbm head's values; the checked booster load.

Vectorised over all trees at once (a booster of 195 classes x 100 rounds has ~20k trees): feature indices,
decision types, leaf magnitudes, and the shape of every tree (:func:`check_structure`); the lgbm head's other
learned values (:func:`check_learned`); ``booster.txt`` -> ``lgb.Booster`` via both (:func:`load_booster`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

#: a leaf value above this (in absolute value) is not a fitted model; keeps a sum over trees finite
MAX_LEAF_VALUE = 1e30
#: the decision types of a numerical split (bit 0 categorical = 0; bit 1 default-left; bits 2-3 missing type
#: 0 none, 1 zero, 2 NaN)
DECISION_TYPES = frozenset({0, 2, 4, 6, 8, 10})


class BoosterTextError(ValueError):
    """LightGBM model text that is malformed or not a model this head could have written."""


def tree_of(starts: np.ndarray, bad: np.ndarray) -> int:
    """The tree of the first ``True`` in ``bad`` (a mask over a column's values)."""
    return int(np.searchsorted(starts, np.flatnonzero(bad)[0], side="right") - 1)


def check_values(cols: dict, n_features: int) -> None:
    """Feature indices, decision types, leaf magnitudes of every tree (``cols``: key -> (values, starts))."""
    feat, fs = cols["split_feature"]
    bad = (feat < 0) | (feat >= n_features)
    if bad.any():
        raise BoosterTextError(
            f"tree {tree_of(fs, bad)}: split_feature {int(feat[bad][0])} outside [0, {n_features})"
        )
    dt, ds = cols["decision_type"]
    bad = ~np.isin(dt, sorted(DECISION_TYPES))
    if bad.any():
        raise BoosterTextError(
            f"tree {tree_of(ds, bad)}: decision_type {int(dt[bad][0])} is not a numerical split "
            f"({sorted(DECISION_TYPES)})"
        )
    lv, ls = cols["leaf_value"]
    bad = np.abs(lv) > MAX_LEAF_VALUE
    if bad.any():
        raise BoosterTextError(f"tree {tree_of(ls, bad)}: leaf_value beyond +-{MAX_LEAF_VALUE:g}")


def check_structure(num_leaves: np.ndarray, left: np.ndarray, right: np.ndarray) -> None:
    """Refuse child links that do not form, in every tree, one proper binary tree rooted at node 0.

    Args:
        num_leaves: int ``[T]`` leaves of each tree.
        left: int ``[sum(num_leaves - 1)]`` left child of each internal node, tree after tree (``>= 0`` an
            internal node of the same tree, ``~leaf`` a leaf).
        right: right children, same layout.

    Raises:
        BoosterTextError: a child out of range, or a node or leaf reached twice or never (a cycle, a shared
            subtree, an orphan); the message names the first such tree.
    """
    m = num_leaves - 1
    node_off = np.concatenate([[0], np.cumsum(m)])
    leaf_off = np.concatenate([[0], np.cumsum(num_leaves)])
    tree = np.repeat(np.arange(len(m)), m)  # tree of each internal node
    for side, child in (("left_child", left), ("right_child", right)):
        bad = (child >= m[tree]) | (~child >= num_leaves[tree])
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            t = int(tree[j])
            raise BoosterTextError(
                f"tree {t}: {side}[{j - node_off[t]}]={int(child[j])} is not a node (0..{m[t] - 1}) "
                f"or a leaf (-1..{-num_leaves[t]})"
            )
    child = np.concatenate([left, right])
    owner = np.concatenate([np.arange(len(left))] * 2)  # the global internal node holding each link
    ct = np.concatenate([tree, tree])
    inner = child >= 0
    g = node_off[ct[inner]] + child[inner]
    indeg = np.bincount(g, minlength=len(left))
    want = np.ones(len(left), np.int64)
    want[node_off[:-1][m > 0]] = 0  # roots
    leaves = np.bincount(leaf_off[ct[~inner]] + ~child[~inner], minlength=leaf_off[-1])
    multi = num_leaves > 1
    leaf_want = np.repeat(multi.astype(np.int64), num_leaves)
    bad_node, bad_leaf = indeg != want, leaves != leaf_want
    if bad_node.any() or bad_leaf.any():
        t = min(
            int(tree[np.flatnonzero(bad_node)[0]]) if bad_node.any() else len(m),
            int(np.searchsorted(leaf_off, np.flatnonzero(bad_leaf)[0], side="right") - 1)
            if bad_leaf.any() else len(m),
        )  # fmt: skip
        raise BoosterTextError(
            f"tree {t}: a node or leaf is reached twice or never (a cycle or shared subtree)"
        )
    parent = np.arange(len(left))
    parent[g] = owner[inner]
    root = node_off[tree]
    for _ in range(int(m.max(initial=1)).bit_length() + 1):  # pointer jumping: every node to its top
        parent = parent[parent]
    bad = parent != root
    if bad.any():
        raise BoosterTextError(
            f"tree {int(tree[np.flatnonzero(bad)[0]])}: nodes in a cycle, unreachable from the root"
        )


def check_learned(head, folder: Path, booster_file: str) -> tuple[int, int, np.ndarray]:
    """Refuse learned values of a loaded ``LGBMHead`` that do not fit together.

    Returns:
        ``(D, C, trained_ bool [C])``.

    Raises:
        ValueError: dimensions missing or out of range, ``trained_``/``constant_`` not ``[C]``, constants not
            probabilities, ``n_jobs`` not a number (it is capped at the cores), or ``booster_`` not the
            booster file exactly when some class is trained.
    """
    d, c = getattr(head, "n_features_in_", None), getattr(head, "n_classes_", None)
    trained, constant = getattr(head, "trained_", None), getattr(head, "constant_", None)
    ok = type(d) is int and type(c) is int and 1 <= d <= 1 << 20 and 1 <= c <= 1 << 20
    if not ok or not isinstance(trained, np.ndarray) or not isinstance(constant, np.ndarray):
        raise ValueError(f"{folder}: n_features_in_ / n_classes_ / trained_ / constant_ missing or malformed")
    if trained.shape != (c,) or trained.dtype != bool or constant.shape != (c,):
        raise ValueError(f"{folder}: trained_ and constant_ must be [n_classes_ = {c}] (bool, float)")
    if not np.isfinite(constant).all() or constant.min(initial=0) < 0 or constant.max(initial=0) > 1:
        raise ValueError(f"{folder}: constant_ must hold probabilities in [0, 1]")
    jobs = getattr(head, "n_jobs", None)
    if jobs is not None and (type(jobs) not in (int, float) or not math.isfinite(jobs)):
        raise ValueError(f"{folder}: n_jobs must be null or a number of cores, got {str(jobs)[:40]!r}")
    if head.booster_ not in (None, booster_file) or (head.booster_ is None) != (not trained.any()):
        raise ValueError(f"{folder}: booster_ must be {booster_file!r} when a class is trained, else null")
    return d, c, trained


def load_booster(path: Path, n_features: int, n_outputs: int):
    """``lgb.Booster`` of a checked ``booster.txt`` (D = ``n_features`` inputs, K = ``n_outputs`` outputs).

    Raises:
        ValueError: the file is not such a model (one line naming the file, the tree and the field).
    """
    import lightgbm as lgb

    from embedkit.heads._lgbm_text import safe_model_string

    try:
        text = safe_model_string(path.read_text(encoding="ascii"), n_features, n_outputs)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not LightGBM model text (non-ASCII bytes)") from None
    except BoosterTextError as e:
        raise ValueError(f"{path}: {e}") from None
    return lgb.Booster(model_str=text)


__all__ = [
    "DECISION_TYPES",
    "MAX_LEAF_VALUE",
    "BoosterTextError",
    "check_learned",
    "check_structure",
    "check_values",
    "load_booster",
    "tree_of",
]

"""LightGBM model text, checked in Python before any of it reaches LightGBM's native parser.

LightGBM's C++ loader trusts its input: a child index out of range or a ``split_feature`` past the row reads
outside its arrays (SIGSEGV), a cycle of child links makes ``predict`` loop forever, a wrong ``tree_sizes``
aborts the process (SIGABRT after thousands of ``[Fatal]`` lines), a file cut inside a tree makes its
``key=value`` scanner run past the buffer, and ``num_class=2e9`` makes it allocate tens of GiB. Hashes in
``model.json`` prove only that a file was not changed since someone wrote the manifest; anyone can recompute
them. So :func:`safe_model_string` parses the whole text here, checks every tree, and hands LightGBM a
*canonical* text written from the checked numbers (only the keys LightGBM needs, in its own order, no
``tree_sizes``): what LightGBM parses is exactly what was checked, whatever tricks the original file holds
(duplicated keys, numbers that Python and C++ read differently, junk after a value).

What is accepted: the text ``LGBMHead`` writes (``model_to_string`` of a ``multiclassova`` model): header keys
``version=v4``, ``num_class = num_tree_per_iteration = K`` (the head's trained classes), ``label_index=0``,
``max_feature_idx = D - 1`` (the head's input dimension), ``objective`` (``multiclassova num_class:K
sigmoid:S`` or ``binary sigmoid:S``), ``feature_names``/``feature_infos`` with D entries, optional
``tree_sizes`` (equal to the byte length of each tree block); then ``Tree=0 .. Tree=T-1`` (T a multiple of K,
at most :data:`MAX_TREES`), ``end of trees``. Each tree: numerical splits only (``num_cat=0``,
``is_linear=0``), ``num_leaves`` in [1, :data:`MAX_LEAVES`] and every array of the length it implies,
``split_feature`` in [0, D), ``decision_type`` in {0, 2, 4, 6, 8, 10} (not categorical, missing type none /
zero / NaN), finite thresholds, leaf values finite with ``|v| <=`` :data:`MAX_LEAF_VALUE`, and a proper binary
tree: from the root every internal node and every leaf is reached exactly once.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

#: LightGBM's own upper limit of ``num_leaves``
MAX_LEAVES = 131072
#: trees in one booster (195 classes x 1000 rounds is 195k)
MAX_TREES = 2_000_000
#: a leaf value above this (in absolute value) is not a fitted model; keeps a sum over trees finite
MAX_LEAF_VALUE = 1e30
#: the decision types of a numerical split (bit 0 categorical = 0; bit 1 default-left; bits 2-3 missing type
#: 0 none, 1 zero, 2 NaN)
DECISION_TYPES = frozenset({0, 2, 4, 6, 8, 10})

_HEADER_KEYS = (
    "version", "num_class", "num_tree_per_iteration", "label_index", "max_feature_idx", "objective",
    "feature_names", "feature_infos", "tree_sizes",
)  # fmt: skip
_REQUIRED_HEADER = set(_HEADER_KEYS) - {"tree_sizes"}
_INT = re.compile(r"-?[0-9]{1,10}")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")
_OBJECTIVE = re.compile(r"(?:multiclassova num_class:([0-9]{1,7})|binary) sigmoid:(\S+)")
_INFO = re.compile(r"none|\[(\S+):(\S+)\]")
# per tree: key -> (kind, length offset from num_leaves, required when num_leaves > 1)
_TREE_ARRAYS = {
    "split_feature": ("int", -1, True),
    "split_gain": ("float", -1, False),
    "threshold": ("float", -1, True),
    "decision_type": ("int", -1, True),
    "left_child": ("int", -1, True),
    "right_child": ("int", -1, True),
    "leaf_value": ("float", 0, True),
    "leaf_weight": ("float", 0, False),
    "leaf_count": ("int", 0, False),
    "internal_value": ("float", -1, False),
    "internal_weight": ("float", -1, False),
    "internal_count": ("int", -1, False),
}
_TREE_SCALARS = ("num_leaves", "num_cat", "is_linear", "shrinkage")
_INT32 = 2**31 - 1


class BoosterTextError(ValueError):
    """LightGBM model text that is malformed or not a model this head could have written."""


def _int(value: str, what: str, lo: int, hi: int) -> int:
    if not _INT.fullmatch(value):
        raise BoosterTextError(f"{what}={value[:40]!r} is not an integer")
    v = int(value)
    if not lo <= v <= hi:
        raise BoosterTextError(f"{what}={v} is outside [{lo}, {hi}]")
    return v


def _float(value: str, what: str) -> float:
    if not _FLOAT.fullmatch(value):
        raise BoosterTextError(f"{what}={value[:40]!r} is not a finite number")
    v = float(value)
    if not math.isfinite(v):
        raise BoosterTextError(f"{what}={value[:40]!r} is not a finite number")
    return v


def _array(value: str, kind: str, n: int, what: str) -> np.ndarray:
    """``n`` space-separated numbers: int64 (each fits int32) or finite float64."""
    tokens = value.split(" ") if value else []
    if len(tokens) != n:
        raise BoosterTextError(f"{what} has {len(tokens)} values, num_leaves implies {n}")
    if kind == "int":
        bad = next((t for t in tokens if not _INT.fullmatch(t)), None)
        if bad is not None:
            raise BoosterTextError(f"{what} holds {bad[:40]!r}, not an integer")
        a = np.array(tokens, dtype=np.int64) if tokens else np.zeros(0, np.int64)
        if a.size and np.abs(a).max() > _INT32:
            raise BoosterTextError(f"{what} holds a value outside the 32-bit range")
        return a
    bad = next((t for t in tokens if not _FLOAT.fullmatch(t)), None)
    if bad is not None:
        raise BoosterTextError(f"{what} holds {bad[:40]!r}, not a finite number")
    a = np.array(tokens, dtype=np.float64) if tokens else np.zeros(0, np.float64)
    if not np.isfinite(a).all():
        raise BoosterTextError(f"{what} holds a value too large to be finite")
    return a


def _key_values(lines: list[str], allowed, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep or key not in allowed:
            raise BoosterTextError(f"{what}: unexpected line {line[:60]!r}")
        if key in out:
            raise BoosterTextError(f"{what}: {key} given twice")
        out[key] = value
    return out


def check_tree_structure(left: np.ndarray, right: np.ndarray, num_leaves: int, what: str) -> None:
    """Refuse child links that do not form one proper binary tree rooted at node 0.

    Args:
        left: int ``[num_leaves - 1]`` left child of each internal node (``>= 0`` a node, ``~leaf`` a leaf).
        right: int ``[num_leaves - 1]`` right children, same encoding.
        num_leaves: leaves of the tree.
        what: the tree's name for the message.

    Raises:
        BoosterTextError: a child out of range, or a node or leaf reached twice or never (a cycle, a shared
            subtree, an orphan).
    """
    m = num_leaves - 1
    seen_node = np.zeros(m, bool)
    seen_leaf = np.zeros(num_leaves, bool)
    seen_node[0] = True
    stack = [0]
    while stack:
        node = stack.pop()
        for side, child in (("left_child", int(left[node])), ("right_child", int(right[node]))):
            if child >= 0:
                if child >= m:
                    raise BoosterTextError(f"{what}: {side}[{node}]={child} is not a node (0..{m - 1})")
                if seen_node[child]:
                    raise BoosterTextError(
                        f"{what}: node {child} is reached twice (a cycle or a shared subtree)"
                    )
                seen_node[child] = True
                stack.append(child)
            else:
                leaf = ~child
                if leaf >= num_leaves:
                    raise BoosterTextError(
                        f"{what}: {side}[{node}]={child} is not a leaf (-1..{-num_leaves})"
                    )
                if seen_leaf[leaf]:
                    raise BoosterTextError(f"{what}: leaf {leaf} is reached twice")
                seen_leaf[leaf] = True
    if not seen_node.all() or not seen_leaf.all():
        raise BoosterTextError(f"{what}: not every node and leaf is reachable from the root")


def _tree(block: str, index: int, n_features: int) -> dict:
    """One ``Tree=i`` block (without its first line) as checked numbers."""
    what = f"tree {index}"
    lines = block.split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    kv = _key_values(lines, set(_TREE_SCALARS) | set(_TREE_ARRAYS), what)
    if "num_leaves" not in kv or "leaf_value" not in kv:
        raise BoosterTextError(f"{what}: num_leaves or leaf_value missing")
    n = _int(kv["num_leaves"], f"{what}: num_leaves", 1, MAX_LEAVES)
    _int(kv.get("num_cat", "0"), f"{what}: num_cat (categorical splits)", 0, 0)
    _int(kv.get("is_linear", "0"), f"{what}: is_linear (linear trees)", 0, 0)
    tree: dict = {"num_leaves": n, "shrinkage": _float(kv.get("shrinkage", "1"), f"{what}: shrinkage")}
    for key, (kind, off, required) in _TREE_ARRAYS.items():
        length = n + off
        if n == 1 and key != "leaf_value":  # LightGBM reads no more of a single-leaf tree
            continue
        if key not in kv:
            if required and length > 0:
                raise BoosterTextError(f"{what}: {key} missing")
            continue
        tree[key] = _array(kv[key], kind, length, f"{what}: {key}")
    if np.abs(tree["leaf_value"]).max() > MAX_LEAF_VALUE:
        raise BoosterTextError(f"{what}: leaf_value beyond +-{MAX_LEAF_VALUE:g}")
    if n > 1:
        feat = tree["split_feature"]
        if feat.min() < 0 or feat.max() >= n_features:
            bad = int(feat[(feat < 0) | (feat >= n_features)][0])
            raise BoosterTextError(f"{what}: split_feature {bad} outside [0, {n_features})")
        dt = set(tree["decision_type"].tolist())
        if not dt <= DECISION_TYPES:
            raise BoosterTextError(
                f"{what}: decision_type {sorted(dt - DECISION_TYPES)[0]} is not a numerical split "
                f"({sorted(DECISION_TYPES)})"
            )
        check_tree_structure(tree["left_child"], tree["right_child"], n, what)
    for key in ("leaf_count", "internal_count"):
        if key in tree and tree[key].size and tree[key].min() < 0:
            raise BoosterTextError(f"{what}: {key} is negative")
    return tree


def _header(lines: list[str], n_features: int, n_outputs: int) -> dict[str, str]:
    if not lines or lines[0] != "tree":
        raise BoosterTextError("not LightGBM model text (first line is not 'tree')")
    kv = _key_values([line for line in lines[1:] if line], _HEADER_KEYS, "header")
    missing = sorted(_REQUIRED_HEADER - set(kv))
    if missing:
        raise BoosterTextError(f"header: {missing[0]} missing")
    if kv["version"] != "v4":
        raise BoosterTextError(f"header: version={kv['version'][:20]!r} is not v4")
    k = _int(kv["num_class"], "num_class", n_outputs, n_outputs)
    _int(kv["num_tree_per_iteration"], "num_tree_per_iteration", k, k)
    _int(kv["label_index"], "label_index", 0, 0)
    _int(kv["max_feature_idx"], "max_feature_idx", n_features - 1, n_features - 1)
    m = _OBJECTIVE.fullmatch(kv["objective"])
    if not m or (m.group(1) is not None and int(m.group(1)) != k) or (m.group(1) is None and k != 1):
        raise BoosterTextError(f"objective={kv['objective'][:60]!r} is not multiclassova with num_class:{k}")
    _float(m.group(2), "objective sigmoid")
    if len(kv["feature_names"].split(" ")) != n_features:
        raise BoosterTextError(f"feature_names does not name {n_features} features")
    infos = kv["feature_infos"].split(" ")
    if len(infos) != n_features:
        raise BoosterTextError(f"feature_infos does not describe {n_features} features")
    for info in infos:
        mi = _INFO.fullmatch(info)
        if not mi:
            raise BoosterTextError(f"feature_infos holds {info[:40]!r}")
        if mi.group(1) is not None:
            _float(mi.group(1), "feature_infos"), _float(mi.group(2), "feature_infos")
    return kv


def parse_model_text(text: str, n_features: int, n_outputs: int) -> dict:
    """Parse and check the text of a LightGBM model written by ``LGBMHead``.

    Args:
        text: the model text (``booster.txt``).
        n_features: D, the head's input dimension (``max_feature_idx + 1`` must equal it).
        n_outputs: K, the head's trained classes (``num_class`` must equal it).

    Returns:
        ``{"header": {key: value}, "trees": [tree dict of checked numpy arrays]}``.

    Raises:
        BoosterTextError: anything that is not such a model; the message names the tree and the field.
    """
    if not text.isascii():
        raise BoosterTextError("not LightGBM model text (non-ASCII characters)")
    if "\r" in text or "\0" in text:
        raise BoosterTextError("not LightGBM model text (a carriage return or NUL byte)")
    head, sep, rest = text.partition("\nTree=")
    if not sep:
        raise BoosterTextError("no trees (no 'Tree=' line)")
    body, sep, _tail = ("Tree=" + rest).partition("end of trees\n")
    if not sep:
        raise BoosterTextError("the file ends inside the trees (no 'end of trees' line: cut short?)")
    kv = _header(head.split("\n"), n_features, n_outputs)
    starts = [m.start() for m in re.finditer(r"^Tree=", body, flags=re.M)]
    if len(starts) > MAX_TREES or len(starts) % n_outputs:
        raise BoosterTextError(
            f"{len(starts)} trees: not a multiple of num_class={n_outputs} up to {MAX_TREES}"
        )
    bounds = starts + [len(body)]
    if "tree_sizes" in kv:
        sizes = kv["tree_sizes"].split(" ") if kv["tree_sizes"] else []
        real = [str(b - a) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        if sizes != real:
            raise BoosterTextError(
                f"tree_sizes ({len(sizes)} values) do not match the {len(real)} tree blocks' byte lengths"
            )
    trees = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        first, _, block = body[a:b].partition("\n")
        if first != f"Tree={i}":
            raise BoosterTextError(f"tree {i}: block starts with {first[:40]!r}, not 'Tree={i}'")
        trees.append(_tree(block, i, n_features))
    return {"header": kv, "trees": trees}


def _join(a: np.ndarray) -> str:
    return " ".join(map(repr, a.tolist()))


def canonical_model_text(model: dict) -> str:
    """The LightGBM text of a :func:`parse_model_text` result, written from the checked numbers only."""
    kv = model["header"]
    d = int(kv["max_feature_idx"]) + 1
    k = int(kv["num_class"])
    out = [
        "tree\nversion=v4\n",
        f"num_class={k}\nnum_tree_per_iteration={k}\nlabel_index=0\nmax_feature_idx={d - 1}\n",
        f"objective=multiclassova num_class:{k} sigmoid:1\n",
        "feature_names=" + " ".join(f"Column_{j}" for j in range(d)) + "\n",
        f"feature_infos={kv['feature_infos']}\n\n",  # checked: none or [finite:finite] per feature
    ]
    for i, t in enumerate(model["trees"]):
        lines = [f"Tree={i}", f"num_leaves={t['num_leaves']}", "num_cat=0"]
        lines += [f"{key}={_join(t[key])}" for key in _TREE_ARRAYS if key in t]
        lines += ["is_linear=0", f"shrinkage={t['shrinkage']!r}", "", ""]
        out.append("\n".join(lines))
    out.append("end of trees\n\nfeature_importances:\n\nparameters:\nend of parameters\n\n")
    out.append("pandas_categorical:null\n")
    return "".join(out)


def safe_model_string(text: str, n_features: int, n_outputs: int) -> str:
    """Check LightGBM model text (:func:`parse_model_text`); its canonical form for ``lgb.Booster``.

    Raises:
        BoosterTextError: the text is not a model ``LGBMHead`` could have written for this head.
    """
    return canonical_model_text(parse_model_text(text, n_features, n_outputs))


def check_learned(head, folder: Path, booster_file: str) -> tuple[int, int, np.ndarray]:
    """Refuse learned values of a loaded ``LGBMHead`` that do not fit together.

    Returns:
        ``(D, C, trained_ bool [C])``.

    Raises:
        ValueError: dimensions missing or out of range, ``trained_``/``constant_`` not ``[C]``, constants not
            probabilities, or ``booster_`` not the booster file exactly when some class is trained.
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
    if head.booster_ not in (None, booster_file) or (head.booster_ is None) != (not trained.any()):
        raise ValueError(f"{folder}: booster_ must be {booster_file!r} when a class is trained, else null")
    return d, c, trained


__all__ = [
    "BoosterTextError",
    "canonical_model_text",
    "check_learned",
    "check_tree_structure",
    "parse_model_text",
    "safe_model_string",
]

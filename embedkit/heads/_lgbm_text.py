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

import re

import numpy as np

from embedkit.heads._lgbm_checks import (
    BoosterTextError,
    check_structure,
    check_values,
)
from embedkit.heads._lgbm_values import TREE_ARRAYS, column, parse_float, parse_int

#: LightGBM's own upper limit of ``num_leaves``
MAX_LEAVES = 131072
#: trees in one booster (195 classes x 1000 rounds is 195k)
MAX_TREES = 2_000_000

_HEADER_KEYS = (
    "version", "num_class", "num_tree_per_iteration", "label_index", "max_feature_idx", "objective",
    "feature_names", "feature_infos", "tree_sizes",
)  # fmt: skip
_REQUIRED_HEADER = set(_HEADER_KEYS) - {"tree_sizes"}
_OBJECTIVE = re.compile(r"(?:multiclassova num_class:([0-9]{1,7})|binary) sigmoid:(\S+)")
_INFO = re.compile(r"none|\[(\S+):(\S+)\]")
#: statistics LightGBM writes but prediction never reads: accepted (once each), not passed on
_TREE_IGNORED = (
    "split_gain",
    "leaf_weight",
    "leaf_count",
    "internal_value",
    "internal_weight",
    "internal_count",
)
_TREE_SCALARS = ("num_leaves", "num_cat", "is_linear", "shrinkage")
_TREE_KEYS = frozenset(_TREE_SCALARS) | frozenset(TREE_ARRAYS) | frozenset(_TREE_IGNORED)


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


def _tree_fields(block: str, index: int) -> dict:
    """One ``Tree=i`` block (without its first line): ``num_leaves``, ``shrinkage`` and the raw arrays."""
    what = f"tree {index}"
    lines = block.split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    kv = _key_values(lines, _TREE_KEYS, what)
    if "num_leaves" not in kv or "leaf_value" not in kv:
        raise BoosterTextError(f"{what}: num_leaves or leaf_value missing")
    n = parse_int(kv.pop("num_leaves"), f"{what}: num_leaves", 1, MAX_LEAVES)
    parse_int(kv.pop("num_cat", "0"), f"{what}: num_cat (categorical splits)", 0, 0)
    parse_int(kv.pop("is_linear", "0"), f"{what}: is_linear (linear trees)", 0, 0)
    shrinkage = kv.pop("shrinkage", "1")
    parse_float(shrinkage, f"{what}: shrinkage")
    if n == 1:  # LightGBM reads no more of a single-leaf tree
        kv = {"leaf_value": kv["leaf_value"]}
    for key in _TREE_IGNORED:
        kv.pop(key, None)
    return {"num_leaves": n, "shrinkage": shrinkage, "fields": kv}


def _header(lines: list[str], n_features: int, n_outputs: int) -> dict[str, str]:
    if not lines or lines[0] != "tree":
        raise BoosterTextError("not LightGBM model text (first line is not 'tree')")
    kv = _key_values([line for line in lines[1:] if line], _HEADER_KEYS, "header")
    missing = sorted(_REQUIRED_HEADER - set(kv))
    if missing:
        raise BoosterTextError(f"header: {missing[0]} missing")
    if kv["version"] != "v4":
        raise BoosterTextError(f"header: version={kv['version'][:20]!r} is not v4")
    k = parse_int(kv["num_class"], "num_class", n_outputs, n_outputs)
    parse_int(kv["num_tree_per_iteration"], "num_tree_per_iteration", k, k)
    parse_int(kv["label_index"], "label_index", 0, 0)
    parse_int(kv["max_feature_idx"], "max_feature_idx", n_features - 1, n_features - 1)
    m = _OBJECTIVE.fullmatch(kv["objective"])
    if not m or (m.group(1) is not None and int(m.group(1)) != k) or (m.group(1) is None and k != 1):
        raise BoosterTextError(f"objective={kv['objective'][:60]!r} is not multiclassova with num_class:{k}")
    parse_float(m.group(2), "objective sigmoid")
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
            parse_float(mi.group(1), "feature_infos"), parse_float(mi.group(2), "feature_infos")
    return kv


def parse_model_text(text: str, n_features: int, n_outputs: int) -> dict:
    """Parse and check the text of a LightGBM model written by ``LGBMHead``.

    Args:
        text: the model text (``booster.txt``).
        n_features: D, the head's input dimension (``max_feature_idx + 1`` must equal it).
        n_outputs: K, the head's trained classes (``num_class`` must equal it).

    Returns:
        ``{"header": {key: value}, "trees": [{"num_leaves", "shrinkage", "fields": {key: checked value
        text}}], "columns": {key: (values of every tree concatenated, start offset of each tree [T + 1])}}``.

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
        trees.append(_tree_fields(block, i))
    cols = {key: column(trees, key) for key in TREE_ARRAYS}
    check_values(cols, n_features)
    num_leaves = np.array([t["num_leaves"] for t in trees], np.int64)
    check_structure(num_leaves, cols["left_child"][0], cols["right_child"][0])
    return {"header": kv, "trees": trees, "columns": cols}


def tree_arrays(model: dict, i: int) -> dict[str, np.ndarray]:
    """Tree ``i`` of a :func:`parse_model_text` result as arrays (``num_leaves`` too)."""
    out = {"num_leaves": model["trees"][i]["num_leaves"]}
    for key, (values, starts) in model["columns"].items():
        out[key] = values[starts[i] : starts[i + 1]]
    return out


def canonical_model_text(model: dict) -> str:
    """The LightGBM text of a :func:`parse_model_text` result, written from what was checked.

    The header is written from the checked values; each tree's fields are its checked decimal numbers (whose
    values C++ reads as Python did), in LightGBM's order; ``tree_sizes`` is left out (it is optional).
    """
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
        fields = t["fields"]
        lines = [f"Tree={i}", f"num_leaves={t['num_leaves']}", "num_cat=0"]
        lines += [f"{key}={fields[key]}" for key in TREE_ARRAYS if key in fields]
        lines += ["is_linear=0", f"shrinkage={t['shrinkage']}", "", ""]
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


__all__ = [
    "BoosterTextError",
    "canonical_model_text",
    "check_structure",
    "parse_model_text",
    "safe_model_string",
    "tree_arrays",
]

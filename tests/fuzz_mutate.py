"""Hypothesis strategies for hostile edits of a file, by format, and the functions that apply them.

A mutation is plain data (tuples of ints, strings and floats: hypothesis shrinks them and prints them when a
case fails); ``apply(fmt, data, mutation) -> bytes`` turns it into the edited file. Formats: ``bytes``
(truncate, flip, insert, delete, replace), ``json`` (a value anywhere set to a hostile value: wrong types,
huge integers, NaN / Infinity, 200k-deep nesting, wrong lengths, paths outside the folder; keys deleted or
added; the whole document replaced), ``lgbm`` (LightGBM model text by field: a token of a tree's array, a
child link, a header value, a line deleted, doubled or added, the file cut; ``tree_sizes`` recomputed or not),
``csv`` (a cell, a column dropped or doubled, a ragged row), ``toml`` (a value replaced by hostile TOML:
datetimes, NaN, 5000-deep arrays, huge integers, wrong types; a key added or deleted).
"""

from __future__ import annotations

import json
import re

from fuzz_booster import fix_tree_sizes, tree_count
from hypothesis import strategies as st

# -- bytes ---------------------------------------------------------------------------------------------------
BYTES_OPS = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 64)),
    st.tuples(st.just("replace"), st.binary(max_size=64)),
)


def apply_bytes(data: bytes, op: tuple) -> bytes:
    kind = op[0]
    at = int(op[1] * len(data)) if kind != "replace" else 0
    if kind == "truncate":
        return data[:at]
    if kind == "flip":
        return data[:at] + bytes([op[2]]) + data[at + 1 :] if data else bytes([op[2]])
    if kind == "insert":
        return data[:at] + op[2] + data[at:]
    if kind == "delete":
        return data[:at] + data[at + op[2] :]
    return op[1]


# -- JSON ----------------------------------------------------------------------------------------------------
RAW = "\x00RAW{}\x00"
#: raw JSON texts that json.dumps cannot make: a 4,300+ digit integer, 200k-deep nesting
RAW_TEXTS = {
    "hugeint": "9" * 5000,
    "deep": "[" * 200_000 + "]" * 200_000,
    "deepobj": '{"a":' * 50_000 + "1" + "}" * 50_000,
}
HOSTILE_STRINGS = ["", "../../etc/passwd", "/etc/passwd", "booster.txt", "x" * 5000, "cuda:99", "nan",
                   "\u00e9", "head", "model.json", "1e999", "-1"]  # fmt: skip
JSON_VALUES = st.one_of(
    st.none(), st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2, 2**31, 2**63, 10**9, 2_000_000, 10**20]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(HOSTILE_STRINGS), st.text(max_size=12),
    st.lists(st.one_of(st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=3)), max_size=6),
    st.dictionaries(st.text(max_size=6), st.integers(-3, 3), max_size=3),
    st.sampled_from([RAW.format(k) for k in RAW_TEXTS]),
)  # fmt: skip
JSON_OPS = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 10**6), JSON_VALUES),
    st.tuples(st.just("delete"), st.integers(0, 10**6)),
    st.tuples(st.just("add"), st.integers(0, 10**6), st.sampled_from(["extra", "files", "format", "head"]),
              JSON_VALUES),
    st.tuples(st.just("whole"), JSON_VALUES),
    st.tuples(st.just("bytes"), BYTES_OPS),
)  # fmt: skip


def _paths(doc, prefix=()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:20]):
            out += _paths(v, (*prefix, i))
    return out


def _dump(doc) -> bytes:
    text = json.dumps(doc, indent=1, allow_nan=True)
    for k, raw in RAW_TEXTS.items():
        text = text.replace(json.dumps(RAW.format(k)), raw)
    return text.encode()


def apply_json(data: bytes, op: tuple) -> bytes:
    if op[0] == "bytes":
        return apply_bytes(data, op[1])
    if op[0] == "whole":
        return _dump(op[1])
    doc = json.loads(data)
    paths = [p for p in _paths(doc) if p] or [()]
    path = paths[op[1] % len(paths)]
    if not path:
        return _dump(op[-1] if op[0] != "delete" else None)
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    if op[0] == "set":
        parent[key] = op[2]
    elif op[0] == "delete":
        del parent[key]
    else:  # add: beside the chosen value (in its dict), or appended to its list
        if isinstance(parent, dict):
            parent[op[2]] = op[3]
        else:
            parent.append(op[3])
    return _dump(doc)


# -- LightGBM text -------------------------------------------------------------------------------------------
TREE_KEYS = ["num_leaves", "num_cat", "split_feature", "split_gain", "threshold", "decision_type",
             "left_child", "right_child", "leaf_value", "leaf_weight", "leaf_count", "internal_value",
             "internal_weight", "internal_count", "is_linear", "shrinkage"]  # fmt: skip
HEADER_KEYS = ["version", "num_class", "num_tree_per_iteration", "label_index", "max_feature_idx",
               "objective", "feature_names", "feature_infos", "tree_sizes"]  # fmt: skip
TOKENS = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.integers(-70, 70).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-0", "", " ", "1e-999", "0x1p3", "1_0", ".5", "+5", "1.",
                     "9" * 30, "-2147483649", "2147483648", "a", "1 2", "2e9", "1=2", "Tree=0"]),
    st.floats().map(repr),
)  # fmt: skip
LGBM_OPS = st.one_of(
    st.tuples(st.just("token"), st.integers(0, 999), st.sampled_from(TREE_KEYS), st.integers(0, 99), TOKENS),
    st.tuples(st.just("child"), st.integers(0, 999), st.sampled_from(["left_child", "right_child"]),
              st.integers(0, 99), st.integers(-40, 40)),
    st.tuples(st.just("header"), st.sampled_from(HEADER_KEYS), TOKENS),
    st.tuples(st.just("line"), st.integers(0, 10**6), st.sampled_from(["delete", "double", "blank"])),
    st.tuples(st.just("add"), st.integers(0, 10**6), st.sampled_from([*TREE_KEYS, *HEADER_KEYS, "Tree", "x"]),
              TOKENS),
    st.tuples(st.just("cut"), st.floats(0, 1)),
    st.tuples(st.just("bytes"), BYTES_OPS),
)  # fmt: skip


def apply_lgbm(data: bytes, op: tuple, fix_sizes: bool = True) -> bytes:
    from fuzz_booster import get_field, set_field, set_token

    text = data.decode("ascii")
    kind = op[0]
    n = max(1, tree_count(text))
    try:
        if kind in ("token", "child"):
            tree, key, index = op[1] % n, op[2], op[3]
            value = str(op[4]) if kind == "child" else op[4]
            if get_field(text, key, tree) == "":
                text = set_field(text, key, value, tree)
            else:
                text = set_token(text, key, index, value, tree)
        elif kind == "header":
            text = set_field(text, op[1], op[2])
    except KeyError:  # the field is not there (e.g. a single-leaf tree): add it
        text = text.replace("num_leaves=", f"{op[2]}={op[-1]}\nnum_leaves=", 1)
    if kind in ("line", "add"):
        lines = text.split("\n")
        i = op[1] % len(lines)
        if kind == "add":
            lines.insert(i, f"{op[2]}={op[3]}")
        elif op[2] == "delete":
            del lines[i]
        elif op[2] == "double":
            lines.insert(i, lines[i])
        else:
            lines.insert(i, "")
        text = "\n".join(lines)
    if kind == "cut":
        return data[: int(op[1] * len(data))]
    if kind == "bytes":
        return apply_bytes(data, op[1])
    return (fix_tree_sizes(text) if fix_sizes and re.search(r"^end of trees", text, re.M) else text).encode()


# -- CSV and TOML --------------------------------------------------------------------------------------------
CELLS = st.one_of(
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "1e308", "1e309", "-1", "x", "9" * 5000, "../x", "\x00",
                     '"', "y", "n", "skip", "0", "1.5", "row_id", " ", "None"]),
    st.text(max_size=8),
)  # fmt: skip
CSV_OPS = st.one_of(
    st.tuples(st.just("cell"), st.integers(0, 99), st.integers(0, 99), CELLS),
    st.tuples(st.just("dropcol"), st.integers(0, 99)),
    st.tuples(st.just("dupcol"), st.integers(0, 99)),
    st.tuples(st.just("ragged"), st.integers(0, 99), CELLS),
    st.tuples(st.just("bytes"), BYTES_OPS),
)


def apply_csv(data: bytes, op: tuple) -> bytes:
    import csv
    import io

    if op[0] == "bytes":
        return apply_bytes(data, op[1])
    rows = list(csv.reader(io.StringIO(data.decode())))
    r = op[1] % len(rows)
    if op[0] == "cell":
        rows[r][op[2] % len(rows[r])] = op[3]
    elif op[0] == "dropcol":
        c = op[1] % len(rows[0])
        rows = [row[:c] + row[c + 1 :] for row in rows]
    elif op[0] == "dupcol":
        c = op[1] % len(rows[0])
        rows = [row + [row[c]] if c < len(row) else row for row in rows]
    else:
        rows[r] = rows[r] + [op[2]]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


TOML_VALUES = st.one_of(
    st.sampled_from(["1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", "nan", "inf", "-inf", "+nan", '"x"',
                     "''",
                     "[" * 5000 + "]" * 5000, "9" * 30, "-9223372036854775809", "true", "{a = 1}", "[1, 2]",
                     '"../../etc/passwd"', "1e999", "0", "-1", "100000", '"cuda:99"', "[]", '["a", 1]']),
    st.integers(-(2**63), 2**63).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)  # fmt: skip
TOML_OPS = st.one_of(
    st.tuples(st.just("value"), st.integers(0, 999), TOML_VALUES),
    st.tuples(st.just("addkey"), st.sampled_from(["unknown_key", "threads", "smooth", "weights", "tta"]),
              TOML_VALUES),
    st.tuples(st.just("delete"), st.integers(0, 999)),
    st.tuples(st.just("bytes"), BYTES_OPS),
)  # fmt: skip


def apply_toml(data: bytes, op: tuple) -> bytes:
    if op[0] == "bytes":
        return apply_bytes(data, op[1])
    lines = data.decode().split("\n")
    keyed = [i for i, line in enumerate(lines) if "=" in line and not line.lstrip().startswith("#")]
    if op[0] == "addkey":
        lines.insert(0, f"{op[1]} = {op[2]}")
    elif keyed:
        i = keyed[op[1] % len(keyed)]
        if op[0] == "value":
            lines[i] = lines[i].split("=", 1)[0] + "= " + op[2]
        else:
            del lines[i]
    return "\n".join(lines).encode()


#: format -> (strategy of one mutation, apply(bytes, mutation) -> bytes)
FORMATS = {
    "bytes": (BYTES_OPS, apply_bytes),
    "json": (JSON_OPS, apply_json),
    "lgbm": (LGBM_OPS, lambda d, m: apply_lgbm(d, m, fix_sizes=True)),  # tree_sizes recomputed
    "lgbm-stale": (LGBM_OPS, lambda d, m: apply_lgbm(d, m, fix_sizes=False)),  # tree_sizes left as they were
    "csv": (CSV_OPS, apply_csv),
    "toml": (TOML_OPS, apply_toml),
}


def mutations(fmt: str):
    """A strategy of 1-3 mutations of format ``fmt`` applied in turn."""
    return st.lists(FORMATS[fmt][0], min_size=1, max_size=3)


def apply(fmt: str, data: bytes, ops: list) -> bytes:
    """``data`` after each mutation of ``ops``; one that does not apply (JSON already broken) is skipped."""
    fn = FORMATS[fmt][1]
    for op in ops:
        try:
            data = fn(data, op)
        except Exception:  # noqa: BLE001 - the mutator's own failure (not the code under test): skip the edit
            continue
    return data

"""Numbers of LightGBM model text: integers and decimal numbers as LightGBM writes them, a tree field at once.

Python and LightGBM's C++ parser must read every value that is passed on the same way, so only the forms
LightGBM writes are accepted: integers of at most 10 digits (int32 range), and decimals ``-?d+(.d+)?(e±ddd)?``
(``%.17g``); ``nan``, ``inf``, hex, ``1_0``, ``.5``, ``5.``, ``+5`` are refused.
"""

from __future__ import annotations

import math
import re

import numpy as np

from embedkit.heads._lgbm_checks import BoosterTextError, tree_of

_INT = re.compile(r"-?[0-9]{1,10}")
#: a decimal number as LightGBM writes it (``%.17g``): C++'s and Python's parsers agree on its value
_FLOAT = re.compile(r"-?[0-9]{1,400}(?:\.[0-9]{1,400})?(?:[eE][-+]?[0-9]{1,3})?")
# per tree: the arrays prediction uses -> (kind, length offset from num_leaves); all required
TREE_ARRAYS = {
    "split_feature": ("int", -1),
    "threshold": ("float", -1),
    "decision_type": ("int", -1),
    "left_child": ("int", -1),
    "right_child": ("int", -1),
    "leaf_value": ("float", 0),
}
_DIGIT = np.zeros(256, bool)
_DIGIT[np.frombuffer(b"0123456789", np.uint8)] = True
_FLOAT_BYTE = _DIGIT.copy()
_FLOAT_BYTE[np.frombuffer(b".-+eE ", np.uint8)] = True
_INT32 = 2**31 - 1
_KIND_WORD = {"int": "an integer", "float": "a finite number"}


def parse_int(value: str, what: str, lo: int, hi: int) -> int:
    if not _INT.fullmatch(value):
        raise BoosterTextError(f"{what}={value[:40]!r} is not an integer")
    v = int(value)
    if not lo <= v <= hi:
        raise BoosterTextError(f"{what}={v} is outside [{lo}, {hi}]")
    return v


def parse_float(value: str, what: str) -> float:
    if not _FLOAT.fullmatch(value):
        raise BoosterTextError(f"{what}={value[:40]!r} is not a finite number")
    v = float(value)
    if not math.isfinite(v):
        raise BoosterTextError(f"{what}={value[:40]!r} is not a finite number")
    return v


def column(trees: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Field ``key`` of every tree, checked and converted in one go.

    Returns:
        ``(values [sum of lengths], start offset of each tree's values [T + 1])``.

    Raises:
        BoosterTextError: a missing field, a length other than ``num_leaves`` implies, a value that is not an
            integer (fitting int32) or not a finite decimal number as LightGBM writes them.
    """
    kind, off = TREE_ARRAYS[key]
    counts = np.zeros(len(trees), np.int64)
    texts = []
    for i, t in enumerate(trees):
        n = t["num_leaves"] + off
        value = t["fields"].get(key)
        if value is None:
            if n > 0:
                raise BoosterTextError(f"tree {i}: {key} missing")
            continue
        have = value.count(" ") + 1 if value else 0
        if have != n:
            raise BoosterTextError(f"tree {i}: {key} has {have} values, num_leaves implies {n}")
        counts[i] = n
        if n:
            texts.append(value)
    joined = " ".join(texts)
    tokens = joined.split(" ") if joined else []
    starts = np.concatenate([[0], np.cumsum(counts)])
    values = _ints(tokens) if kind == "int" else _floats(joined, tokens)
    if values is None:
        regex = _INT if kind == "int" else _FLOAT
        j = next(j for j, x in enumerate(tokens) if not regex.fullmatch(x))
        t = int(np.searchsorted(starts, j, side="right") - 1)
        raise BoosterTextError(f"tree {t}: {key} holds {tokens[j][:40]!r}, not {_KIND_WORD[kind]}")
    bad = np.abs(values) > _INT32 if kind == "int" else ~np.isfinite(values)
    if bad.any():
        raise BoosterTextError(f"tree {tree_of(starts, bad)}: {key} holds a value out of range")
    return values, starts


def _ints(tokens: list[str]) -> np.ndarray | None:
    """int64 values of integer tokens (each checked once per distinct token), None if one is not."""
    if not all(_INT.fullmatch(x) for x in set(tokens)):
        return None
    return np.array(tokens, dtype=np.int64) if tokens else np.zeros(0, np.int64)


def _floats(joined: str, tokens: list[str]) -> np.ndarray | None:
    """float64 values of decimal tokens as :data:`_FLOAT`, None if one is not such a number.

    Fast (byte masks, then numpy's parser): only digits, ``.-+eE`` and spaces; a ``.`` between two digits;
    a ``+`` only after ``e``; at most 3 exponent digits. numpy refuses the remaining malformed forms
    (``1-2``, ``e5``, ``1e``, ``1.2.3``); what passes is a number C++'s ``strtod`` reads the same.
    """
    b = np.frombuffer(joined.encode("ascii"), np.uint8)
    if not _FLOAT_BYTE[b].all():
        return None
    pad = np.concatenate([[32], b, [32, 32, 32, 32, 32]])  # pad[k + 1] is b[k]
    dots = np.flatnonzero(b == ord(".")) + 1
    plus = np.flatnonzero(b == ord("+")) + 1
    exps = np.flatnonzero((b == ord("e")) | (b == ord("E"))) + 1
    exps = exps + np.isin(pad[exps + 1], (ord("+"), ord("-")))  # the exponent's sign
    long_exp = _DIGIT[pad[exps + 1]] & _DIGIT[pad[exps + 2]] & _DIGIT[pad[exps + 3]] & _DIGIT[pad[exps + 4]]
    if (
        not (_DIGIT[pad[dots - 1]] & _DIGIT[pad[dots + 1]]).all()
        or not np.isin(pad[plus - 1], (ord("e"), ord("E"))).all()
        or long_exp.any()
    ):
        return None
    try:
        return np.array(tokens, dtype=np.float64) if tokens else np.zeros(0, np.float64)
    except ValueError:
        return None


__all__ = ["TREE_ARRAYS", "column", "parse_float", "parse_int"]

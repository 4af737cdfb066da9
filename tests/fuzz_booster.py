"""Edits of LightGBM model text by field (header keys, a tree's arrays): the crafted boosters of issue 24 and
the fuzzer's LightGBM-text mutations."""

from __future__ import annotations

import re


def _tree_span(text: str, tree: int) -> tuple[int, int]:
    m = re.search(rf"^Tree={tree}\n", text, flags=re.M)
    if not m:
        raise KeyError(f"no Tree={tree}")
    end = re.compile(r"^(Tree=|end of trees)", flags=re.M).search(text, m.end())
    return m.end(), end.start() if end else len(text)


def tree_count(text: str) -> int:
    """Number of ``Tree=`` blocks."""
    return len(re.findall(r"^Tree=", text, flags=re.M))


def get_field(text: str, key: str, tree: int | None = None) -> str:
    """The value of ``key`` in the header (``tree`` None) or in tree ``tree``."""
    a, b = (0, text.find("\nTree=")) if tree is None else _tree_span(text, tree)
    m = re.compile(rf"^{re.escape(key)}=(.*)$", flags=re.M).search(text, a, b)
    if not m:
        raise KeyError(key)
    return m.group(1)


def set_field(text: str, key: str, value: str, tree: int | None = None) -> str:
    """``text`` with the value of ``key`` (header or tree ``tree``) replaced by ``value``."""
    a, b = (0, text.find("\nTree=")) if tree is None else _tree_span(text, tree)
    m = re.compile(rf"^{re.escape(key)}=(.*)$", flags=re.M).search(text, a, b)
    if not m:
        raise KeyError(key)
    return text[: m.start(1)] + value + text[m.end(1) :]


def set_token(text: str, key: str, index: int, token: str, tree: int | None = None) -> str:
    """Replace the ``index``-th space-separated value of ``key`` (modulo its length) by ``token``."""
    values = get_field(text, key, tree).split(" ")
    values[index % len(values)] = token
    return set_field(text, key, " ".join(values), tree)


def insert_line(text: str, line: str, tree: int | None = None, after: str = "num_leaves") -> str:
    """Insert ``line`` after the ``after=`` line of tree ``tree`` (or the header's ``version`` line)."""
    key = "version" if tree is None else after
    a, b = (0, text.find("\nTree=")) if tree is None else _tree_span(text, tree)
    m = re.compile(rf"^{re.escape(key)}=.*$", flags=re.M).search(text, a, b)
    return text[: m.end()] + "\n" + line + text[m.end() :]


def split_tree(text: str) -> int:
    """Index of the first tree with at least one split (num_leaves > 1)."""
    for t in range(tree_count(text)):
        if int(get_field(text, "num_leaves", t)) > 2:
            return t
    raise ValueError("no tree with two splits")


def fix_tree_sizes(text: str) -> str:
    """``text`` with ``tree_sizes`` recomputed from its tree blocks (what an attacker does after an edit)."""
    if not re.search(r"^tree_sizes=", text, flags=re.M):
        return text
    starts = [m.start() for m in re.finditer(r"^Tree=", text, flags=re.M)]
    end = re.search(r"^end of trees", text, flags=re.M)
    bounds = starts + [end.start() if end else len(text)]
    sizes = " ".join(str(b - a) for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    return set_field(text, "tree_sizes", sizes)

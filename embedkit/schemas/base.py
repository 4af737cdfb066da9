"""Reading metadata files within limits, and turning a schema violation into one line.

Every file kind has a pydantic model (:mod:`embedkit.schemas.files`); :func:`validate` checks a parsed
document against it and raises :class:`SchemaError` naming the file, the field and what is allowed. Before
any schema sees a document, :func:`read_json` / :func:`loads_toml` bound its size, its nesting depth and its
integers (a 200k-deep list is a RecursionError in the parser, a 4,300-digit integer a ValueError).
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from embedkit.errors import EmbedkitError
from embedkit.schemas import limits as L

M = TypeVar("M")


class SchemaError(EmbedkitError, ValueError):
    """A loaded file or value breaks its schema; the message names the file, the field and what is allowed."""


def check_tree(doc: Any, file: str, max_depth: int = L.MAX_DEPTH) -> Any:
    """Refuse nesting deeper than ``max_depth`` and integers beyond 64 bits anywhere in ``doc`` (iterative).

    Returns:
        ``doc`` unchanged.
    """
    stack = [(doc, 0, "")]
    while stack:
        v, depth, where = stack.pop()
        if isinstance(v, dict | list):
            if depth >= max_depth:
                raise SchemaError(f"{file}: nested deeper than {max_depth} levels at {where or 'the top'}")
            items = v.items() if isinstance(v, dict) else enumerate(v)
            stack.extend((x, depth + 1, f"{where}.{k}" if where else str(k)) for k, x in items)
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > L.MAX_INT:
            raise SchemaError(f"{file}: {where}: integer out of range (allowed: |x| <= 2^63 - 1)")
    return doc


def _read_text(path: Path, what: str) -> str:
    try:
        if path.stat().st_size > L.MAX_META_BYTES:
            raise SchemaError(f"{path}: {path.stat().st_size} bytes; a {what} has at most {L.MAX_META_BYTES}")
        return path.read_text()
    except UnicodeDecodeError as e:
        raise SchemaError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise SchemaError(f"{path}: cannot read ({e.strerror or e})") from None


def loads_json(text: str, file: str) -> Any:
    """Parse JSON text within the limits (depth, integer size); SchemaError when it is not valid JSON."""
    if len(text) > L.MAX_META_BYTES:
        raise SchemaError(f"{file}: {len(text)} characters; metadata has at most {L.MAX_META_BYTES}")
    try:
        doc = json.loads(text)
    except RecursionError:
        raise SchemaError(f"{file}: nested deeper than {L.MAX_DEPTH} levels") from None
    except ValueError as e:  # JSONDecodeError, and int() past sys.get_int_max_str_digits()
        raise SchemaError(f"{file}: corrupt, not valid JSON ({' '.join(str(e).split())[:120]})") from None
    return check_tree(doc, file)


def read_json(path: str | os.PathLike, what: str = "metadata file") -> Any:
    """Read and parse a JSON file within the limits (size, depth, integers)."""
    p = Path(path)
    return loads_json(_read_text(p, what), str(p))


def loads_toml(text: str, file: str) -> dict[str, Any]:
    """Parse TOML within the limits; dates and times are refused (no config field holds one)."""
    import datetime as dt

    try:
        doc = tomllib.loads(text)
    except RecursionError:
        raise SchemaError(f"{file}: nested deeper than {L.MAX_DEPTH} levels") from None
    except (tomllib.TOMLDecodeError, ValueError) as e:
        raise SchemaError(f"{file}: not valid TOML: {' '.join(str(e).split())[:120]}") from None
    check_tree(doc, file)
    stack = [(doc, "")]
    while stack:
        v, where = stack.pop()
        if isinstance(v, dict | list):
            items = v.items() if isinstance(v, dict) else enumerate(v)
            stack.extend((x, f"{where}.{k}" if where else str(k)) for k, x in items)
        elif isinstance(v, dt.date | dt.time):
            raise SchemaError(f"{file}: {where}: a date/time value; allowed: numbers, text, booleans, lists")
    return doc


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML config file within the limits (size, depth, integers, no dates)."""
    p = Path(path)
    return loads_toml(_read_text(p, "config file"), str(p))


def finite(x: Any) -> bool:
    """Whether ``x`` is a real number (not bool) that is finite."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _strip(tp: Any) -> tuple[Any, list]:
    """``(base type, constraint objects)`` of an annotation, through ``Annotated`` and ``X | None``."""
    import types
    import typing

    meta: list = []
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp, *more = typing.get_args(tp)
            for m in more:
                meta += list(getattr(m, "metadata", None) or [m])
        elif origin in (typing.Union, types.UnionType):
            inner = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(inner) != 1:
                return tp, meta
            tp = inner[0]
        else:
            return tp, meta


def _describe(tp: Any, extra: list | None = None) -> str:
    import typing

    from pydantic import BaseModel

    base, meta = _strip(tp)
    meta = [*(extra or []), *meta]
    origin = typing.get_origin(base)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(base))
    if origin is list:
        return f"a list of {_describe(typing.get_args(base)[0])}"
    if origin is dict or base is dict:
        return "an object"
    if isinstance(base, type) and issubclass(base, BaseModel):
        return "an object"
    sym = {
        "ge": ">=",
        "gt": ">",
        "le": "<=",
        "lt": "<",
        "min_length": "length >=",
        "max_length": "length <=",
        "pattern": "matching",
    }
    bounds = [f"{s} {getattr(m, k)}" for m in meta for k, s in sym.items() if getattr(m, k, None) is not None]
    name = {"int": "an integer", "float": "a finite number", "str": "text", "bool": "true/false"}.get(
        getattr(base, "__name__", ""), str(base)
    )
    return " ".join([name, *bounds[:1], *(f"and {b}" for b in bounds[1:])])


def _allowed(model: Any, loc: tuple) -> str:
    """What the field at ``loc`` accepts, read from its annotation (``an integer >= 1 and <= 1024``)."""
    import typing

    from pydantic import BaseModel

    tp: Any = model
    extra: list = []  # a model field's constraints: pydantic moves them from the annotation to the field
    for part in loc:
        base, _ = _strip(tp)
        extra = []
        if isinstance(base, type) and issubclass(base, BaseModel):
            if part not in base.model_fields:
                return ""
            tp, extra = base.model_fields[part].annotation, list(base.model_fields[part].metadata)
        elif typing.get_origin(base) is list and isinstance(part, int):
            tp = typing.get_args(base)[0]
        elif typing.get_origin(base) is dict:
            tp = typing.get_args(base)[1]
        else:
            return ""
    return "" if tp is model else _describe(tp, extra)


def validate(model: type[M], doc: Any, file: str | os.PathLike) -> M:
    """``model.model_validate(doc)``, a violation raised as one line (file, field, value, what is allowed).

    Raises:
        SchemaError: the first violation (and how many more there are).
    """
    from pydantic import ValidationError

    try:
        return model.model_validate(doc)  # type: ignore[attr-defined]
    except ValidationError as e:
        errs = e.errors(include_url=False)
        first = errs[0]
        loc = tuple(first["loc"])
        field = ".".join(str(x) for x in loc) or "(the whole document)"
        value = repr(first.get("input"))
        value = value if len(value) <= 40 else value[:37] + "..."
        allowed = _allowed(model, loc)
        more = f" (and {len(errs) - 1} more problem(s))" if len(errs) > 1 else ""
        hint = f"; allowed: {allowed}" if allowed else ""
        if not loc and first["type"] == "value_error":  # a cross-field check: its message names the fields
            raise SchemaError(f"{file}: {first['msg'].removeprefix('Value error, ')}{more}") from None
        raise SchemaError(f"{file}: {field} = {value}: {first['msg']}{hint}{more}") from None

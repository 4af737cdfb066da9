"""Reading and writing the stage configs: TOML ↔ dataclass, with types and bounds checked.

The dataclasses themselves (one per stage) are in :mod:`embedkit.config`, which re-exports every name
here; :func:`opt` makes their fields, :func:`load` builds one from its defaults, a TOML file and the
flags, :func:`save` writes one back (the files in ``configs/``).
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, TypeVar

from embedkit.errors import EmbedkitError
from embedkit.files import replace_atomically

T = TypeVar("T")

#: Folder of the shipped TOML configs (next to the package in a checkout; ``$EMBEDKIT_CONFIG_DIR`` wins).
CONFIG_DIR = Path(os.environ.get("EMBEDKIT_CONFIG_DIR") or Path(__file__).resolve().parent.parent / "configs")


class ConfigError(EmbedkitError, ValueError):
    """A config file or value is invalid; the message names the key."""


def opt(default: Any, help: str, **kw) -> Any:  # noqa: A002 - mirrors argparse
    """A dataclass field with help text (and a copied default for mutable values)."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def cache_dir() -> Path:
    """Cache folder for derived files: ``$EMBEDKIT_CACHE`` or ``~/.cache/embedkit``."""
    return Path(os.environ.get("EMBEDKIT_CACHE") or Path.home() / ".cache" / "embedkit")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert a TOML value against a field annotation."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if value is None:
        return None
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        return [_coerce(v, args[0], key) for v in value] if args else list(value)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a table, got {value!r}")
        return dict(value)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is float:
        raise ConfigError(f"config key {key!r}: expected a number, got {value!r}")
    if tp in (int, str, bool) and not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"config key {key!r}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], values: dict[str, Any], *, source: str = "config") -> T:
    """Build dataclass ``cls`` from a dict; unknown keys and wrong types are one clear error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    from embedkit.schemas import SchemaError
    from embedkit.schemas.config import check_config

    coerced = {k: _coerce(v, hints[k], f"{source}:{k}") for k, v in values.items()}
    try:
        check_config(coerced, source)
    except SchemaError as e:
        raise ConfigError(str(e)) from None
    return cls(**coerced)


def load(cls: type[T], path: str | os.PathLike | None = None, **overrides: Any) -> T:
    """Dataclass defaults, then a TOML file, then ``overrides`` (``None`` values are ignored).

    Args:
        cls: the config dataclass.
        path: TOML file; ``None`` means no file.
        **overrides: field values that win over the file (e.g. parsed CLI flags).
    """
    from embedkit.schemas import SchemaError, read_toml
    from embedkit.schemas.config import check_config

    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            values = read_toml(p)  # bounded: size, depth, integers; no dates
        except SchemaError as e:
            raise ConfigError(str(e)) from None
    try:  # the flags first, so that a bad value is named as the flag's
        check_config({k: v for k, v in overrides.items() if v is not None}, "arguments", flags=True)
    except SchemaError as e:
        raise ConfigError(str(e)) from None
    for k, v in overrides.items():
        if v is None:
            continue
        values[k] = {**values[k], **v} if isinstance(v, dict) and isinstance(values.get(k), dict) else v
    return from_dict(cls, values, source=str(path or "arguments"))


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (lists and dicts copied)."""
    return dataclasses.asdict(cfg)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigError(f"cannot write {v!r} to TOML")


def dumps_toml(values: dict[str, Any]) -> str:
    """Write a flat dict (plus one level of tables) as TOML; ``None`` values are left out."""
    lines, tables = [], []
    for k, v in values.items():
        if v is None:
            continue
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def save(cfg: Any, path: str | os.PathLike) -> None:
    """Save a config dataclass as TOML (the inverse of :func:`load`), replacing ``path`` atomically."""
    text = dumps_toml(to_dict(cfg))
    replace_atomically(path, lambda tmp: tmp.write_text(text))


__all__ = [
    "CONFIG_DIR",
    "ConfigError",
    "cache_dir",
    "dumps_toml",
    "from_dict",
    "load",
    "opt",
    "save",
    "to_dict",
]

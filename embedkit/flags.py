"""Config dataclasses ↔ command-line flags: one flag per field (``max_windows`` ↔ ``--max-windows``).

Values come from the dataclass defaults, then ``configs/<command>.toml`` (or ``--config FILE``), then the
flags. Used by the CLI, ``embedkit evaluate`` (``--set KEY=VALUE``) and the Kaggle kit's pre-flight.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from embedkit import config as C


def flag(name: str) -> str:
    """Config field name → command-line flag (``max_windows`` → ``--max-windows``)."""
    return "--" + name.replace("_", "-")


def base_type(tp: Any) -> tuple[Any, bool]:
    """(inner type, is_list) of an annotation such as ``int | None`` or ``list[float]``."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is list:
        return (args[0] if args else str), True
    if args and typing.get_origin(tp) is not list:
        inner = args[0]
        if typing.get_origin(inner) is list:
            return typing.get_args(inner)[0], True
        return inner, False
    return tp, False


def parse_key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` → (key, value); a value that is a Python literal (``0.5``, ``None``) is read as one."""
    import ast

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def add_config_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add ``--config`` and one flag per field of dataclass ``cls`` (all defaulting to ``None``)."""
    parser.add_argument(
        "--config", metavar="TOML", help="config file (default: configs/<command>.toml if present)"
    )
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        inner, is_list = base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_ = f.metadata.get("help", "")
        if "default" not in help_:
            help_ += f" (default: {default})"
        if inner is dict:
            parser.add_argument(
                flag(f.name), nargs="+", metavar="KEY=VALUE", type=parse_key_value, default=None, help=help_
            )
        elif inner is bool:
            parser.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif f.metadata.get("choices"):
            parser.add_argument(flag(f.name), choices=f.metadata["choices"], default=None, help=help_)
        else:
            parser.add_argument(
                flag(f.name),
                type=inner,
                nargs="+" if is_list else None,
                action="extend" if f.metadata.get("repeat") else None,  # --flag a --flag b: [a, b]
                default=None,
                help=help_,
                metavar=f.name.upper(),
            )


def config_from_args(cls: type, args: argparse.Namespace, command: str):
    """Dataclass defaults < TOML file < given flags."""
    path = args.config
    if path is None:
        shipped = C.CONFIG_DIR / f"{command}.toml"
        path = shipped if shipped.is_file() else None
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    given = {
        k: dict(v) if isinstance(v, list) and v and isinstance(v[0], tuple) else v for k, v in given.items()
    }
    return C.load(cls, path, **given)


def parser_for(cls: type, prog: str = "embedkit") -> argparse.ArgumentParser:
    """A parser with exactly the flags of config dataclass ``cls`` (and ``--config``)."""
    parser = argparse.ArgumentParser(prog=prog)
    add_config_args(parser, cls)
    return parser


__all__ = ["add_config_args", "base_type", "config_from_args", "flag", "parse_key_value", "parser_for"]

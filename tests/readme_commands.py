"""The documented commands: every fenced ```bash block of README.md and every ``--help`` example.

Used by ``tests/test_readme.py`` (the substitution table and the runs live there). A documented command is a
:class:`Doc`: its text as written (continuation lines joined, comments dropped), where it is documented, and
whether its block is a script (``#!/bin/bash``: the block runs as one). :func:`embedkit_argv` maps it to the
``embedkit`` arguments it stands for; :func:`parse_check` parses those with the real parser, abbreviations
off, so a renamed or removed flag fails.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {"extract.py": "extract", "fit.py": "fit", "infer.py": "infer"}


@dataclass(frozen=True)
class Doc:
    """One documented command."""

    text: str  # as written, on one line
    where: str  # "README.md:LINE" or "embedkit CMD --help"
    script: str | None = None  # the whole block when it is a script (shebang), else None

    @property
    def tokens(self) -> list[str]:
        return shlex.split(self.text, comments=True)


def _commands(lines: list[str]) -> list[tuple[int, str]]:
    """(index of the first line, command) for a block's lines: ``\\`` continuations joined, comment-only
    lines dropped, trailing comments kept (shlex drops them)."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for i, line in enumerate(lines):
        if not buf:
            start = i
        cont = line.rstrip().endswith("\\")
        buf += line.rstrip().removesuffix("\\") + " "
        if not cont:
            if shlex.split(buf, comments=True):
                out.append((start, " ".join(buf.split())))
            buf = ""
    return out


def readme_commands(readme: Path = ROOT / "README.md") -> list[Doc]:
    """Every command of every fenced ```bash block of the README, in order."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    docs: list[Doc] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            j = next(k for k in range(i + 1, len(lines)) if lines[k].strip() == "```")
            block = lines[i + 1 : j]
            script = "\n".join(block) + "\n" if block and block[0].startswith("#!") else None
            for k, text in _commands(block):
                docs.append(Doc(text, f"README.md:{i + 2 + k}", script))
            i = j
        i += 1
    return docs


def help_examples() -> list[Doc]:
    """Every example of every subcommand's ``--help`` epilog (``embedkit.cli.COMMANDS``)."""
    from embedkit.cli import COMMANDS

    return [Doc(ex, f"embedkit {name} --help") for name, spec in COMMANDS.items() for ex in spec[3]]


def embedkit_argv(tokens: list[str]) -> list[str] | None:
    """The ``embedkit`` arguments a command stands for, or None when it is not an embedkit command."""
    if tokens[:1] == ["embedkit"]:
        return tokens[1:]
    if tokens[:1] == ["python"] and len(tokens) > 1:
        if tokens[1] in SCRIPTS:
            return [SCRIPTS[tokens[1]], *tokens[2:]]
        if tokens[1:3] == ["-m", "embedkit"]:
            return tokens[3:]
        if tokens[1:3] == ["-m", "embedkit.evaluate"]:
            return ["evaluate", *tokens[3:]]
    return None


def strict_parser() -> argparse.ArgumentParser:
    """``embedkit.cli.build_parser()`` with abbreviations off everywhere (``--save-logit`` must not pass
    for a flag renamed ``--save-logits-x``)."""
    from embedkit.cli import build_parser

    parser = build_parser()
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.allow_abbrev = False
    return parser


def parse_check(argv: list[str], parser: argparse.ArgumentParser | None = None) -> str | None:
    """None when ``argv`` parses, else argparse's error message."""
    parser = parser or strict_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit as e:
        return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {e.code}"
    return None


def make_targets(makefile: Path = ROOT / "Makefile") -> tuple[set[str], set[str]]:
    """(targets, variables) the Makefile defines."""
    text = makefile.read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.M))
    variables = set(re.findall(r"^([A-Z_]+)\s*[?:]?=", text, flags=re.M))
    return targets, variables

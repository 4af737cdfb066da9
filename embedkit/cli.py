"""The ``embedkit`` command; ``extract.py``, ``fit.py`` and ``infer.py`` are shortcuts to its subcommands.

Stage flags are generated from the stage's config dataclass (:mod:`embedkit.config`), so a flag exists
exactly when a config field does, with the same name (``max_windows`` ↔ ``--max-windows``). Values come
from the dataclass defaults, then ``configs/<stage>.toml`` (or ``--config FILE``), then the flags. The
subcommands are listed in :mod:`embedkit.cli_table`; ``validate``, ``backbones`` and ``heads`` run from
:mod:`embedkit.cli_builtin`.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable

from embedkit import config as C
from embedkit.cli_table import COMMANDS
from embedkit.flags import add_config_args, config_from_args


def config_class(name: str) -> type:
    """A config dataclass by its name in :mod:`embedkit.config`, or ``"module:Class"`` elsewhere."""
    return _resolve(name) if ":" in name else getattr(C, name)


def _resolve(target: str) -> Callable:
    import importlib

    mod, fn = target.split(":")
    return getattr(importlib.import_module(mod), fn)


def build_parser(prog: str = "embedkit") -> argparse.ArgumentParser:
    """The full parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="embedkit: frozen audio embeddings + light heads for species identification.",
        epilog="examples:\n" + "\n".join(f"  {ex[0]}" for *_, ex in COMMANDS.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--verbose", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"embedkit {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (cfg_name, _, help_, examples) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_,
            description=help_,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        )
        p.add_argument("--verbose", action="store_true", help="show tracebacks for errors")
        if cfg_name:
            add_config_args(p, config_class(cfg_name))
        else:
            _extra_args(name, p)
    return parser


def _version() -> str:
    from embedkit import __version__

    return __version__


def _extra_args(name: str, p: argparse.ArgumentParser) -> None:
    """Flags of the subcommands that have no config dataclass."""
    if name == "evaluate":
        from embedkit.evaluate.run import add_args

        add_args(p)
    elif name == "score":
        from embedkit.evaluate.score import add_args as score_args

        score_args(p)
    elif name == "compose":
        from embedkit.evaluate.compose_cmd import add_args as compose_args

        compose_args(p)
    elif name == "demo":
        p.add_argument(
            "--out", default="demo_run", help="folder for the demo data, embeddings, models, submission"
        )
        p.add_argument("--seed", type=int, default=0, help="seed of the synthetic dataset")
        p.add_argument("--head", default="lgbm", help="head to fit (default: lgbm)")
    elif name == "upgrade-model":
        p.add_argument("models", nargs="+", help="model folder(s) to rewrite in place")
        p.add_argument(
            "--trust-pickle", action="store_true", help="required: the old heads are unpickled (runs code)"
        )
    elif name == "models":
        p.add_argument(
            "words", nargs="*", metavar="ROOT | rollback NAME",
            help="models folder or model to list (default: models), or `rollback NAME` (a folder or a name)",
        )  # fmt: skip
        p.add_argument("--to", help="with rollback: the kept version to restore (default: the newest)")
    elif name == "export":
        from embedkit.predict.export import add_args as export_args

        export_args(p)
    elif name == "merge-models":
        from embedkit.predict.merge import add_args as merge_args

        merge_args(p)
    elif name == "validate":
        p.add_argument("submission", help="submission CSV to check")
        p.add_argument("--sample", required=True, help="sample_submission.csv (column order)")
        p.add_argument("--soundscapes", help="folder of soundscapes: also check one row per window of each")
    elif name == "report":
        p.add_argument(
            "--models", nargs="+", required=True, help="model folder(s), or models root(s) holding them"
        )
        p.add_argument("--out", default="report", help="folder for index.html and the PNGs (default: report)")
        p.add_argument("--data", help="BirdCLEF data root (default: the one recorded in model.json)")
        p.add_argument(
            "--submission",
            help="submission CSV for the soundscape view (default: submission.csv beside the models root)",
        )
        p.add_argument(
            "--soundscape", help="audio file or stem to show (default: the test file with most species)"
        )
        p.add_argument("--truth", help="per-window truth CSV (default: DATA/test_truth.csv when present)")
    elif name == "kaggle-kit":
        p.add_argument("--models", nargs="+", required=True, help="model folder(s) to ship")
        p.add_argument("--out", default="kaggle_kit", help="kit folder to create (default: kaggle_kit)")
        p.add_argument("--python-version", default="3.11", help="Python of Kaggle's image (default: 3.11)")
        p.add_argument(
            "--platform",
            nargs="+",
            default=["manylinux_2_28_x86_64"],
            help="pip platform tag(s); manylinux_2_X also takes older manylinux wheels "
            "(default: manylinux_2_28_x86_64, which runs on Kaggle's Ubuntu 22.04)",
        )
        p.add_argument(
            "--packages", nargs="+", help="packages to ship as wheels (default: those Kaggle lacks)"
        )
        p.add_argument("--find-links", nargs="+", help="local wheel folder(s) to download from first")


def main(argv: list[str] | None = None, prog: str = "embedkit") -> int:
    """Run a subcommand; the exit status is 0 ok, 1 failed check, 2 usage/input error, 130 interrupted.

    Output piped into a reader that stops early (``embedkit heads | head -1``) ends quietly with 141, the
    status of a process ended by SIGPIPE, without a traceback.
    """
    from embedkit.errors import user_errors

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    cfg_name, target, _, _ = COMMANDS[args.command]
    try:
        fn = _resolve(target)
        if cfg_name:
            cfg = config_from_args(config_class(cfg_name), args, args.command)
            return int(fn(cfg) or 0)
        return int(fn(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader of stdout went away: nothing more to say, and no one to say it to
        _silence_stdout()
        return 141
    except user_errors() as e:
        if args.verbose:
            traceback.print_exc()
        print(f"{prog} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk wherever no writer words it: one line, the path
        from embedkit.store.space import full_disk_message, is_disk_full

        if not is_disk_full(e) or args.verbose:
            raise
        print(f"{prog} {args.command}: error: {full_disk_message(e.filename or '?', None)}", file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's final flush does not raise again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def script(command: str) -> None:
    """Entry for the top-level shortcut scripts (``python extract.py ...``)."""
    sys.exit(main([command, *sys.argv[1:]]))

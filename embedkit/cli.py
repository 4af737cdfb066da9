"""The ``embedkit`` command; ``extract.py``, ``fit.py`` and ``infer.py`` are shortcuts to its subcommands.

Stage flags are generated from the stage's config dataclass (:mod:`embedkit.config`), so a flag exists
exactly when a config field does, with the same name (``max_windows`` ↔ ``--max-windows``). Values come
from the dataclass defaults, then ``configs/<stage>.toml`` (or ``--config FILE``), then the flags.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable

from embedkit import config as C
from embedkit.flags import add_config_args, config_from_args

#: subcommand → (config dataclass: name in embedkit.config, "module:Class" or None; "module:function", help,
#: examples)
COMMANDS: dict[str, tuple[str | None, str, str, list[str]]] = {
    "extract": (
        "ExtractConfig",
        "embedkit.extract:main",
        "embed every 5 s window of a split into parquet shards",
        [
            "python extract.py --backbone birdnet --data /kaggle/input/birdclef-2025 --split train_audio",
            "python extract.py --backbone panns --weights Cnn14_mAP=0.431.pth --split train_soundscapes",
        ],
    ),
    "fit": (
        "FitConfig",
        "embedkit.train.run:main",
        "fit a head on stored embeddings with grouped cross-validation, then save it",
        [
            "python fit.py --backbone birdnet --data /kaggle/input/birdclef-2025   # → models/birdnet-proto",
            "python fit.py --head logreg --backbone panns --folds 5 --params C=0.5",
        ],
    ),
    "infer": (
        "InferConfig",
        "embedkit.predict.infer:main",
        "embed test soundscapes, apply saved head(s), write submission.csv",
        [
            "python infer.py --data /kaggle/input/birdclef-2025 --models models/birdnet-proto",
            "python infer.py --models models/birdnet-proto models/birdnet-mil --weights 0.6 0.4 --tta 0",
        ],
    ),
    "analyze": (
        "AnalyzeConfig",
        "embedkit.predict.analyze:main",
        "detect with saved model(s) in recordings of any length: a table per file (Raven, Audacity, ...)",
        [
            "embedkit analyze --models models/birdnet-proto "
            "--audio /kaggle/input/birdclef-2025/train_soundscapes --recursive --out out/detections",
            "embedkit analyze --models models/birdnet-proto "
            "--audio /kaggle/input/birdclef-2025/test_soundscapes --format csv --min-score 0.3 --hop-s 2.5 "
            "--out out/detections-csv",
        ],
    ),
    "index": (
        "embedkit.search.config:IndexConfig",
        "embedkit.search.commands:index_main",
        "build (or update with new shards) a nearest-neighbour index over a shard dataset",
        [
            "embedkit index --embeddings embeddings/birdnet/train_audio",
            "embedkit index --embeddings embeddings/birdnet/train_soundscapes --rebuild",
        ],
    ),
    "search": (
        "embedkit.search.config:SearchConfig",
        "embedkit.search.commands:search_main",
        "find the windows most similar to a clip or a stored window; hits.csv, snippets, an HTML page",
        [
            "embedkit search --index embeddings/birdnet/train_audio --query call.wav:1.5-4 --k 50 --html",
            "embedkit search --index embeddings/birdnet/train_audio --row-id XC46631_5 --exact",
        ],
    ),
    "label": (
        "embedkit.search.config:LabelConfig",
        "embedkit.search.label:main",
        "mark search hits y / n / skip in the terminal (or check a hits table labelled in an editor)",
        [
            "embedkit label --hits hits.csv --species banana --out labelled.csv",
            "python fit.py --data DATA --extra-labels labelled.csv",
        ],
    ),
    "evaluate": (
        None,
        "embedkit.evaluate.run:cmd_evaluate",
        "score a fit config on real audio: grouped-CV windows + composed soundscapes, vs BirdNET zero-shot",
        [
            "python -m embedkit.evaluate --data ../shared/data/xc-pr-birds --embeddings embeddings --table "
            "--backgrounds ../shared/data/backgrounds --seed 0 1 --soundscapes 12",
            "embedkit evaluate --data DATA --embeddings embeddings --soundscapes 12 "
            "--set head=logreg zero_shot=off",
        ],
    ),
    "score": (
        None,
        "embedkit.evaluate.score:cmd_score",
        "score a submission against your own labelled soundscapes: competition metric + per-class table",
        [
            "embedkit score submission.csv --truth test_truth.csv",
            "embedkit score submission.csv --truth train_soundscapes_labels.csv --labels labels.txt",
        ],
    ),
    "compose": (
        None,
        "embedkit.evaluate.compose_cmd:cmd_compose",
        "compose labelled soundscapes from held-out training calls over field recordings (to tune on)",
        [
            "embedkit compose --data DATA --backgrounds DATA/train_soundscapes --out tune --n 20 --seed 0",
            "python fit.py --data DATA --tune-on tune --tune-truth tune/truth.csv",
        ],
    ),
    "demo": (
        None,
        "embedkit.demo.run:cmd_demo",
        "make the synthetic demo dataset and run extract -> fit -> infer -> score on it",
        ["embedkit demo --out demo_run", "make demo"],
    ),
    "report": (
        None,
        "embedkit.report.page:cmd_report",
        "write an HTML page with figures: training data, CV scores per class and per model, a soundscape",
        [
            "embedkit report --models models --out report",
            "embedkit report --models demo_run/models --soundscape H02_20230420_074000 --out demo_run/report",
        ],
    ),
    "kaggle-kit": (
        None,
        "embedkit.kaggle_kit:cmd_kaggle_kit",
        "build a folder to upload as a Kaggle dataset: wheels, models, kaggle_infer.py (offline install)",
        [
            "embedkit kaggle-kit --models models/birdnet-proto --out kaggle_kit",
            "make kaggle-kit KIT_MODELS='models/birdnet-proto models/birdnet-mil' KAGGLE_PYTHON=3.12",
        ],
    ),
    "upgrade-model": (
        None,
        "embedkit.predict.upgrade:cmd_upgrade_model",
        "rewrite model folders of embedkit 0.1 (pickled heads) as data: JSON, safetensors, hashes",
        [
            "embedkit upgrade-model models/birdnet-mil --trust-pickle",
            "embedkit upgrade-model models/birdnet-mil models/panns-logreg --trust-pickle",
        ],
    ),
    "models": (
        None,
        "embedkit.predict.versions:cmd_models",
        "list saved models and their kept earlier versions; `rollback NAME` restores the previous version",
        ["embedkit models", "embedkit models rollback birdnet-proto"],
    ),
    "merge-models": (
        None,
        "embedkit.predict.merge:cmd_merge",
        "join models of one backbone: union of labels, a weighted mean where several know a label",
        [
            "embedkit merge-models models/birdnet-proto models/birdnet-mil --out models/merged",
            "embedkit merge-models models/birdnet-proto models/birdnet-mil --weights 3 1 --out models/m2",
        ],
    ),
    "export": (
        None,
        "embedkit.predict.export:cmd_export",
        "write a saved model as one ONNX graph (embeddings [+ logits] -> probabilities) + its label file",
        [
            "embedkit export models/birdnet-proto --format onnx",
            "embedkit export models/merged --out models/merged-head.onnx",
        ],
    ),
    "validate": (
        None,
        "embedkit.cli:cmd_validate",
        "check a submission: header and order, row ids, values finite in [0, 1]",
        [
            "python -m embedkit validate submission.csv --sample sample_submission.csv",
            "python -m embedkit validate submission.csv --sample sample_submission.csv --soundscapes test/",
        ],
    ),
    "backbones": (
        None,
        "embedkit.cli:cmd_backbones",
        "list registered backbones: sample rate, dimension, where weights are looked for",
        ["embedkit backbones", "python -m embedkit backbones"],
    ),
    "heads": (
        None,
        "embedkit.cli:cmd_heads",
        "list registered heads and their default parameters",
        ["embedkit heads", "python fit.py --head mil --params hidden=512 dropout=0.3"],
    ),
}


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
    """Run a subcommand; the exit status is 0 ok, 1 failed check, 2 usage/input error, 130 interrupted."""
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


def script(command: str) -> None:
    """Entry for the top-level shortcut scripts (``python extract.py ...``)."""
    sys.exit(main([command, *sys.argv[1:]]))


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate a submission; prints each problem, exit 1 when there are any."""
    from embedkit.birdclef import expected_row_ids, load_labels_from_sample, validate_submission

    labels = load_labels_from_sample(args.sample)
    ids = expected_row_ids(args.soundscapes) if args.soundscapes else None
    problems = validate_submission(args.submission, labels, ids)
    for p in problems:
        print(f"INVALID {args.submission}: {p}", file=sys.stderr)
    if not problems:
        print(f"valid: {args.submission}")
    return 1 if problems else 0


def cmd_backbones(args: argparse.Namespace) -> int:
    """Print registered backbones: rate, dim, where weights come from."""
    from embedkit.backbones import available, backbone_class

    for name in available():
        cls = backbone_class(name)
        rate = getattr(cls, "sample_rate", "model")
        dim = getattr(cls, "dim", None)
        dim = dim if isinstance(dim, int) else "model"
        print(f"{name:10s} {rate!s:>6} Hz  {dim!s:>5}-D  weights: {cls.weights_help()}")
    return 0


def cmd_heads(args: argparse.Namespace) -> int:
    """Print registered heads with their default parameters."""
    from embedkit.heads import available, head_class

    for name in available():
        params = head_class(name)().get_params()
        print(f"{name:8s} " + " ".join(f"{k}={v!r}" for k, v in sorted(params.items())))
    return 0

"""The subcommands the CLI runs itself: ``embedkit validate``, ``embedkit backbones``, ``embedkit heads``.

Their flags are in ``_extra_args`` of :mod:`embedkit.cli`; their rows in :data:`embedkit.cli_table.COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys


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
    """Print registered backbones: rate, dim (of a window as ``extract.py``'s defaults make it), weights."""
    from embedkit.backbones import available, backbone_class
    from embedkit.config import ExtractConfig
    from embedkit.extract.options import backbone_kwargs

    for name in available():
        cls = backbone_class(name)
        rate = getattr(cls, "sample_rate", "model")
        dim = getattr(cls, "dim", None)
        dim = dim if isinstance(dim, int) else "model"
        if hasattr(cls, "window_dim"):  # D depends on options: the one extract.py's defaults give
            dim = cls.window_dim(**backbone_kwargs(ExtractConfig(backbone=name)))
        print(f"{name:10s} {rate!s:>6} Hz  {dim!s:>5}-D  weights: {cls.weights_help()}")
    return 0


def cmd_heads(args: argparse.Namespace) -> int:
    """Print registered heads with their default parameters."""
    from embedkit.heads import available, head_class

    for name in available():
        params = head_class(name)().get_params()
        print(f"{name:8s} " + " ".join(f"{k}={v!r}" for k, v in sorted(params.items())))
    return 0

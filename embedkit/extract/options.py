"""The backbone options of ``extract.py``: which constructor arguments a backbone gets, which it ignores.

An extract config offers every backbone option (``--pool``, ``--time-pool``, ``--weights``, ...); each
backbone takes those its constructor accepts (:func:`backbone_kwargs`). An option set away from its default
that the chosen backbone does not take is named on stderr (:func:`say_ignored`), never dropped silently.
"""

from __future__ import annotations

import sys
from typing import Any

from embedkit.config import ExtractConfig


def backbone_kwargs(cfg: ExtractConfig) -> dict[str, Any]:
    """Constructor arguments of ``cfg.backbone`` from an extract config (those its class accepts)."""
    from embedkit.backbones.build import accepted_kwargs

    return accepted_kwargs(cfg.backbone, _offered(cfg))


#: the options that decide what a window's vector is (not how fast it is made): ``embedkit.embed`` takes
#: these from ``extract.py``'s defaults, so its vectors match the shards'
WINDOW_OPTIONS = ("chunk_offsets", "pool", "logit_pool", "time_pool")


def window_defaults(backbone: str, window_s: float) -> dict[str, Any]:
    """Constructor arguments of ``backbone`` that :data:`WINDOW_OPTIONS` and ``window_s`` give by default."""
    from embedkit.backbones.build import accepted_kwargs

    d = _offered(ExtractConfig(backbone=backbone))
    return accepted_kwargs(backbone, {"window_s": window_s, **{k: d[k] for k in WINDOW_OPTIONS}})


def ignored_options(cfg: ExtractConfig) -> list[str]:
    """The backbone options set away from their defaults that ``cfg.backbone`` does not take, as flags.

    E.g. ``["--time-pool max"]`` for ``--backbone panns --time-pool max``: said on stderr by the run, so a
    setting is never dropped silently.
    """
    taken = backbone_kwargs(cfg)
    mine, default = _offered(cfg), _offered(ExtractConfig(backbone=cfg.backbone))
    also_used = ("window_s", "batch_size")  # the windowing and the batching use them whatever the backbone
    return [
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, tuple) else v}"
        for k, v in mine.items()
        if k not in taken and k not in also_used and v is not None and v != default[k]
    ]


def say_ignored(cfg: ExtractConfig) -> None:
    """One stderr line naming the options of :func:`ignored_options`, if any."""
    ignored = ignored_options(cfg)
    if ignored:
        print(f"{', '.join(ignored)}: ignored, the backbone {cfg.backbone!r} does not take "
              f"{'it' if len(ignored) == 1 else 'them'}", file=sys.stderr)  # fmt: skip


def _offered(cfg: ExtractConfig) -> dict[str, Any]:
    """Every backbone option of an extract config, by constructor argument name."""
    return {
        "weights": cfg.weights,
        "layer": cfg.layer,
        "model_config": cfg.model_config,
        "model": cfg.model or None,
        "device": cfg.device,
        "bf16": cfg.bf16,
        "threads": cfg.threads,
        "batch_size": cfg.batch_size,
        "chunk_offsets": tuple(cfg.chunk_offsets),
        "pool": cfg.pool,
        "logit_pool": cfg.logit_pool,
        "time_pool": cfg.time_pool,
        "window_s": cfg.window_s,
    }


__all__ = ["WINDOW_OPTIONS", "backbone_kwargs", "ignored_options", "say_ignored", "window_defaults"]

"""Extraction room: audio → 5 s windows → backbone → parquet shards (``extract.py``).

* :mod:`.run` — :func:`run_extract`: streaming decode and batched backbone calls, resume, interrupts, locks.
* :mod:`.parts` — ``--part i/N`` and ``--part auto`` (Slurm job arrays, Kubernetes Indexed Jobs).
* :mod:`.ray` — ``--engine ray``: the same shards from a Ray Data pipeline (``pip install 'embedkit[ray]'``).
"""

from __future__ import annotations

from embedkit.config import ExtractConfig
from embedkit.extract.options import backbone_kwargs
from embedkit.extract.parts import in_part, parse_part, part_from_env
from embedkit.extract.run import (
    SPLITS,
    ExtractSummary,
    provenance,
    resolve_inputs,
    run_extract,
)


def main(cfg: ExtractConfig) -> int:
    """CLI body of ``extract``: run with the chosen engine; exit status 0, or 130 after an interruption."""
    try:
        if cfg.engine == "ray":
            from embedkit.extract.ray import run_extract_ray

            run_extract_ray(cfg)
        else:
            run_extract(cfg)
    except KeyboardInterrupt:
        return 130
    return 0


__all__ = [
    "SPLITS",
    "ExtractSummary",
    "backbone_kwargs",
    "in_part",
    "main",
    "parse_part",
    "part_from_env",
    "provenance",
    "resolve_inputs",
    "run_extract",
]

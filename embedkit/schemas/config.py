"""Values of the stage configs (TOML files and flags, :mod:`embedkit.config`): finite, and within bounds.

Every float anywhere in a config (lists and tables included: ``--weights``, ``--tta``, ``--params``) must be
finite: ``--smooth nan`` or ``--weights inf`` would silently give an all-zero submission. Fields that size a
thread pool or a batch, or weigh probabilities, have the ranges below (by field name, for every stage).
"""

from __future__ import annotations

import math
from typing import Any

from embedkit.schemas import limits as L
from embedkit.schemas.base import SchemaError

#: integer fields: inclusive range
INT_BOUNDS = {
    "threads": (1, L.MAX_THREADS),
    "decode_workers": (1, L.MAX_THREADS),
    "ray_actors": (1, L.MAX_THREADS),
    "batch_size": (1, L.MAX_BATCH),
    "shard_rows": (1, L.MAX_BATCH * 16),
    "variants": (0, 1024),
}
#: float fields (each value of a list field): (low, high, low inclusive, high inclusive)
FLOAT_BOUNDS = {
    "smooth": (0.0, 1.0, True, False),
    "file_max": (0.0, 1.0, True, True),
    "weights": (0.0, 1e6, True, True),
    "tta": (-L.MAX_WINDOW_S, L.MAX_WINDOW_S, True, True),
    "window_s": (0.0, L.MAX_WINDOW_S, False, True),
    "hop_s": (0.0, L.MAX_WINDOW_S, False, True),
    "chunk_offsets": (0.0, L.MAX_WINDOW_S, True, True),
    "budget_min": (0.0, 1e7, True, True),
    "window_keep": (0.0, 1.0, False, True),
    "confidence_weight": (0.0, 1.0, True, True),
}


def _range(lo, hi, lo_in, hi_in) -> str:
    return f"{'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"


def check_config(values: dict[str, Any], source: str, flags: bool = False) -> None:
    """Refuse non-finite floats anywhere, and values of the fields in the tables out of their range.

    Args:
        values: field → value (already coerced to the field types).
        source: the TOML file or ``arguments`` (named in the message with the field).
        flags: name the fields as flags (``--smooth``) instead of ``source: smooth``.
    """
    for key, v in values.items():
        name = f"--{key.replace('_', '-')}" if flags else key
        source_ = "" if flags else f"{source}: "
        stack = [(v, name)]
        while stack:
            x, where = stack.pop()
            if isinstance(x, dict):
                stack.extend((y, f"{where}.{k}") for k, y in x.items())
            elif isinstance(x, list | tuple):
                stack.extend((y, f"{where}[{i}]") for i, y in enumerate(x))
            elif isinstance(x, float) and not math.isfinite(x):
                raise SchemaError(f"{source_}{where} = {x}: not a finite number (allowed: finite values)")
        items = v if isinstance(v, list) else [v]
        # bounds apply to numbers only: a name may be a number in one stage and a path in another
        # (InferConfig.weights: blend weights; ExtractConfig.weights: a model file)
        items = [x for x in items if isinstance(x, int | float) and not isinstance(x, bool)]
        if key in INT_BOUNDS and v is not None:
            lo, hi = INT_BOUNDS[key]
            for x in items:
                if not lo <= x <= hi:
                    raise SchemaError(f"{source_}{name} = {x}: out of range (allowed: {lo}..{hi})")
        if key in FLOAT_BOUNDS and v is not None:
            lo, hi, lo_in, hi_in = FLOAT_BOUNDS[key]
            for x in items:
                if not ((lo <= x if lo_in else lo < x) and (x <= hi if hi_in else x < hi)):
                    raise SchemaError(
                        f"{source_}{name} = {x:g}: out of range (allowed: {_range(lo, hi, lo_in, hi_in)})"
                    )

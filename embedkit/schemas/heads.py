"""``head/head.json`` per head (logreg, mlp, mil, lgbm, proto): parameters, learned values and array shapes.

A head's parameters decide its allocations (``hidden`` x D weights, ``n_jobs`` threads, LightGBM
``num_class``), so they are checked before the head is built: on load (``Head.load``) and before a fit
(``Head.fit``, which also covers ``fit.py --params``). Arrays are checked against ``n_features_in_`` (D)
and ``n_classes_`` (C) on load, so a wrong shape is refused there, not at predict.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from embedkit.schemas import limits as L
from embedkit.schemas.base import SchemaError, finite, validate

Pos = Annotated[float, Field(gt=0.0)]
NonNeg = Annotated[float, Field(ge=0.0)]
Frac = Annotated[float, Field(gt=0.0, le=1.0)]
Jobs = Annotated[int, Field(ge=-1, le=L.MAX_THREADS)]
Rounds = Annotated[int, Field(ge=1, le=L.MAX_ROUNDS)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Budget = Annotated[int, Field(ge=0, le=L.MAX_ROWS)]
Device = Annotated[str, Field(pattern=r"^(auto|cpu|mps|cuda(:\d{1,2})?)$")]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class LogregParams(_Params):
    """Parameters of the ``logreg`` head (defaults as in its constructor)."""

    C: Pos = 0.01
    class_weight: Literal["balanced"] | None = "balanced"
    max_iter: Rounds = 200
    tol: Pos = 1e-5
    n_jobs: Annotated[int, Field(ge=1, le=L.MAX_THREADS)] | None = None


class _EpochParams(_Params):
    """Parameters of the training loop of :class:`~embedkit.heads.mlp.MLPHead`, which ``proto`` shares."""

    lr: Pos = 1e-3
    weight_decay: NonNeg = 1e-2
    epochs: Rounds = 60
    batch_size: Annotated[int, Field(ge=1, le=L.MAX_BATCH)] = 256
    patience: Annotated[int, Field(ge=0, le=L.MAX_ROUNDS)] = 6
    val_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    seed: Seed = 0
    device: Device = "auto"
    n_jobs: Annotated[int, Field(ge=0, le=L.MAX_THREADS)] | None = None
    budget_rows: Budget | None = 2_500_000


class MLPParams(_EpochParams):
    """Parameters of the ``mlp`` head (defaults as in its constructor)."""

    hidden: Annotated[int, Field(ge=1, le=L.MAX_HIDDEN)] = 512
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.3


class MILParams(_Params):
    """Parameters of the ``mil`` head (defaults as in its constructor)."""

    hidden: Annotated[int, Field(ge=1, le=L.MAX_HIDDEN)] = 256
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5
    lr: Pos = 1e-3
    weight_decay: NonNeg = 0.1
    epochs: Rounds = 40
    bags_per_step: Annotated[int, Field(ge=1, le=L.MAX_BATCH)] = 16
    bag_weight: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    pool_r: Annotated[float, Field(gt=0.0, le=1e4)] = 5.0
    seed: Seed = 0
    device: Device = "auto"
    n_jobs: Annotated[int, Field(ge=0, le=L.MAX_THREADS)] | None = 1
    budget_rows: Budget | None = 2_500_000


class ProtoParams(_EpochParams):
    """Parameters of the ``proto`` head (defaults as in its constructor)."""

    prototypes: Annotated[int, Field(ge=1, le=64)] = 4
    init_scale: Annotated[float, Field(gt=0.0, le=1e3)] = 10.0
    chunks: Annotated[int, Field(ge=1, le=64)] = 1
    n_jobs: Annotated[int, Field(ge=0, le=L.MAX_THREADS)] | None = 1


class LGBMParams(_Params):
    """Parameters of the ``lgbm`` head (defaults as in its constructor)."""

    n_estimators: Rounds = 100
    learning_rate: Pos = 0.1
    num_leaves: Annotated[int, Field(ge=2, le=L.MAX_LEAVES)] = 15
    max_bin: Annotated[int, Field(ge=2, le=L.MAX_BIN)] = 31
    min_data_in_leaf: Annotated[int, Field(ge=0, le=L.MAX_ROWS)] = 10
    feature_fraction: Frac = 0.15
    neg_bagging_fraction: Frac = 0.3
    lambda_l2: NonNeg = 0.0
    n_jobs: Jobs | None = None
    parallel: Literal["classes", "trees"] = "classes"
    seed: Seed = 0
    params: dict[str, str | bool | int | float | None] | None = None
    max_neg_rows: Budget | None = 30_000
    max_rows: Budget | None = 100_000


PARAMS: dict[str, type[_Params]] = {
    "logreg": LogregParams,
    "mlp": MLPParams,
    "mil": MILParams,
    "lgbm": LGBMParams,
    "proto": ProtoParams,
}

#: LightGBM parameters (and aliases) whose value sizes an allocation, with their upper bounds
_LGB_BOUNDS = {
    **dict.fromkeys(("num_class", "num_classes"), L.MAX_CLASSES),
    **dict.fromkeys(("num_threads", "num_thread", "nthread", "nthreads", "n_jobs"), L.MAX_THREADS),
    **dict.fromkeys(("num_leaves", "num_leaf", "max_leaves", "max_leaf", "max_leaf_nodes"), L.MAX_LEAVES),
    **dict.fromkeys(("max_bin", "max_bins", "max_bin_by_feature"), L.MAX_BIN),
    **dict.fromkeys(
        (
            "num_iterations",
            "num_iteration",
            "n_iter",
            "num_tree",
            "num_trees",
            "num_round",
            "num_rounds",
            "nrounds",
            "num_boost_round",
            "n_estimators",
            "max_iter",
        ),
        L.MAX_ROUNDS,
    ),
    "max_depth": 1024,
}
#: LightGBM parameters that read or write files or reach other machines: never taken from a file or a flag
_LGB_REFUSED = re.compile(r"(file|model|^data$|^valid|^train$|^test$|machine|^task$|snapshot|^output|^input)")


def _lgb_extra(params: dict, file: str) -> None:
    for k, v in params.items():
        where = f"{file}: params.params.{k} = {v!r}"
        if _LGB_REFUSED.search(k):
            raise SchemaError(f"{where}: a LightGBM file/network parameter (allowed: training ones)")
        if isinstance(v, float) and not finite(v):
            raise SchemaError(f"{where}: not a finite number")
        is_int = isinstance(v, int) and not isinstance(v, bool)
        if k in _LGB_BOUNDS and not (is_int and 0 <= v <= _LGB_BOUNDS[k]):
            raise SchemaError(f"{where}: allowed: an integer 0..{_LGB_BOUNDS[k]}")
        if is_int and abs(v) > 2**31 - 1:
            raise SchemaError(f"{where}: allowed: a 32-bit integer")


def cuda_check(device: Any, file: str) -> None:
    """Refuse ``cuda`` / ``cuda:N`` when this machine has no such device (torch imported only then)."""
    if not isinstance(device, str) or not device.startswith("cuda"):
        return
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    idx = int(device.partition(":")[2] or 0)
    if idx >= n:
        allowed = "auto, cpu" + (f", cuda:0..cuda:{n - 1}" if n else "")
        raise SchemaError(
            f"{file}: params.device = {device!r}: this machine has {n} CUDA device(s) (allowed: {allowed})"
        )


def check_params(head: str, params: Any, file: str, dims: tuple[int, int] | None = None) -> None:
    """Check a head's parameters (``head.json`` ``params``, or a fit's) before the head is built.

    Args:
        head: registry name of the head.
        params: its parameters (JSON values).
        file: what to name in the message (``.../head/head.json`` or ``--params``).
        dims: ``(D, C)`` when known: the torch heads' ``hidden * (D + C)`` is bounded too.
    """
    if not isinstance(params, dict):
        raise SchemaError(f"{file}: params = {str(params)[:40]!r}: allowed: an object of head parameters")
    model = PARAMS.get(head)
    if model is None:  # a head registered elsewhere: values must still be plain and finite
        for k, v in params.items():
            if isinstance(v, float) and not finite(v):
                raise SchemaError(f"{file}: params.{k} = {v!r}: not a finite number")
        return
    validate(model, params, file if file.startswith("--") else f"{file}: params")
    if head == "lgbm" and params.get("params"):
        _lgb_extra(params["params"], file)
    if head in ("mlp", "mil", "proto"):
        cuda_check(params.get("device"), file)
        if dims is not None:
            key = "prototypes" if head == "proto" else "hidden"
            size = params.get(key, model.model_fields[key].default)
            n = size * dims[0] * dims[1] if head == "proto" else size * (dims[0] + dims[1])
            if n > L.MAX_HEAD_WEIGHTS:
                rule = "prototypes * D * C" if head == "proto" else "hidden * (D + C)"
                raise SchemaError(
                    f"{file}: params.{key} = {size}: with {dims[0]}-D inputs and {dims[1]} classes, "
                    f"{n} weights (allowed: {rule} <= {L.MAX_HEAD_WEIGHTS})"
                )


class _HeadState(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    n_features_in_: Annotated[int, Field(ge=1, le=L.MAX_DIM)]
    n_classes_: Annotated[int, Field(ge=1, le=L.MAX_CLASSES)]
    booster_: Literal["booster.txt"] | None = None


class HeadMeta(BaseModel):
    """``head/head.json``: format 2, head name, parameters, JSON learned values, array names."""

    model_config = ConfigDict(extra="allow", strict=True)
    format: Literal[2]
    head: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
    params: dict[str, Any]
    state: _HeadState
    arrays: Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,64}$")]], Field(max_length=64)]


def check_head_meta(meta: Any, file: str) -> tuple[int, int]:
    """Check a parsed ``head.json`` (structure, learned sizes, parameters); returns ``(D, C)``."""
    m = validate(HeadMeta, meta, file)
    dims = (m.state.n_features_in_, m.state.n_classes_)
    check_params(m.head, meta["params"], file, dims)
    return dims


#: learned arrays of the heads and their shapes in terms of D and C
_SHAPES = {"mean_": "D", "scale_": "D", "trained_": "C", "constant_": "C", "intercept_": "C", "coef_": "CD"}


def check_arrays(
    arrays: dict[str, np.ndarray],
    dims: tuple[int, int],
    file: str,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> None:
    """Refuse arrays of the wrong shape or with NaN/inf values.

    Args:
        arrays: name → array (``state.safetensors``, or a torch head's weights as numpy).
        dims: ``(D, C)`` of the head.
        file: the file they came from (named in the message).
        shapes: expected shapes by name (default: the heads' learned arrays, :data:`_SHAPES`).
    """
    D, C = dims
    want = (
        shapes
        if shapes is not None
        else {k: tuple({"D": D, "C": C}[c] for c in v) for k, v in _SHAPES.items()}
    )
    for name, a in arrays.items():
        if name in want and tuple(a.shape) != want[name]:
            raise SchemaError(
                f"{file}: array {name} has shape {tuple(a.shape)}; allowed: {want[name]} "
                f"(D = {D} features, C = {C} classes)"
            )
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise SchemaError(f"{file}: array {name} holds NaN or infinite values (allowed: finite)")
    if shapes is not None and set(arrays) != set(shapes):
        raise SchemaError(f"{file}: arrays {sorted(arrays)}; allowed: exactly {sorted(shapes)}")
    if "scale_" in arrays and (arrays["scale_"] <= 0).any():
        raise SchemaError(f"{file}: array scale_ has values <= 0 (allowed: > 0)")

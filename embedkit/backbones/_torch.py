"""Shared helpers for the PyTorch backbones: import checks, precision choice, batched inference.

Everything imports torch lazily, inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from embedkit.backbones.base import MissingDependency


def import_torch(backbone: str) -> Any:
    """Import torch or raise :class:`MissingDependency` naming ``backbone``."""
    try:
        import torch
    except ImportError:
        raise MissingDependency("torch", backbone) from None
    return torch


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 matmuls/convolutions natively (AVX512-BF16 or AMX) through oneDNN.

    Without those instructions bf16 autocast on the CPU is emulated and usually slower than float32.
    Reads ``/proc/cpuinfo``; on systems without it (macOS, Windows) the answer is ``False``.
    """
    try:
        import torch

        if not torch.backends.mkldnn.is_available():
            return False
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[-1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except (ImportError, OSError):
        pass
    return False


def pick_precision(device: str, bf16: bool) -> str:
    """The autocast precision to use on ``device`` when the user asked for reduced precision or not.

    Args:
        device: a torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
        bf16: whether reduced precision is wanted.

    Returns:
        ``"fp32"``, ``"bf16"`` (CUDA with bf16 support, or a CPU with native bf16, see
        :func:`cpu_has_bf16`) or ``"fp16"`` (CUDA without bf16 support).
    """
    if not bf16:
        return "fp32"
    kind = device.split(":", 1)[0]
    if kind == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if kind == "cpu":
        return "bf16" if cpu_has_bf16() else "fp32"
    return "fp32"


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    """An autocast context for ``precision`` on ``device`` (a no-op context for ``"fp32"``)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.split(":", 1)[0], dtype=dtype)


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op CPU thread count when ``threads`` is given (process-wide)."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))


_CONV_BN = (("conv1", "bn1"), ("conv2", "bn2"))


def fold_conv_bn(model: Any, pairs: tuple[tuple[str, str], ...] = _CONV_BN) -> int:
    """Fold eval-mode BatchNorm2d layers into the Conv2d layers before them (for inference only).

    In every submodule that has both attributes of a pair (a ``Conv2d`` and the ``BatchNorm2d`` applied to
    its output, as in PANNs' ``ConvBlock``), the conv gets the normalisation in its weights and bias and the
    norm becomes ``Identity``: one pass over each activation less. Values change by float32 rounding only.

    Args:
        model: a torch module in eval mode (modified in place).
        pairs: (conv attribute, norm attribute) names to look for.

    Returns:
        The number of folded pairs.
    """
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    n = 0
    for mod in list(model.modules()):
        for conv_name, bn_name in pairs:
            conv, bn = getattr(mod, conv_name, None), getattr(mod, bn_name, None)
            if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d) and not bn.training:
                setattr(mod, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(mod, bn_name, torch.nn.Identity())
                n += 1
    return n


def channels_last(model: Any) -> Any:
    """``model`` with its 4-D weights in channels-last layout, which oneDNN / cuDNN convolutions prefer."""
    import torch

    return model.to(memory_format=torch.channels_last)


def check_batch(batch: np.ndarray) -> np.ndarray:
    """Validate a batch of windows and return it as a C-contiguous float32 array [B, samples]."""
    batch = np.asarray(batch)
    if batch.ndim != 2:
        raise ValueError(f"embed() expects a 2-D batch [B, samples], got shape {batch.shape}")
    return np.ascontiguousarray(batch, dtype=np.float32)


def run_batched(
    fn: Callable[[Any], Any],
    batch: np.ndarray,
    *,
    dim: int,
    device: str,
    precision: str,
    batch_size: int,
) -> np.ndarray:
    """Run ``fn`` over ``batch`` in chunks of ``batch_size`` rows under inference mode and autocast.

    On CUDA each chunk goes through pinned host memory with a non-blocking copy.

    Args:
        fn: maps a float32 tensor [b, samples] on ``device`` to a tensor [b, dim].
        batch: float32 array [B, samples].
        dim: embedding dimension D (for the empty-batch result).
        device: torch device string.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (see :func:`pick_precision`).
        batch_size: rows per forward pass.

    Returns:
        float32 array [B, dim].
    """
    import torch

    batch = check_batch(batch)
    if batch.shape[0] == 0:
        return np.zeros((0, dim), dtype=np.float32)
    cuda = device.startswith("cuda")
    step = max(1, int(batch_size))
    out = []
    with torch.inference_mode():
        for start in range(0, batch.shape[0], step):
            x = torch.from_numpy(batch[start : start + step])
            x = x.pin_memory().to(device, non_blocking=True) if cuda else x.to(device)
            with autocast(device, precision):
                y = fn(x)
            out.append(y.float().cpu().numpy())
    return np.concatenate(out, axis=0).astype(np.float32, copy=False)

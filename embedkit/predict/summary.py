"""The settings half of ``infer``'s summary line: TTA, smoothing and where it came from, models and weights.

So that a reader of a log knows what produced a submission: ``TTA ±1.25 s (3 passes, mean)`` or ``TTA off``,
``smoothing 0.5 (default)`` or ``(--smooth)`` or ``(learned on soundscapes ...)``, ``file-max 0.25``
when on, and each model with its normalised blend weight.
"""

from __future__ import annotations


def settings_text(tta: tuple[float, ...], smooth: tuple[float, str], file_max: float, models, weights) -> str:
    """One line of text for the summary.

    Args:
        tta: TTA offsets in seconds (``embedkit.audio.tta.tta_offsets``; empty: off).
        smooth: (smoothing, its source) as :func:`embedkit.predict.smoothing.resolve_smooth` returns it.
        file_max: the file-max blend weight.
        models: loaded models (``folder``) or their names.
        weights: blend weights [M], normalised.
    """
    if tta:
        shifts = "/".join(f"{s:g}" for s in sorted({abs(o) for o in tta}))
        parts = [f"TTA ±{shifts} s ({1 + len(tta)} passes, mean)"]
    else:
        parts = ["TTA off"]
    parts.append(f"smoothing {smooth[0]:g} ({smooth[1]})")
    if file_max > 0:
        parts.append(f"file-max {file_max:g}")
    names = [getattr(getattr(m, "folder", None), "name", None) or str(m) for m in models]
    parts.append("models " + ", ".join(f"{n} ({float(w):.2g})" for n, w in zip(names, weights, strict=True)))
    return "; ".join(parts)


__all__ = ["settings_text"]

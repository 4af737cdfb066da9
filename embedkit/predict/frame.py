"""``embedkit.predict(files, model)``: a saved model applied to audio files, as a long pandas DataFrame.

What ``infer.py`` computes for each window (the backbone rebuilt from the model's provenance and checked,
test-time augmentation, the zero-shot prior, smoothing over neighbouring windows), for any files and without
a submission: one row per window and label.
"""

from __future__ import annotations

import os

import numpy as np


def _model(model, trust_pickle: bool):
    from embedkit.predict.model import Model, load_model

    return model if isinstance(model, Model) else load_model(model, trust_pickle=trust_pickle)


def window_probs(model, paths, *, tta=(1.25,), batch_size: int = 32, threads: int | None = None,
                 device: str = "auto", weights: dict | None = None, progress: bool = False):  # fmt: skip
    """Per file, the model's probabilities [W, C] of its windows (TTA averaged, not smoothed).

    Args:
        model: a loaded model.
        paths: audio files.
        tta: TTA shifts in seconds (``()`` or ``[0]``: none), as ``infer.py --tta``.
        batch_size: windows per backbone call.
        threads: CPU threads of the backbone.
        device: torch backbones: auto | cpu | cuda.
        weights: backbone name → weights path on this machine.
        progress: show a progress bar.

    Returns:
        ``({file index: float32 [W, C]}, {file index: reason it failed})``.
    """
    from embedkit.audio import Windowing
    from embedkit.audio.stream import embed_files
    from embedkit.audio.tta import tta_offsets
    from embedkit.backbones.build import build_backbone
    from embedkit.predict.fusion import FusedParts, model_parts
    from embedkit.predict.tta import predict_variants

    prov = model.provenance
    w = Windowing(prov.get("window_s", 5.0), prov.get("hop_s", 5.0))
    fused = FusedParts([model])
    got: dict[int, np.ndarray] = {}
    failed: dict[int, str] = {}
    for j, part in enumerate(model_parts(model)):
        bb = build_backbone(part, weights=(weights or {}).get(part["backbone"]), threads=threads,
                            batch_size=batch_size, device=device)  # fmt: skip
        try:
            live = {**part, **bb.identity(), "window_s": w.window_s, "hop_s": w.hop_s}
            from embedkit.store import check_provenance

            check_provenance(part, live, what=f"part {j} of {model.folder}", where=f"backbone {bb.name}")
            logits = bool(model.meta.get("needs_logits")) and j == 0
            for fe in embed_files(bb, paths, w, batch_size=batch_size, logits=logits, progress=progress,
                                  desc=f"predict {bb.name}", offsets=tta_offsets(list(tta))):  # fmt: skip
                if fe.error is not None:
                    failed.setdefault(fe.index, fe.error)
                    continue
                variant = iter(range(1 + (0 if fe.shifted is None else len(fe.shifted))))

                def one(emb, lg, k=fe.index, v=variant, j=j):
                    return fused.add(0, j, (k, next(v)), emb, lg)

                p = predict_variants(one, fe.emb, fe.logits, fe.shifted, fe.shifted_logits)
                if p is not None:
                    got[fe.index] = p
        finally:
            bb.close()
    return {k: p for k, p in got.items() if k not in failed}, failed


def predict_frame(files, model, *, tta=(1.25,), smooth: float | None = None, min_score: float = 0.0,
                  trust_pickle: bool = False, progress: bool = False, **kw):  # fmt: skip
    """Per-window, per-label scores of a saved model on audio files.

    Args:
        files: an audio file, a folder (searched recursively) or a list of either.
        model: a model folder (fit.py, merge-models, fit.py --add-to) or a loaded model.
        tta: TTA shifts in seconds, as ``infer.py --tta`` (default ±1.25 s; ``()`` = off).
        smooth: weight of the two neighbouring windows (0 = off); None = the model's learned one, else 0.5,
            as ``infer.py``.
        min_score: keep only rows whose score reaches this.
        trust_pickle: also load models of embedkit 0.1 (pickled heads; runs code).
        progress: show a progress bar.
        **kw: ``batch_size``, ``threads``, ``device``, ``weights`` (backbone name → weights path).

    Returns:
        DataFrame ``file, start, end, label, score`` (one row per window and label, files in input order,
        labels in the model's order); ``attrs["failures"]``: files that gave no windows (also on stderr),
        ``attrs["smooth"]``: the smoothing used and where it came from.
    """
    import pandas as pd

    from embedkit.extract.frame import audio_paths, report_failures, window_frame
    from embedkit.predict.post import smooth_windows
    from embedkit.predict.smoothing import resolve_smooth

    m = _model(model, trust_pickle)
    paths = audio_paths(files)
    probs, failed = window_probs(m, paths, tta=tta, progress=progress, **kw)
    s = resolve_smooth(smooth, [m], np.ones(1))
    probs = {k: smooth_windows(p, s[0]) for k, p in probs.items()}
    report_failures(failed, paths, "predict")
    keys, P = window_frame(paths, probs, m.provenance.get("hop_s", 5.0), m.provenance.get("window_s", 5.0))
    C = len(m.labels)
    P = P.reshape(len(keys), C)
    df = pd.DataFrame({
        "file": np.repeat(keys["file"].to_numpy(), C),
        "start": np.repeat(keys["start"].to_numpy(), C),
        "end": np.repeat(keys["end"].to_numpy(), C),
        "label": np.tile(np.asarray(m.labels, dtype=object), len(keys)),
        "score": P.reshape(-1).astype(np.float32),
    })  # fmt: skip
    if min_score > 0:
        df = df[df["score"] >= min_score].reset_index(drop=True)
    df.attrs["failures"] = {str(paths[k]): r for k, r in failed.items()}
    df.attrs["smooth"] = s
    return df


def load(path: str | os.PathLike, trust_pickle: bool = False):
    """``embedkit.load_model``: a saved model folder, checked (:func:`embedkit.predict.model.load_model`)."""
    return _model(path, trust_pickle)


__all__ = ["load", "predict_frame", "window_probs"]

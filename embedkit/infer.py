"""Inference: soundscapes → backbone(s) → saved head(s) → blended, smoothed ``submission.csv``.

What runs in the Kaggle scoring notebook (CPU, offline). Each distinct backbone among the models is built
once from the models' provenance and checked against it; every soundscape streams through it (nothing is
written unless ``--save-embeddings``). Probabilities of several models are blended by a weighted mean, then
optionally smoothed over neighbouring windows of the same file.

Rows: every soundscape gets one row per window of its header duration (60 s when the header is unreadable
or empty), exactly the rows ``embedkit validate --soundscapes`` expects. Fallback: a file that cannot be
decoded gets, for each of its windows, the class priors of the models (the frequency of each class in the
training windows, blended with the same weights); it is listed on stderr. An empty or missing soundscape
folder gives a valid header-only submission. The written file is checked like ``embedkit validate`` does; a
submission that fails is written as ``submission.invalid.csv`` instead (see :func:`invalid_path`).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedkit.audio import AudioError, Windowing, duration_s, list_audio, row_id
from embedkit.birdclef import (
    expected_row_ids,
    soundscape_row_ids,
    submission_labels,
    validate_submission,
    write_submission,
)
from embedkit.config import InferConfig
from embedkit.errors import UsageError
from embedkit.store import INFO_FIELDS


@dataclass
class InferResult:
    """What ``run_infer`` produced."""

    path: Path
    row_ids: list[str]
    probs: np.ndarray
    failures: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    audio_s: float = 0.0
    elapsed_s: float = 0.0


def smooth_windows(p: np.ndarray, weight: float) -> np.ndarray:
    """Temporal smoothing of one file's window probabilities.

    Each window becomes ``(1 - weight) * p[t] + weight/2 * (p[t-1] + p[t+1])``; at the file's ends the
    missing neighbour's share stays with the window itself.

    Args:
        p: [W, C] probabilities of consecutive windows.
        weight: share given to the neighbours, in [0, 1).

    Returns:
        [W, C] smoothed probabilities (float32).
    """
    if weight <= 0 or len(p) < 2:
        return p.astype(np.float32, copy=True)
    prev = np.vstack([p[:1], p[:-1]])
    nxt = np.vstack([p[1:], p[-1:]])
    return ((1 - weight) * p + weight / 2 * (prev + nxt)).astype(np.float32)


def file_max_blend(p: np.ndarray, weight: float) -> np.ndarray:
    """Blend one file's window probabilities with the file's maximum per class.

    Each window becomes ``(1 - weight) * p[t] + weight * max_t p[t]``: a species heard clearly somewhere in
    the file lifts its faint windows (BirdCLEF truth marks a species over a whole call sequence).

    Args:
        p: [W, C] probabilities of one file's windows.
        weight: weight of the file maximum, in [0, 1].

    Returns:
        [W, C] float32.
    """
    if weight <= 0 or len(p) == 0:
        return p.astype(np.float32, copy=True)
    return ((1 - weight) * p + weight * p.max(axis=0, keepdims=True)).astype(np.float32)


def blend_weights(weights: list[float] | None, n: int) -> np.ndarray:
    """Blend weights for ``n`` models, normalised to sum 1 (``None``: equal weights)."""
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    if len(w) != n or (w < 0).any() or w.sum() <= 0:
        raise UsageError(
            f"need {n} non-negative blend weights (one per model) with a positive sum, got {list(w)}"
        )
    return w / w.sum()


def blend(probs: list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
    """Weighted mean of several models' probabilities [N, C] (weights normalised to sum 1)."""
    w = blend_weights(weights, len(probs))
    return sum(wi * p for wi, p in zip(w, probs, strict=True)).astype(np.float32)


def column_map(model_labels: list[str], labels: list[str]) -> np.ndarray:
    """Index of each submission label in a model's outputs (-1 where the model lacks it) [C]."""
    pos = {c: i for i, c in enumerate(model_labels)}
    return np.array([pos.get(c, -1) for c in labels], dtype=np.int64)


def remap(p: np.ndarray, cmap: np.ndarray) -> np.ndarray:
    """Model outputs [N, K] → submission columns [N, C]; columns the model lacks are 0."""
    out = np.zeros((len(p), len(cmap)), np.float32)
    ok = cmap >= 0
    out[:, ok] = p[:, cmap[ok]]
    return out


def backbone_for(prov: dict, cfg: InferConfig):
    """Build the backbone described by a model's provenance, with this run's weights paths and threads."""
    from embedkit.backbones import backbone_class

    cls = backbone_class(prov["backbone"])
    params = inspect.signature(cls.__init__).parameters
    keys = ("chunk_offsets", "pool", "layer", "window_s", "model")
    kw = {k: prov[k] for k in keys if k in params and k in prov}
    if "chunk_offsets" in kw:
        kw["chunk_offsets"] = tuple(kw["chunk_offsets"])
    run = {
        "weights": cfg.backbone_weights.get(prov["backbone"]) or prov.get("model_file"),
        "threads": cfg.threads,
        "batch_size": cfg.batch_size,
        "device": cfg.device,
    }
    kw.update({k: v for k, v in run.items() if k in params and v is not None})
    return cls(**kw)


def _identity_key(prov: dict) -> str:
    return json.dumps(
        {k: v for k, v in prov.items() if k not in INFO_FIELDS and k != "dtype"}, sort_keys=True
    )


def run_infer(cfg: InferConfig) -> InferResult:
    """Write a submission for every soundscape in the folder (see the module docstring).

    Returns:
        The written path, row ids, probabilities [N, C], failures and validation problems (empty = valid).
    """
    from embedkit.fusion import FusedParts, model_parts
    from embedkit.modelio import load_model
    from embedkit.store import check_provenance
    from embedkit.stream import embed_files

    t0 = time.monotonic()
    if not cfg.models:
        raise UsageError("no --models given")
    models = [load_model(m) for m in cfg.models]
    wts = blend_weights(cfg.weights, len(models))
    sample = Path(cfg.sample) if cfg.sample else Path(cfg.data) / "sample_submission.csv"
    labels = submission_labels(sample, models[0].labels)
    cmaps = [column_map(m.labels, labels) for m in models]
    wins = {(m.provenance.get("window_s", 5.0), m.provenance.get("hop_s", 5.0)) for m in models}
    if len(wins) > 1:
        raise UsageError(
            f"models use different windows (window_s, hop_s): {sorted(wins)}; blend like with like"
        )
    w = Windowing(*wins.pop())
    folder = Path(cfg.soundscapes) if cfg.soundscapes else Path(cfg.data) / "test_soundscapes"
    files = list_audio(folder) if folder.is_dir() else []
    if not folder.is_dir():
        print(f"[infer] no soundscape folder {folder}: writing a header-only submission", file=sys.stderr)
    durations = []
    for p in files:
        try:
            durations.append(duration_s(p))
        except AudioError:
            durations.append(60.0)
    total_audio = float(sum(durations))
    acc: dict[int, np.ndarray] = {}
    failed: dict[int, str] = {}
    groups: dict[str, list[tuple[int, int]]] = {}  # backbone identity → (model, part) pairs
    for i, m in enumerate(models):
        for j, part in enumerate(model_parts(m)):
            groups.setdefault(_identity_key(part), []).append((i, j))
    fused = FusedParts(models)
    audio_done, warned = 0.0, False
    for gi, idxs in enumerate(groups.values()):
        prov = model_parts(models[idxs[0][0]])[idxs[0][1]]
        bb = backbone_for(prov, cfg)
        live = {**prov, **bb.identity(), "window_s": w.window_s, "hop_s": w.hop_s}
        for i, j in idxs:
            where = f"backbone {bb.name} built for inference"
            if j == 0:
                models[i].check(live, where=where)
            else:  # a fused part: its own provenance
                part = model_parts(models[i])[j]
                check_provenance(part, live, what=f"part {j} of {models[i].folder}", where=where)
        saver = _saver(cfg, bb, live, folder)
        t_group, audio_group = time.monotonic(), 0.0
        for fe in embed_files(
            bb,
            files,
            w,
            batch_size=cfg.batch_size,
            decode_workers=cfg.decode_workers,
            logits=any(models[i].meta.get("needs_logits") and j == 0 for i, j in idxs),
            progress=cfg.progress,
            desc=f"infer {bb.name}",
        ):
            if fe.error is not None:
                failed.setdefault(fe.index, fe.error)
                continue
            for i, j in idxs:
                q = fused.add(i, j, fe.index, fe.emb, fe.logits)
                if q is not None:
                    acc[fe.index] = acc.get(fe.index, 0) + wts[i] * remap(q, cmaps[i])
            audio_group += fe.audio_s
            if saver is not None:
                saver(files[fe.index], fe.emb)
            if cfg.budget_min and not warned and audio_group > 0.05 * total_audio:
                rate = audio_group / (time.monotonic() - t_group)
                proj = (
                    time.monotonic()
                    - t0
                    + (total_audio - audio_group) / rate
                    + (len(groups) - gi - 1) * total_audio / rate
                ) / 60
                if proj > cfg.budget_min:
                    warned = True
                    print(
                        f"[infer] WARNING: projected {proj:.1f} min exceeds --budget-min {cfg.budget_min:g}; "
                        f"consider dropping a model",
                        file=sys.stderr,
                    )
        audio_done += audio_group
        bb.close()
    priors = sum(wts[i] * remap(m.priors[None, :], cmaps[i])[0] for i, m in enumerate(models))
    row_ids, blocks = [], []
    for k, p in enumerate(files):
        ids = soundscape_row_ids(p, w.window_s, w.hop_s)  # the rows `validate --soundscapes` expects
        probs = np.repeat(np.asarray(priors, np.float32)[None, :], len(ids), axis=0)
        if k in acc and k not in failed:
            got = file_max_blend(smooth_windows(acc[k], cfg.smooth), cfg.file_max)[: len(ids)]
            probs[: len(got)] = got
            if len(acc[k]) != len(ids):
                print(
                    f"[infer] {p}: {len(acc[k])} windows decoded but its header gives {len(ids)} rows; "
                    f"rows without audio get the class priors",
                    file=sys.stderr,
                )
        row_ids += ids
        blocks.append(probs)
    P = np.concatenate(blocks) if blocks else np.zeros((0, len(labels)), np.float32)
    failures = [(str(files[k]), r) for k, r in sorted(failed.items())]
    for f, r in failures:
        print(f"[infer] could not use {f}: {r} (rows filled with class priors)", file=sys.stderr)
    out, problems = _write_checked(
        Path(cfg.out), row_ids, P, labels, expected_row_ids(folder, w.window_s, w.hop_s)
    )
    el = time.monotonic() - t0
    rt = total_audio / el if el > 0 else 0.0
    print(
        f"[infer] {len(files)} files, {len(row_ids)} rows, {total_audio / 60:.1f} min of audio in {el:.1f} s "
        f"({rt:.0f}x realtime; 700 one-minute files: {700 / max(rt, 1e-9):.1f} min) -> {out}",
        file=sys.stderr,
    )
    return InferResult(out, row_ids, P, failures, problems, total_audio, el)


def invalid_path(out: str | Path) -> Path:
    """Where an invalid submission is written instead: ``submission.csv`` → ``submission.invalid.csv``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.invalid{out.suffix}")


def _write_checked(
    out: Path, row_ids: list[str], P: np.ndarray, labels: list[str], expected: list[str]
) -> tuple[Path, list[str]]:
    """Write to a temporary name, run the ``validate`` checks on the file, then name it for what it is.

    A valid submission replaces ``out`` (and removes a stale ``*.invalid.csv``); an invalid one goes to
    :func:`invalid_path` and ``out`` is not touched. Returns (path written, problems).
    """
    tmp = write_submission(out.with_name(f".tmp-check-{os.getpid()}-{out.name}"), row_ids, P, labels)
    try:
        problems = validate_submission(tmp, labels, expected)
        final = invalid_path(out) if problems else out
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    if not problems:
        invalid_path(out).unlink(missing_ok=True)
    return final, problems


def _saver(cfg: InferConfig, bb, prov: dict, folder: Path):
    """A callable writing one file's test embeddings as a shard, or ``None`` without --save-embeddings."""
    if not cfg.save_embeddings:
        return None
    import pandas as pd

    from embedkit.store import ShardWriter

    writer = ShardWriter(Path(cfg.save_embeddings) / bb.name / folder.name, {**prov, "split": folder.name})

    def save(path: Path, emb: np.ndarray) -> None:
        ends = prov["window_s"] + np.arange(len(emb)) * prov["hop_s"]
        keys = pd.DataFrame(
            {
                "file": path.name,
                "window": np.arange(len(emb)),
                "start_s": ends - prov["window_s"],
                "end_s": ends,
                "row_id": [row_id(path.stem, e) for e in ends],
            }
        )
        writer.write(keys, emb)

    return save


def main(cfg: InferConfig) -> int:
    """CLI body of ``infer``: 0 when the written submission validates, 1 when it does not.

    An invalid submission is kept under :func:`invalid_path` (``submission.invalid.csv``) and ``--out`` is not
    written, so nothing invalid is ever submitted by mistake.
    """
    res = run_infer(cfg)
    if res.problems:
        for p in res.problems:
            print(f"[infer] INVALID submission {res.path}: {p}", file=sys.stderr)
        print(f"[infer] {cfg.out} was not written; what could be computed is in {res.path}", file=sys.stderr)
        return 1
    return 0


__all__ = [
    "InferResult",
    "backbone_for",
    "blend",
    "column_map",
    "invalid_path",
    "main",
    "remap",
    "run_infer",
    "smooth_windows",
]

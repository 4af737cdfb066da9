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
submission that fails is written as ``submission.invalid.csv`` instead (see :mod:`embedkit.predict.output`).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedkit.audio import AudioError, Windowing, duration_s, list_audio
from embedkit.audio.tta import tta_offsets
from embedkit.birdclef import (
    check_labels,
    check_row_stems,
    expected_row_ids,
    soundscape_row_ids,
    submission_labels,
)
from embedkit.config import InferConfig
from embedkit.errors import UsageError
from embedkit.predict.output import embedding_saver, invalid_path, write_checked
from embedkit.predict.post import (
    blend_weights,
    column_map,
    file_max_blend,
    known_scale,
    remap,
    smooth_windows,
)
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


def _identity_key(prov: dict) -> str:
    return json.dumps(
        {k: v for k, v in prov.items() if k not in INFO_FIELDS and k != "dtype"}, sort_keys=True
    )


@dataclass
class _Run:
    """State of one inference run shared by its steps."""

    models: list
    wts: np.ndarray
    labels: list[str]
    cmaps: list[np.ndarray]
    w: Windowing
    folder: Path
    files: list[Path]
    total_audio: float
    smooth: tuple[float, str] = (0.5, "default")
    acc: dict[int, np.ndarray] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


def _prepare(cfg: InferConfig) -> _Run:
    """Load the models, the submission columns, the common windowing and the soundscape list."""
    from embedkit.predict.model import load_model

    if not cfg.models:
        raise UsageError("no --models given")
    if not cfg.soundscapes and not Path(cfg.data).is_dir():  # not a header-only submission of nothing
        raise UsageError(f"--data {cfg.data}: no such folder; give the data root or --soundscapes")
    models = [load_model(m, trust_pickle=cfg.trust_pickle) for m in cfg.models]
    wts = blend_weights(cfg.weights, len(models))
    labels = _labels(cfg, models)
    wins = {(m.provenance.get("window_s", 5.0), m.provenance.get("hop_s", 5.0)) for m in models}
    if len(wins) > 1:
        raise UsageError(
            f"models use different windows (window_s, hop_s): {sorted(wins)}; blend like with like"
        )
    folder = Path(cfg.soundscapes) if cfg.soundscapes else Path(cfg.data) / "test_soundscapes"
    if cfg.soundscapes and not folder.is_dir():  # a typo or a single file: never a header-only submission
        what = "a file; give the folder that holds the soundscapes" if folder.exists() else "no such folder"
        raise UsageError(f"--soundscapes {folder}: {what} ({cfg.out} left as it is)")
    files = list_audio(folder) if folder.is_dir() else []
    check_row_stems(files)  # same-named files in sub-folders would share row ids: refused in one line
    if not folder.is_dir():
        print(f"[infer] no soundscape folder {folder}: writing a header-only submission", file=sys.stderr)
    durations = []
    for p in files:
        try:
            durations.append(duration_s(p))
        except AudioError:
            durations.append(60.0)
    cmaps = [column_map(m.labels, labels) for m in models]
    from embedkit.predict.smoothing import resolve_smooth

    smooth = resolve_smooth(cfg.smooth, models, wts)
    window = Windowing(*wins.pop())
    return _Run(models, wts, labels, cmaps, window, folder, files, float(sum(durations)), smooth)


def _labels(cfg: InferConfig, models) -> list[str]:
    """Submission columns: ``--sample`` (must exist), else DATA/sample_submission.csv, else the first model's.

    Labels that differ from a model's are refused unless ``--allow-label-mismatch`` (:func:`check_labels`).
    """
    sample = Path(cfg.sample) if cfg.sample else Path(cfg.data) / "sample_submission.csv"
    if cfg.sample and not sample.is_file():
        raise UsageError(f"--sample {sample}: no such file")
    source = str(sample)
    if not sample.is_file():
        print(f"[infer] no {sample}: the columns are the labels of {cfg.models[0]}", file=sys.stderr)
        sample, source = None, f"the labels of {cfg.models[0]}"
    labels = submission_labels(sample, models[0].labels)
    named = {str(m.folder): list(m.labels) for m in models}
    notes = check_labels(labels, named, source, cfg.allow_label_mismatch)
    for note in notes:
        print(f"[infer] --allow-label-mismatch: {note}", file=sys.stderr)
    if notes:
        unknown = [c for c in labels if not any(c in m.labels for m in models)]
        print(f"[infer] --allow-label-mismatch: the header is that of {source} ({len(labels)} labels); "
              f"{len(unknown)} column(s) no model knows are written as 0", file=sys.stderr)
    return labels


def _backbone_groups(models) -> list[list[tuple[int, int]]]:
    """(model, part) pairs grouped by backbone identity: each distinct backbone runs once over the files."""
    from embedkit.predict.fusion import model_parts

    groups: dict[str, list[tuple[int, int]]] = {}
    for i, m in enumerate(models):
        for j, part in enumerate(model_parts(m)):
            groups.setdefault(_identity_key(part), []).append((i, j))
    return list(groups.values())


def _build_checked(cfg: InferConfig, run: _Run, idxs: list[tuple[int, int]]):
    """The group's backbone, built from the first model's provenance and checked against every member."""
    from embedkit.backbones.build import build_backbone
    from embedkit.predict.fusion import model_parts
    from embedkit.store import check_provenance

    prov = model_parts(run.models[idxs[0][0]])[idxs[0][1]]
    bb = build_backbone(prov, **cfg.backbone_run(prov["backbone"]))
    live = {**prov, **bb.identity(), "window_s": run.w.window_s, "hop_s": run.w.hop_s}
    for i, j in idxs:
        where = f"backbone {bb.name} built for inference"
        if j == 0:
            run.models[i].check(live, where=where)
        else:  # a fused part: its own provenance
            part = model_parts(run.models[i])[j]
            check_provenance(part, live, what=f"part {j} of {run.models[i].folder}", where=where)
    return bb, live


def _embed_all(cfg: InferConfig, run: _Run, t0: float) -> None:
    """Run every backbone group over the files, accumulating blended probabilities per file in ``run.acc``."""
    from embedkit.audio.stream import embed_files
    from embedkit.predict.fusion import FusedParts

    groups = _backbone_groups(run.models)
    fused = FusedParts(run.models)
    warned = False
    for gi, idxs in enumerate(groups):
        bb, live = _build_checked(cfg, run, idxs)
        saver = embedding_saver(cfg.save_embeddings, bb, live, run.folder)
        t_group, audio_group = time.monotonic(), 0.0
        for fe in embed_files(
            bb,
            run.files,
            run.w,
            batch_size=cfg.batch_size,
            decode_workers=cfg.decode_workers,
            logits=any(run.models[i].meta.get("needs_logits") and j == 0 for i, j in idxs),
            progress=cfg.progress,
            desc=f"infer {bb.name}",
            offsets=tta_offsets(cfg.tta),
        ):
            if fe.error is not None:
                run.failed.setdefault(fe.index, fe.error)
                continue
            for i, j in idxs:
                q = _predict_file(fused, i, j, fe)
                if q is not None:
                    run.acc[fe.index] = run.acc.get(fe.index, 0) + run.wts[i] * remap(q, run.cmaps[i])
            audio_group += fe.audio_s
            if saver is not None:
                saver(run.files[fe.index], fe.emb)
            if cfg.budget_min and not warned and audio_group > 0.05 * run.total_audio:
                rate = audio_group / (time.monotonic() - t_group)
                left = (run.total_audio - audio_group + (len(groups) - gi - 1) * run.total_audio) / rate
                proj = (time.monotonic() - t0 + left) / 60
                if proj > cfg.budget_min:
                    warned = True
                    print(
                        f"[infer] WARNING: projected {proj:.1f} min exceeds --budget-min {cfg.budget_min:g}; "
                        f"consider dropping a model",
                        file=sys.stderr,
                    )
        bb.close()


def _predict_file(fused, i: int, j: int, fe) -> np.ndarray | None:
    """Model ``i``'s probabilities [W, C] for a file (part ``j``), averaged over its TTA variants if any."""
    from embedkit.predict.tta import predict_variants

    variant = iter(range(1 + (0 if fe.shifted is None else len(fe.shifted))))

    def one(emb, logits):  # each variant is its own "file" for the fused parts
        return fused.add(i, j, (fe.index, next(variant)), emb, logits)

    return predict_variants(one, fe.emb, fe.logits, fe.shifted, fe.shifted_logits)


def _rows(cfg: InferConfig, run: _Run) -> tuple[list[str], np.ndarray]:
    """Row ids and probabilities [N, C] of every soundscape; class priors where a file gave nothing."""
    # --allow-label-mismatch: a column is the blend of the models that know it; a column none knows is 0
    scale = known_scale(run.cmaps, run.wts)
    priors = scale * sum(
        run.wts[i] * remap(m.priors[None, :], run.cmaps[i])[0] for i, m in enumerate(run.models)
    )
    row_ids, blocks = [], []
    for k, p in enumerate(run.files):
        ids = soundscape_row_ids(p, run.w.window_s, run.w.hop_s)  # the rows `validate --soundscapes` expects
        probs = np.repeat(np.asarray(priors, np.float32)[None, :], len(ids), axis=0)
        if k in run.acc and k not in run.failed:
            got = file_max_blend(smooth_windows(run.acc[k] * scale, run.smooth[0]), cfg.file_max)[: len(ids)]
            probs[: len(got)] = got
            if len(run.acc[k]) != len(ids):
                print(
                    f"[infer] {p}: {len(run.acc[k])} windows decoded but its header gives {len(ids)} rows; "
                    f"rows without audio get the class priors",
                    file=sys.stderr,
                )
        row_ids += ids
        blocks.append(probs)
    P = np.concatenate(blocks) if blocks else np.zeros((0, len(run.labels)), np.float32)
    return row_ids, P


def run_infer(cfg: InferConfig) -> InferResult:
    """Write a submission for every soundscape in the folder (see the module docstring).

    Returns:
        The written path, row ids, probabilities [N, C], failures and validation problems (empty = valid).
    """
    from embedkit.predict.summary import settings_text

    t0 = time.monotonic()
    run = _prepare(cfg)
    _embed_all(cfg, run, t0)
    row_ids, P = _rows(cfg, run)
    failures = [(str(run.files[k]), r) for k, r in sorted(run.failed.items())]
    for f, r in failures:
        print(f"[infer] could not use {f}: {r} (rows filled with class priors)", file=sys.stderr)
    expected = expected_row_ids(run.folder, run.w.window_s, run.w.hop_s)
    out, problems = write_checked(Path(cfg.out), row_ids, P, run.labels, expected)
    el = time.monotonic() - t0
    rt = run.total_audio / el if el > 0 else 0.0
    speed = f"({rt:.0f}x realtime; 700 one-minute files: {700 / rt:.1f} min)" if rt > 0 else "(no audio)"
    print(
        f"[infer] {len(run.files)} files, {len(row_ids)} rows, {run.total_audio / 60:.1f} min of audio in "
        f"{el:.1f} s {speed} -> {out}; "
        + settings_text(tta_offsets(cfg.tta), run.smooth, cfg.file_max, run.models, run.wts),
        file=sys.stderr,
    )
    return InferResult(out, row_ids, P, failures, problems, run.total_audio, el)


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


__all__ = ["InferResult", "invalid_path", "main", "run_infer"]

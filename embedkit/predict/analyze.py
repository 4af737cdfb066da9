"""``embedkit analyze``: recordings of any length → the saved model(s) → detection tables.

The field counterpart of ``infer.py``: every recording under ``--audio`` streams through the backbone in
decode blocks (memory stays flat for hours-long files), the models' recipe is applied as in inference
(zero-shot prior, blend, ``--tta``, the learned or given smoothing) and every (window, label) scoring at least
``--min-score`` becomes a detection. Each recording gets its table (Raven, Audacity, CSV, Kaleidoscope or
Parquet, :mod:`embedkit.tables.detections`) as soon as it is done, written atomically; a rerun skips the
recordings whose table exists, so an interrupted run continues where it stopped, and ``--part i/N`` shares
the recordings between N processes (hashing the relative path, as ``extract.py``). At the end the combined
``detections.csv`` and the per file × label ``summary.csv`` are rebuilt from every table present.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedkit.audio import Windowing
from embedkit.audio.tta import tta_offsets
from embedkit.config import AnalyzeConfig
from embedkit.errors import UsageError
from embedkit.extract.parts import in_part, parse_part
from embedkit.predict import field_io as io
from embedkit.predict.infer import _backbone_groups, _build_checked, _predict_file, _Run
from embedkit.predict.post import blend_weights, column_map, known_scale, remap, smooth_windows
from embedkit.tables.detections import detections, write_detections


@dataclass
class AnalyzeResult:
    """What ``run_analyze`` did."""

    out: Path
    done: list[str] = field(default_factory=list)
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    detections: int = 0
    audio_s: float = 0.0
    elapsed_s: float = 0.0


def _models(cfg: AnalyzeConfig):
    """(models, blend weights, labels, model windowing): the union of the models' labels, or ``--labels``."""
    from embedkit.predict.model import load_model

    if not cfg.models:
        raise UsageError("no --models given")
    models = [load_model(m, trust_pickle=cfg.trust_pickle) for m in cfg.models]
    wts = blend_weights(cfg.weights, len(models))
    labels: list[str] = []
    for m in models:
        labels += [c for c in m.labels if c not in labels]
    wins = {(m.provenance.get("window_s", 5.0), m.provenance.get("hop_s", 5.0)) for m in models}
    if len(wins) > 1:
        raise UsageError(
            f"models use different windows (window_s, hop_s): {sorted(wins)}; blend like with like"
        )
    return models, wts, io.select_labels(cfg.labels, labels), Windowing(*wins.pop())


def _settings(cfg: AnalyzeConfig, models, labels, w: Windowing, smooth: float) -> dict:
    """What decides the tables (a rerun with other values must not reuse them)."""
    return {
        "models": [
            {
                "folder": str(m.folder),
                "model_json": hashlib.sha256((m.folder / "model.json").read_bytes()).hexdigest(),
            }
            for m in models
        ],
        "weights": [float(x) for x in blend_weights(cfg.weights, len(models))],
        "labels": labels,
        "min_score": cfg.min_score,
        "window_s": w.window_s,
        "hop_s": w.hop_s,
        "smooth": smooth,
        "tta": list(tta_offsets(cfg.tta)),
        "format": cfg.format,
    }


def run_analyze(cfg: AnalyzeConfig) -> AnalyzeResult:
    """Analyse every recording (see the module docstring).

    Returns:
        The recordings analysed in this run, those skipped (done before or in another part), failures, the
        number of detections written, the seconds of audio and of wall time.

    Raises:
        UsageError, ModelError, AudioError: unusable inputs, before any table is written.
        KeyboardInterrupt: after Ctrl-C; the tables written so far are complete and kept.
    """
    from embedkit.predict.fusion import FusedParts
    from embedkit.predict.smoothing import resolve_smooth

    t0 = time.monotonic()
    if not 0 <= cfg.min_score <= 1:
        raise UsageError(f"--min-score must be in [0, 1], got {cfg.min_score}")
    models, wts, labels, w_model = _models(cfg)
    hop = cfg.hop_s or w_model.hop_s
    if not 0 < hop:
        raise UsageError(f"--hop-s must be positive, got {hop}")
    w = Windowing(w_model.window_s, hop)
    base, files, rels = io.list_recordings(cfg.audio, cfg.recursive)
    i, n = parse_part(cfg.part)
    out = Path(cfg.out)
    smooth = resolve_smooth(cfg.smooth, models, wts)
    reuse = io.check_settings(out, _settings(cfg, models, labels, w, smooth[0]), cfg.overwrite)
    mine = [k for k, r in enumerate(rels) if in_part(r, i, n)]
    todo = [k for k in mine if not (reuse and io.table_path(out, rels[k], cfg.format).is_file())]
    res = AnalyzeResult(out, skipped=len(rels) - len(todo))
    cmaps = [column_map(m.labels, labels) for m in models]
    scale = known_scale(cmaps, wts)
    run = _Run(models, wts, labels, cmaps, w_model, base, [files[k] for k in todo], 0.0, smooth)
    groups = _backbone_groups(models)
    built = [_build_checked(cfg, run, idxs) for idxs in groups]
    sink = _Sink(cfg, out, base, w, labels, scale, smooth[0], built[0][0].sample_rate / 2)
    # one backbone: all files stream through at once; several: in chunks, each chunk through every backbone
    step = len(todo) if len(groups) == 1 else max(4, 2 * cfg.decode_workers)
    try:
        for c0 in range(0, len(todo), max(step, 1)):
            chunk = list(range(c0, min(c0 + step, len(todo))))
            fused, acc, failed = FusedParts(models), {}, {}
            for gi, (idxs, (bb, _)) in enumerate(zip(groups, built, strict=True)):
                last = gi == len(groups) - 1
                for fe in _stream(cfg, run, bb, idxs, [run.files[k] for k in chunk], w):
                    k = chunk[fe.index]
                    if fe.error is not None:
                        failed.setdefault(k, fe.error)
                    else:
                        for mi, j in idxs:
                            q = _predict_file(fused, mi, j, fe)
                            if q is not None:
                                acc[k] = acc.get(k, 0) + wts[mi] * remap(q, cmaps[mi])
                        res.audio_s += fe.audio_s if last else 0.0
                    if last:
                        sink.finish(res, rels[todo[k]], acc.pop(k, None), failed.get(k))
    except KeyboardInterrupt:
        print(
            f"\n[analyze] interrupted: {len(res.done)} tables written in {out}; rerun to continue",
            file=sys.stderr,
        )
        raise
    finally:
        for bb, _ in built:
            bb.close()
    det_path, _, n_tab = io.combine(out, rels, cfg.format)
    res.elapsed_s = time.monotonic() - t0
    rt = res.audio_s / res.elapsed_s if res.elapsed_s > 0 else 0.0
    print(
        f"[analyze] {len(res.done)} recordings analysed ({res.audio_s / 60:.1f} min of audio, "
        f"{rt:.0f}x realtime), {res.skipped} skipped (done or other parts), {len(res.failures)} failed; "
        f"{res.detections} detections >= {cfg.min_score:g}; smoothing {smooth[0]:g} ({smooth[1]}) -> {out} "
        f"({det_path.name}: {n_tab} recordings)",
        file=sys.stderr,
    )
    for f, r in res.failures[:20]:
        print(
            f"[analyze] could not analyse {f}: {r} (no table written; a rerun tries again)", file=sys.stderr
        )
    return res


def _stream(cfg: AnalyzeConfig, run: _Run, bb, idxs, paths, w: Windowing):
    from embedkit.audio.stream import embed_files

    return embed_files(
        bb,
        paths,
        w,
        batch_size=cfg.batch_size,
        decode_workers=cfg.decode_workers,
        logits=any(run.models[i].meta.get("needs_logits") and j == 0 for i, j in idxs),
        progress=cfg.progress,
        desc=f"analyze {bb.name}",
        offsets=tta_offsets(cfg.tta),
    )


@dataclass
class _Sink:
    """Where and how each finished recording's table is written."""

    cfg: AnalyzeConfig
    out: Path
    base: Path
    w: Windowing
    labels: list[str]
    scale: np.ndarray
    smooth: float
    high_hz: float

    def finish(self, res: AnalyzeResult, rel: str, acc, error: str | None) -> None:
        """Post-process one recording's blended scores [W, C] and write its table."""
        if error is not None or acc is None:
            res.failures.append((rel, error or "no prediction"))
            return
        w, fmt = self.w, self.cfg.format
        p = smooth_windows(np.asarray(acc, np.float32) * self.scale, self.smooth)
        starts = np.arange(len(p)) * w.hop_s
        det = detections(rel, starts, starts + w.window_s, p, self.labels, self.cfg.min_score)
        overlap = max(w.window_s - w.hop_s, 0.0)
        write_detections(io.table_path(self.out, rel, fmt), det, fmt, self.high_hz, overlap, str(self.base))
        res.done.append(rel)
        res.detections += len(det)


def main(cfg: AnalyzeConfig) -> int:
    """CLI body of ``analyze``: 0, 1 when some recordings failed, 130 after an interruption."""
    try:
        res = run_analyze(cfg)
    except KeyboardInterrupt:
        return 130
    return 1 if res.failures else 0


__all__ = ["AnalyzeResult", "main", "run_analyze"]

"""``embedkit analyze``: recordings of any length → the saved model(s) → detection tables.

The field counterpart of ``infer.py``: every recording under ``--audio`` streams through the backbone in
decode blocks (memory stays flat for hours-long files), the models' recipe is applied as in inference
(zero-shot prior, blend, ``--tta``, the learned or given smoothing) and every (window, label) scoring at least
``--min-score`` becomes a detection. Each recording gets its table (Raven, Audacity, CSV, Kaleidoscope or
Parquet, :mod:`embedkit.tables.detections`) as soon as it is done, written atomically; a rerun skips the
recordings whose table exists, so an interrupted run continues where it stopped, and ``--part i/N`` shares
the recordings between N processes (hashing the relative path, as ``extract.py``); ``--engine ray`` shares
them between the actors of a Ray cluster (:mod:`embedkit.predict.analyze_ray`), each running
:class:`Analyser` as this process does. At the end the combined ``detections.csv`` and the per file × label
``summary.csv`` are rebuilt from every table present.
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
from embedkit.predict.fusion import FusedParts
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


@dataclass
class _Setup:
    """What the models and options decide, the same in every process of a run."""

    models: list
    wts: np.ndarray
    labels: list[str]
    w_model: Windowing
    w: Windowing
    smooth: tuple[float, str]


def _setup(cfg: AnalyzeConfig) -> _Setup:
    from embedkit.predict.smoothing import resolve_smooth

    if not 0 <= cfg.min_score <= 1:
        raise UsageError(f"--min-score must be in [0, 1], got {cfg.min_score}")
    models, wts, labels, w_model = _models(cfg)
    hop = cfg.hop_s or w_model.hop_s
    if not 0 < hop:
        raise UsageError(f"--hop-s must be positive, got {hop}")
    w = Windowing(w_model.window_s, hop)
    return _Setup(models, wts, labels, w_model, w, resolve_smooth(cfg.smooth, models, wts))


@dataclass
class _Plan:
    """The run's recordings (``base``, ``files``, ``rels``) and the indices of those to analyse (``todo``)."""

    setup: _Setup
    out: Path
    base: Path
    files: list[Path]
    rels: list[str]
    todo: list[int]


def _plan(cfg: AnalyzeConfig) -> _Plan:
    """Models, recordings, ``--part`` share minus the recordings whose table exists; settings recorded."""
    s = _setup(cfg)
    base, files, rels = io.list_recordings(cfg.audio, cfg.recursive)
    i, n = parse_part(cfg.part)
    out = Path(cfg.out)
    reuse = io.check_settings(out, _settings(cfg, s.models, s.labels, s.w, s.smooth[0]), cfg.overwrite)
    mine = [k for k, r in enumerate(rels) if in_part(r, i, n)]
    todo = [k for k in mine if not (reuse and io.table_path(out, rels[k], cfg.format).is_file())]
    return _Plan(s, out, base, files, rels, todo)


def run_analyze(cfg: AnalyzeConfig) -> AnalyzeResult:
    """Analyse every recording (see the module docstring).

    Returns:
        The recordings analysed in this run, those skipped (done before or in another part), failures, the
        number of detections written, the seconds of audio and of wall time.

    Raises:
        UsageError, ModelError, AudioError: unusable inputs, before any table is written.
        KeyboardInterrupt: after Ctrl-C; the tables written so far are complete and kept.
    """
    t0 = time.monotonic()
    p = _plan(cfg)
    res = AnalyzeResult(p.out, skipped=len(p.rels) - len(p.todo))
    an = Analyser(cfg, p.setup, p.base, p.out)
    try:
        an.run([p.files[k] for k in p.todo], [p.rels[k] for k in p.todo], res)
    except KeyboardInterrupt:
        print(
            f"\n[analyze] interrupted: {len(res.done)} tables written in {p.out}; rerun to continue",
            file=sys.stderr,
        )
        raise
    finally:
        an.close()
    return report(cfg, p, res, t0)


class Analyser:
    """One process's backbones and models: analyses recordings and writes their tables (every engine).

    Args:
        cfg: the run's options.
        s: the models and what they decide (:func:`_setup`).
        base: the analysed folder (Kaleidoscope's ``INDIR``).
        out: the output folder.
    """

    def __init__(self, cfg: AnalyzeConfig, s: _Setup, base: Path, out: Path):
        self.cfg, self.s = cfg, s
        self.cmaps = [column_map(m.labels, s.labels) for m in s.models]
        scale = known_scale(self.cmaps, s.wts)
        self.run_ = _Run(s.models, s.wts, s.labels, self.cmaps, s.w_model, base, [], 0.0, s.smooth)
        self.groups = _backbone_groups(s.models)
        self.built = [_build_checked(cfg, self.run_, idxs) for idxs in self.groups]
        self.sink = _Sink(cfg, out, base, s.w, s.labels, scale, s.smooth[0], self.built[0][0].sample_rate / 2)

    def run(self, files: list[Path], rels: list[str], res: AnalyzeResult) -> None:
        """Analyse ``files`` (named ``rels``); each one's table written, or its failure added to ``res``."""
        cfg, groups, wts, cmaps = self.cfg, self.groups, self.s.wts, self.cmaps
        # one backbone: all files stream through at once; several: in chunks, each through every backbone
        step = len(files) if len(groups) == 1 else max(4, 2 * cfg.decode_workers)
        for c0 in range(0, len(files), max(step, 1)):
            chunk = list(range(c0, min(c0 + step, len(files))))
            fused, acc, failed = FusedParts(self.s.models), {}, {}
            for gi, (idxs, (bb, _)) in enumerate(zip(groups, self.built, strict=True)):
                last = gi == len(groups) - 1
                for fe in _stream(cfg, self.run_, bb, idxs, [files[k] for k in chunk], self.s.w):
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
                        self.sink.finish(res, rels[k], acc.pop(k, None), failed.get(k))

    def close(self) -> None:
        """Release the backbones."""
        for bb, _ in self.built:
            bb.close()


def report(cfg: AnalyzeConfig, p: _Plan, res: AnalyzeResult, t0: float) -> AnalyzeResult:
    """Rebuild the combined tables from every table present and print the run's summary."""
    det_path, _, n_tab = io.combine(p.out, p.rels, cfg.format)
    res.elapsed_s = time.monotonic() - t0
    rt = res.audio_s / res.elapsed_s if res.elapsed_s > 0 else 0.0
    print(
        f"[analyze] {len(res.done)} recordings analysed ({res.audio_s / 60:.1f} min of audio, "
        f"{rt:.0f}x realtime), {res.skipped} skipped (done or other parts), {len(res.failures)} failed; "
        f"{res.detections} detections >= {cfg.min_score:g}; smoothing {p.setup.smooth[0]:g} "
        f"({p.setup.smooth[1]}) -> {p.out} ({det_path.name}: {n_tab} recordings)",
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
        if cfg.engine == "ray":
            from embedkit.predict.analyze_ray import run_analyze_ray

            res = run_analyze_ray(cfg)
        else:
            res = run_analyze(cfg)
    except KeyboardInterrupt:
        return 130
    return 1 if res.failures else 0


__all__ = ["AnalyzeResult", "Analyser", "main", "report", "run_analyze"]

"""``embedkit analyze --engine ray``: the local engine's tables, the recordings shared by Ray actors.

Plan (a Ray Data pipeline of one recording per row; no audio ever travels through Ray)::

    recordings (driver: the --part share minus those whose table exists; settings recorded in analysis.json)
      → an actor pool: each actor loads the models and builds their backbones once, then analyses one
        recording at a time with :class:`embedkit.predict.analyze.Analyser`, the local engine's code (the
        recording streams through the backbone in decode blocks, so an hours-long file keeps memory flat)
        and writes its table atomically straight into ``--out``
      → the driver gets one small row per recording (audio seconds, detections, failure reason)
      → the driver rebuilds ``detections.csv`` and ``summary.csv`` from every table present, as the local
        engine does, so a resumed run's combined tables cover the earlier runs' recordings too

A table is written under its recording's own name, so a recording that Ray retries after a worker died
replaces its table instead of adding a second one. Workers must see ``--audio``, ``--models`` and ``--out``
at the same paths (a shared filesystem on a cluster); relative paths are made absolute on the driver. Your
own backbones on the workers: ``EMBEDKIT_PLUGINS`` (:mod:`embedkit.registry`), set where each node starts.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.config import AnalyzeConfig
from embedkit.errors import UsageError
from embedkit.extract.ray import _connect, _ray, actor_count
from embedkit.predict.analyze import Analyser, AnalyzeResult, _plan, _Setup, report


def _absolute(p: str) -> str:
    return str(Path(p).absolute())


def _worker_cfg(cfg: AnalyzeConfig) -> AnalyzeConfig:
    """The options an actor runs with: the driver's paths made absolute (a worker's folder differs)."""
    weights = {k: _absolute(v) if Path(v).exists() else v for k, v in cfg.backbone_weights.items()}
    return dataclasses.replace(
        cfg, models=[_absolute(m) for m in cfg.models], out=_absolute(cfg.out), backbone_weights=weights,
        progress=False,
    )  # fmt: skip


class _Worker:
    """Ray actor: the models and their backbones, built once; one recording per call.

    Args:
        cfg: the worker's options (:func:`_worker_cfg`).
        setup: the driver's setup without its models (labels, windows, smoothing: the same in every actor).
        base: the analysed folder, as the driver names it (written into Kaleidoscope tables).
    """

    def __init__(self, cfg: AnalyzeConfig, setup: _Setup, base: str):
        from embedkit.predict.model import load_model

        models = [load_model(m, trust_pickle=cfg.trust_pickle) for m in cfg.models]
        self.out = Path(cfg.out)
        self.analyser = Analyser(cfg, dataclasses.replace(setup, models=models), Path(base), self.out)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        out: dict[str, list] = {"rel": [], "audio_s": [], "detections": [], "error": []}
        for rel, path in zip(batch["rel"], batch["path"], strict=True):
            res = AnalyzeResult(self.out)
            try:
                self.analyser.run([Path(str(path))], [str(rel)], res)
                err = res.failures[0][1] if res.failures else ""
            except (ImportError, MemoryError):  # the environment, not the recording: stop the run
                raise
            except Exception as e:  # one bad recording never kills the run; the reason is recorded
                err = f"unexpected {type(e).__name__}: {' '.join(str(e).split())[:200]}"
            for k, v in zip(out, (str(rel), res.audio_s, res.detections, err), strict=True):
                out[k].append(v)
        return {k: np.array(v) for k, v in out.items()}


def run_analyze_ray(cfg: AnalyzeConfig) -> AnalyzeResult:
    """Analyse every recording on Ray; the same tables, resume and ``--part`` as :func:`run_analyze`.

    Args:
        cfg: the options (``ray_address``: a cluster to join; else the running Ray, else a local one;
            ``ray_actors``: analysing actors, default one per GPU or one per 2 CPUs).

    Returns:
        What the run did (also printed), as the local engine returns it.

    Raises:
        UsageError: Ray missing or unreachable, or the local engine's unusable inputs, before any table.
        KeyboardInterrupt: after Ctrl-C; the tables written so far are complete and kept.
    """
    t0 = time.monotonic()
    ray = _ray()
    p = _plan(cfg)
    res = AnalyzeResult(p.out, skipped=len(p.rels) - len(p.todo))
    if p.todo:
        Analyser(cfg, p.setup, p.base, p.out).close()  # backbones build and match the models: checked here
        _connect(ray, cfg.ray_address)
        try:
            _run(ray, cfg, p, res)
        except KeyboardInterrupt:
            print(f"\n[analyze] interrupted: {len(res.done)} tables written in {p.out}; rerun to continue",
                  file=sys.stderr)  # fmt: skip
            raise
    return report(cfg, p, res, t0)


def _run(ray, cfg: AnalyzeConfig, p, res: AnalyzeResult) -> None:
    """Build and drain the Ray Data plan; fill ``res`` from the per-recording rows."""
    actors, gpus = actor_count(ray, cfg.device, cfg.ray_actors)
    ray.data.DataContext.get_current().enable_progress_bars = cfg.progress
    items = [{"rel": p.rels[k], "path": str(p.files[k].absolute())} for k in p.todo]
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), 1000))
    plain = dataclasses.replace(p.setup, models=[])
    ds = ds.map_batches(
        _Worker,
        batch_size=1,  # one recording per call: it streams through the actor's backbone block by block
        fn_constructor_kwargs={"cfg": _worker_cfg(cfg), "setup": plain, "base": str(p.base)},
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpus else 0,
        num_cpus=1,
    )
    try:
        for row in ds.iter_rows():
            rel, err = str(row["rel"]), str(row["error"])
            if err:
                res.failures.append((rel, err))
            else:
                res.done.append(rel)
                res.audio_s += float(row["audio_s"])
                res.detections += int(row["detections"])
    except ray.exceptions.RayError as e:  # e.g. an actor that cannot start (a plugin missing on a node)
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        why = (lines[-1] if lines else type(e).__name__)[:300]
        raise UsageError(f"--engine ray: the run stopped ({why}); the {len(res.done)} tables written are "
                         "kept, a rerun continues") from None


__all__ = ["run_analyze_ray"]

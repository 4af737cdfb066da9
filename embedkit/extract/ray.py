"""Extraction on Ray Data (``embedkit extract --engine ray``): the local engine's shards, from a cluster.

Pipeline (a streaming Ray Data plan, so memory stays bounded and stages overlap)::

    files (driver: the --part share minus files already done)
      → decode: CPU tasks, one file each (soundfile + soxr, the local engine's ``iter_windows``)
      → embed: an actor pool, one backbone per actor (``num_gpus=1`` per actor when the cluster has GPUs)
      → write: tasks that write shards and failure tables straight into the dataset folder
      → the driver gets one small summary row per file (never the embeddings)

Same rows, provenance, failures table and resume semantics as :func:`embedkit.extract.run_extract`: a file's
windows go into one shard, written atomically once all of them are embedded; a rerun skips files already in
shards. A write task names its shard after the files it holds (``part-ray-<sha1 of the sorted file names>``),
so a task that Ray retries after a worker died replaces its own shard instead of adding a second copy.
Workers must see ``--data``/``--files`` and ``--out`` at the same paths (a shared filesystem on a cluster).
"""

from __future__ import annotations

import functools
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.audio import AudioError, Windowing, duration_s, iter_windows
from embedkit.config import ExtractConfig
from embedkit.errors import UsageError
from embedkit.extract.options import backbone_kwargs, say_ignored
from embedkit.extract.parts import in_part, parse_part
from embedkit.extract.run import ExtractSummary, _ShardBuffer, provenance, resolve_inputs
from embedkit.store import ShardWriter, done_files


def _decode(batch: dict[str, np.ndarray], sr: int, w: Windowing) -> dict[str, Any]:
    """Ray task: files → windows (float32 bytes, ``n`` windows each) or a one-line failure reason."""
    out: dict[str, list] = {"rel": [], "n": [], "audio_s": [], "error": [], "wave": []}
    for rel, path in zip(batch["rel"], batch["path"], strict=True):
        wave, n, dur, err = b"", 0, 0.0, ""
        try:
            pieces = [p for _, p in iter_windows(path, sr, w)]
            if pieces:
                x = np.concatenate(pieces).astype(np.float32, copy=False)
                n, wave = len(x), x.tobytes()
                dur = min(duration_s(path), (n - 1) * w.hop_s + w.window_s)
            else:
                err = "no audio windows"
        except AudioError as e:
            err = str(e)
        except (ImportError, MemoryError):  # the environment, not the file: stop the run
            raise
        except Exception as e:  # one bad file never kills the run; the reason is recorded
            err = f"unexpected {type(e).__name__}: {' '.join(str(e).split())[:200]}"
        for k, v in zip(out, (str(rel), n, dur, err, wave), strict=True):
            out[k].append(v)
    return {k: np.array(v, dtype=object if k == "wave" else None) for k, v in out.items()}


class _Embedder:
    """Ray actor: one backbone; windows of a few files per call, ``batch_size`` windows per backbone call."""

    def __init__(self, factory, batch_size: int, logits: bool):
        self.backbone = factory()
        self.batch_size, self.logits = batch_size, logits

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        ns = [int(n) for n in batch["n"]]
        waves = [np.frombuffer(b, np.float32).reshape(n, -1) for b, n in zip(batch["wave"], ns, strict=True)
                 if n]
        embs, lgs = [], []
        if waves:
            X = np.concatenate(waves)
            for s in range(0, len(X), self.batch_size):
                xb = X[s : s + self.batch_size]
                bb = self.backbone
                e, lg = bb.embed_with_logits(xb) if self.logits else (bb.embed(xb), None)
                embs.append(np.asarray(e, np.float32))
                lgs.append(None if lg is None else np.asarray(lg, np.float32))
        E = np.concatenate(embs) if embs else np.zeros((0, 0), np.float32)
        L = np.concatenate(lgs) if self.logits and lgs else None
        out: dict[str, list] = {"rel": [], "n": [], "audio_s": [], "error": [], "emb": [], "logits": []}
        r = 0
        for rel, n, dur, err in zip(batch["rel"], ns, batch["audio_s"], batch["error"], strict=True):
            e = E[r : r + n]
            lg = None if L is None else L[r : r + n]
            r += n
            bad = int((~np.isfinite(e).all(axis=1)).sum()) if n else 0
            if bad:  # never store NaN: the file fails with a reason, as in the local engine
                err = f"backbone returned NaN/inf for {bad} of {n} windows"
            ok = n and not err
            for k, v in zip(out, (str(rel), n if ok else 0, float(dur), str(err), e.tobytes() if ok else b"",
                                  lg.tobytes() if ok and lg is not None else b""), strict=True):
                out[k].append(v)
        return {k: np.array(v, dtype=object if k in ("emb", "logits") else None) for k, v in out.items()}


class _BatchWriter(ShardWriter):
    """A :class:`ShardWriter` whose shard name is fixed by its files: a retried write replaces, never adds."""

    key = ""

    def _name(self, prefix: str) -> Path:
        if prefix == "part" and self.key:
            return self.folder / f"part-ray-{self.key}.parquet"
        return super()._name(prefix)


def _write(batch: dict[str, np.ndarray], out: str, prov: dict, cfg: ExtractConfig) -> dict[str, Any]:
    """Ray task: embedded files → one shard (+ failures table) in ``out``; returns per-file summaries."""
    writer = _BatchWriter(out, prov, cfg.dtype, tag="ray", row_group_size=cfg.shard_rows)
    writer.key = hashlib.sha1("\n".join(sorted(map(str, batch["rel"]))).encode()).hexdigest()[:20]
    buf = _ShardBuffer(writer, cfg)
    for rel, n, err, emb, lg in zip(batch["rel"], batch["n"], batch["error"], batch["emb"], batch["logits"],
                                    strict=True):
        if err:
            buf.failures.append((str(rel), str(err)))
        else:
            e = np.frombuffer(emb, np.float32).reshape(int(n), -1)
            buf.add(str(rel), e, np.frombuffer(lg, np.float32).reshape(int(n), -1) if len(lg) else None)
    buf.flush()
    return {k: batch[k] for k in ("rel", "n", "audio_s", "error")}


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError("--engine ray needs Ray Data: pip install 'embedkit[ray]'") from None
    return ray


def _connect(ray, address: str | None) -> None:
    if ray.is_initialized():
        return
    try:
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
    except ConnectionError as e:
        why = " ".join(str(e).split())[:200]
        raise UsageError(f"--ray-address {address}: cannot connect ({why})") from None


def actor_count(ray, device: str, ray_actors: int | None) -> tuple[int, int]:
    """(actors, cluster GPUs): ``ray_actors``, else one per GPU (unless ``device`` is cpu), else CPUs / 2."""
    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0)) if device != "cpu" else 0
    return ray_actors or max(1, gpus or int(res.get("CPU", 2)) // 2), gpus


def run_extract_ray(cfg: ExtractConfig, backbone_factory=None, files_per_shard: int | None = None):
    """Embed a split with Ray Data; the same outputs and resume semantics as the local engine.

    Args:
        cfg: extraction options (``ray_address``: a cluster to join; else the running Ray, else a local one;
            ``ray_actors``: backbone actors, default one per GPU or one per 2 CPUs).
        backbone_factory: zero-argument callable building the backbone in each actor (default: the
            registered backbone ``cfg.backbone`` with ``cfg``'s options); also called once on the driver for
            the provenance.
        files_per_shard: files per write task, i.e. per shard (default: ``cfg.shard_rows // 12``).

    Returns:
        The run summary (also printed).

    Raises:
        UsageError: Ray missing or unreachable, bad ``--part``/``--dtype``, missing data folders.
    """
    from embedkit.backbones import backbone_class, get_backbone

    t0 = time.monotonic()
    if getattr(cfg, "augment_background", None):
        raise UsageError("--augment-background runs with --engine local only (drop --engine ray)")
    ray = _ray()
    if backbone_factory is None:
        backbone_class(cfg.backbone)
        say_ignored(cfg)
        backbone_factory = functools.partial(get_backbone, cfg.backbone, **backbone_kwargs(cfg))
    w = Windowing(cfg.window_s, cfg.hop_s, cfg.min_tail_s, cfg.max_windows)
    root, files, name = resolve_inputs(cfg)
    i, n = parse_part(cfg.part)
    if cfg.dtype not in ("float16", "float32"):
        raise UsageError(f"--dtype must be float16 or float32, got {cfg.dtype!r}")
    probe = backbone_factory()
    if cfg.save_logits and not hasattr(probe, "embed_with_logits"):
        raise UsageError(f"--save-logits: backbone {probe.name!r} has no class logits")
    out = Path(cfg.out) / probe.name / name
    prov, sr = provenance(probe, cfg, root, name), probe.sample_rate
    probe.close()
    from embedkit.extract.resume import check_resume

    cfg, no_logits = check_resume(out, prov, cfg)  # settings differing from the shards': said, never lost
    if no_logits:
        raise UsageError(f"--save-logits: the shards in {out} have no logits; add them once with --engine "
                         "local (it embeds their files again), then continue with --engine ray")
    ShardWriter(out, {**prov}, cfg.dtype)  # folder writable, provenance agrees: checked before any work
    rels = [p.relative_to(root).as_posix() if p.is_relative_to(root) else p.name for p in files]
    mine = [(r, p) for r, p in zip(rels, files, strict=True) if in_part(r, i, n)]
    done = done_files(out)
    todo = [(r, p) for r, p in mine if r not in done]
    s = ExtractSummary(dataset=out, files_total=len(mine), files_skipped_done=len(mine) - len(todo))
    if todo:
        _connect(ray, cfg.ray_address)
        _run(ray, cfg, todo, sr, w, backbone_factory, out, prov, files_per_shard, s)
    s.elapsed_s = time.monotonic() - t0
    print(s.line(), file=sys.stderr)
    for f, reason in s.failures[:20]:
        print(f"  skipped {f}: {reason}", file=sys.stderr)
    return s


def _run(ray, cfg, todo, sr, w, factory, out: Path, prov, files_per_shard, s: ExtractSummary) -> None:
    """Build and drain the Ray Data plan; fill ``s`` from the per-file summaries."""
    actors, gpus = actor_count(ray, cfg.device, cfg.ray_actors)
    items = [{"rel": r, "path": str(p)} for r, p in todo]
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), 1000))
    ds = ds.map_batches(_decode, batch_size=1, fn_kwargs={"sr": sr, "w": w}, num_cpus=1)
    ds = ds.map_batches(
        _Embedder,
        batch_size=max(1, cfg.batch_size // 8),  # files per actor call; windows batched to cfg.batch_size
        fn_constructor_kwargs={"factory": factory, "batch_size": cfg.batch_size, "logits": cfg.save_logits},
        concurrency=actors,
        num_gpus=1 if gpus else 0,
        num_cpus=1,
    )
    ds = ds.map_batches(
        _write, batch_size=files_per_shard or max(1, cfg.shard_rows // 12),
        fn_kwargs={"out": str(out), "prov": prov, "cfg": cfg}, num_cpus=1,
    )
    for row in ds.iter_rows():
        rel, nw, dur, err = str(row["rel"]), int(row["n"]), float(row["audio_s"]), str(row["error"])
        if err:
            s.failures.append((rel, err))
            s.files_failed += 1
        else:
            s.files_done, s.windows, s.audio_s = s.files_done + 1, s.windows + nw, s.audio_s + dur

"""Extraction: audio files → windows → frozen backbone → parquet shards (``run_extract``).

Decoding runs in worker threads (soundfile and soxr release the GIL) that feed a bounded queue of
window pieces, so decoding overlaps the model and memory stays flat. Windows of several files are
batched together for the backbone. A file's rows are written only once all its windows are embedded,
so after a kill or Ctrl-C a rerun of the same command skips exactly the files already in shards.

One writer per folder and part: a run holds an advisory lock (``.lock-extract-p<i>of<N>``, an ``flock``
plus ``pid@host``; see :mod:`embedkit.store.lock`) for its whole run. A second ``extract`` on the same
folder whose files overlap (same ``--part``, or another split ``N``) is refused with a one-line error
(exit 2) naming the holder, so no file is embedded twice; ``--part i/N`` runs of one split still run side
by side. The lock dies with its process (also SIGKILL); the next run removes the leftover file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.audio import Windowing, list_audio, row_id
from embedkit.audio.stream import embed_files
from embedkit.config import ExtractConfig
from embedkit.errors import UsageError
from embedkit.extract.options import backbone_kwargs, say_ignored
from embedkit.extract.parts import in_part, parse_part
from embedkit.store import ShardWriter, done_files
from embedkit.store.lock import extract_lock

SPLITS = ("train_audio", "train_soundscapes", "test_soundscapes")


@dataclass
class ExtractSummary:
    """What one run did."""

    dataset: Path
    files_total: int = 0
    files_skipped_done: int = 0
    files_done: int = 0
    files_failed: int = 0
    windows: int = 0
    audio_s: float = 0.0
    elapsed_s: float = 0.0
    interrupted: bool = False
    files_logits_added: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def realtime(self) -> float:
        """Seconds of audio embedded per second of wall time."""
        return self.audio_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        """One-line human summary."""
        return (
            f"{self.files_done} files embedded, {self.files_skipped_done} already done, "
            f"{self.files_failed} skipped (failures table), {self.windows} windows, "
            f"{self.audio_s / 60:.1f} min of audio in {self.elapsed_s:.1f} s = {self.realtime:.0f}x realtime"
            f" -> {self.dataset}"
            + (f" (logits added to {self.files_logits_added} done files)" if self.files_logits_added else "")
        )


def resolve_inputs(cfg: ExtractConfig) -> tuple[Path, list[Path], str]:
    """(root, files, dataset name): the audio this run covers; a clear error for missing folders."""
    if cfg.files:
        src = Path(cfg.files)
        if src.is_dir():
            return src, list_audio(src), cfg.name or src.name
        if src.is_file():
            lines = [
                ln.strip() for ln in src.read_text().splitlines() if ln.strip() and not ln.startswith("#")
            ]
            paths = [Path(ln) if Path(ln).is_absolute() else src.parent / ln for ln in lines]
            root = Path(os.path.commonpath([p.parent for p in paths])) if paths else src.parent
            return root, sorted(paths), cfg.name or src.stem
        raise UsageError(f"--files {src}: no such folder or list file")
    data = Path(cfg.data)
    if not data.is_dir():
        raise UsageError(f"data root not found: {data} (pass --data /path/to/birdclef-2025)")
    root = data / cfg.split
    if not root.is_dir():
        raise UsageError(
            f"split folder not found: {root} (--split is one of {', '.join(SPLITS)} or a folder "
            f"under --data; or use --files)"
        )
    return root, list_audio(root), cfg.name or cfg.split


def provenance(backbone, cfg: ExtractConfig, root: Path, name: str) -> dict:
    """Shard provenance: backbone identity + window/hop (compared) and run facts (informational)."""
    return {
        **backbone.identity(),
        **(backbone.extra_provenance() if hasattr(backbone, "extra_provenance") else {}),
        "window_s": cfg.window_s,
        "hop_s": cfg.hop_s,
        "split": name,
        "source": str(root),
        "precision": getattr(backbone, "precision", "fp32"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _sigterm_to_interrupt():
    if threading.current_thread() is threading.main_thread():

        def handler(signum, frame):
            raise KeyboardInterrupt

        return signal.signal(signal.SIGTERM, handler)
    return None


def run_extract(cfg: ExtractConfig, backbone=None) -> ExtractSummary:
    """Embed every window of every file of a split (or list/folder) into a parquet dataset.

    Files already in the dataset are skipped, so rerunning after an interruption continues where it
    stopped. Completed files are written at least every ``cfg.flush_s`` seconds or ``cfg.shard_rows`` rows.

    Args:
        cfg: extraction options.
        backbone: an already built backbone (else built from ``cfg``).

    Returns:
        The run summary (also printed).

    Raises:
        UsageError: missing data folder, bad ``--part``, another extract writing the same folder and part.
        KeyboardInterrupt: after Ctrl-C/SIGTERM, once finished files are safely written.
    """
    from embedkit.backbones import backbone_class, get_backbone

    t0 = time.monotonic()
    held = contextlib.ExitStack()  # the folder's writer lock, for the whole run
    try:
        if backbone is None:
            backbone_class(cfg.backbone)  # an unknown name fails before any other check
        w = Windowing(cfg.window_s, cfg.hop_s, cfg.min_tail_s, cfg.max_windows)
        root, files, name = resolve_inputs(cfg)
        i, n = parse_part(cfg.part)
        if cfg.dtype not in ("float16", "float32"):
            raise UsageError(f"--dtype must be float16 or float32, got {cfg.dtype!r}")
        if backbone is None:
            say_ignored(cfg)
            backbone = get_backbone(cfg.backbone, **backbone_kwargs(cfg))
        if cfg.save_logits and (
            not hasattr(backbone, "embed_with_logits") or getattr(backbone, "logits_dim", None) == 0
        ):
            raise UsageError(f"--save-logits: backbone {backbone.name!r} has no class logits")
        out = Path(cfg.out) / backbone.name / name
        held.enter_context(extract_lock(out, (i, n)))  # a second run on the same files is refused
        prov = provenance(backbone, cfg, root, name)
        augment = None
        if cfg.augment_background:  # K mixed variants per window, extra rows (extract/augment.py)
            from embedkit.extract.augment import Augmenter

            augment = Augmenter(cfg, backbone.sample_rate)
            prov["augment"] = augment.provenance
        from embedkit.extract.resume import add_logits, check_resume

        cfg, no_logits = check_resume(out, prov, cfg)  # settings differing from the shards': said, never lost
        writer = ShardWriter(out, prov, cfg.dtype, tag=f"p{i}of{n}", row_group_size=cfg.shard_rows)
        rels_all = [p.relative_to(root).as_posix() if p.is_relative_to(root) else p.name for p in files]
        mine = [(r, p) for r, p in zip(rels_all, files, strict=True) if in_part(r, i, n)]
        done = done_files(out)
        todo = [(r, p) for r, p in mine if r not in done]
        if augment is not None:
            augment.names = [r for r, _ in todo]
        s = ExtractSummary(dataset=out, files_total=len(mine), files_skipped_done=len(mine) - len(todo))
        buf = _ShardBuffer(writer, cfg, 1 + (augment.variants if augment is not None else 0))
    except BaseException as e:
        held.close()
        if isinstance(e, KeyboardInterrupt):
            print("\ninterrupted before any file was embedded; nothing was written", file=sys.stderr)
        raise
    old = _sigterm_to_interrupt()
    try:
        if no_logits:
            sources = dict(zip(rels_all, files, strict=True))
            s.files_logits_added = add_logits(backbone, cfg, no_logits, sources, w)
        for fe in embed_files(
            backbone,
            [p for _, p in todo],
            w,
            batch_size=cfg.batch_size,
            decode_workers=cfg.decode_workers,
            logits=cfg.save_logits,
            progress=cfg.progress,
            desc=f"{backbone.name} {name}",
            augment=augment,
        ):
            rel = todo[fe.index][0]
            if fe.error is not None:
                buf.failures.append((rel, fe.error))
                s.failures.append((rel, fe.error))
                s.files_failed += 1
            else:
                buf.add(rel, fe.emb, fe.logits)
                s.files_done, s.windows, s.audio_s = (
                    s.files_done + 1,
                    s.windows + len(fe.emb) // buf.m,
                    s.audio_s + fe.audio_s,
                )
            buf.maybe_flush()
        buf.flush()
    except KeyboardInterrupt:
        s.interrupted = True
        buf.flush()  # completed files are kept; windows of unfinished files are dropped
        print(
            f"\ninterrupted: {s.files_done} files saved in {out}; rerun the same command to continue",
            file=sys.stderr,
        )
        raise
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
        held.close()
        s.elapsed_s = time.monotonic() - t0
    print(s.line(), file=sys.stderr)
    for f, reason in s.failures[:20]:
        print(f"  skipped {f}: {reason}", file=sys.stderr)
    return s


class _ShardBuffer:
    """Completed files waiting to be written as one shard (plus their failures)."""

    def __init__(self, writer: ShardWriter, cfg: ExtractConfig, m: int = 1):
        self.writer, self.cfg, self.m = writer, cfg, m  # m = 1 + K rows per window (augmented variants)
        self.keys: list[tuple] = []
        self.emb: list[np.ndarray] = []
        self.logits: list[np.ndarray] = []
        self.failures: list[tuple[str, str]] = []
        self.last = time.monotonic()

    def add(self, rel: str, emb: np.ndarray, logits: np.ndarray | None) -> None:
        stem = Path(rel).stem
        for r in range(len(emb)):
            k, v = divmod(r, self.m)
            start = k * self.cfg.hop_s
            end = start + self.cfg.window_s
            self.keys.append((rel, k, start, end, row_id(stem, end), v))
        self.emb.append(emb)
        if logits is not None:
            self.logits.append(logits)

    def maybe_flush(self) -> None:
        if len(self.keys) >= self.cfg.shard_rows or time.monotonic() - self.last > self.cfg.flush_s:
            self.flush()

    def flush(self) -> None:
        with _interrupts_held():  # a shard on disk and an emptied buffer, or neither: never written twice
            if self.keys:
                cols = ["file", "window", "start_s", "end_s", "row_id", "variant"]
                df = pd.DataFrame(self.keys, columns=cols)
                if self.m == 1:
                    df = df.drop(columns="variant")  # clean extraction: shards exactly as before
                self.writer.write(
                    df, np.concatenate(self.emb), np.concatenate(self.logits) if self.logits else None
                )
                self.keys, self.emb, self.logits = [], [], []
            self.writer.write_failures(self.failures)
            self.failures = []
        self.last = time.monotonic()


@contextlib.contextmanager
def _interrupts_held():
    """Hold Ctrl-C / SIGTERM (where they raise ``KeyboardInterrupt``) until the block is done, then raise."""
    held: list[int] = []
    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            if callable(signal.getsignal(sig)):  # ignored or default-action signals are left alone
                old[sig] = signal.signal(sig, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if held:
        raise KeyboardInterrupt

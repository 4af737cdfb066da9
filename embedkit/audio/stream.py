"""Streaming embedder shared by extraction and inference.

Decoder threads (soundfile and soxr release the GIL) take files from a shared list and put window pieces
on a bounded queue, so decoding overlaps the model and memory stays flat whatever the file lengths. The
consumer batches windows of several files for the backbone and yields each file once all its windows
are embedded.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedkit.audio.decode import AudioError, Windowing, duration_s, iter_windows


@dataclass
class FileEmbedding:
    """One finished file.

    Attributes:
        index: position of the file in the input list.
        emb: float32 [W, D] window embeddings, all finite (``None`` when the file failed, also when the
            backbone returned NaN or inf for one of its windows).
        logits: float32 [W, K] backbone class logits when asked for, else ``None``.
        audio_s: seconds of audio covered.
        error: one-line reason when the file could not be used, else ``None``.
    """

    index: int
    emb: np.ndarray | None
    logits: np.ndarray | None = None
    audio_s: float = 0.0
    error: str | None = None


def _producer(jobs, lock, sr: int, w: Windowing, q: queue.Queue, stop: threading.Event) -> None:
    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    while not stop.is_set():
        with lock:
            job = next(jobs, None)
        if job is None:
            break
        idx, path = job
        n = 0
        try:
            for first, piece in iter_windows(path, sr, w):
                n = first + len(piece)
                if not put(("piece", idx, first, piece)):
                    return
            dur = min(duration_s(path), (n - 1) * w.hop_s + w.window_s) if n else 0.0
            put(("end", idx, n, dur))
        except AudioError as e:
            put(("fail", idx, str(e), None))
        except (ImportError, MemoryError) as e:  # the environment, not the file: stop the run
            put(("fatal", idx, e, None))
            return
        except Exception as e:  # one bad file never kills the run; the reason is recorded
            put(("fail", idx, f"unexpected {type(e).__name__}: {' '.join(str(e).split())[:200]}", None))
    put(("done", None, None, None))


def embed_files(
    backbone,
    paths: Sequence[str | Path],
    w: Windowing | None = None,
    *,
    batch_size: int = 32,
    decode_workers: int = 1,
    logits: bool = False,
    progress: bool = True,
    desc: str = "embed",
) -> Iterator[FileEmbedding]:
    """Embed every window of every file, yielding files as they finish (not necessarily in input order).

    Args:
        backbone: a :class:`~embedkit.backbones.Backbone` (``embed_with_logits`` needed if ``logits``).
        paths: audio files.
        w: windowing (default 5 s windows, 5 s hop).
        batch_size: windows per backbone call.
        decode_workers: decoding threads.
        logits: also return the backbone's class logits.
        progress: show a tqdm bar (files; windows/s and x realtime in the postfix).
        desc: bar label.

    Yields:
        :class:`FileEmbedding` per file, failures included.
    """
    from tqdm import tqdm

    w = w or Windowing()
    if not paths:
        return
    # room for about one batch of pieces (a piece is at most a 30 s decode block), so decoders keep
    # going while the backbone runs instead of stalling the next batch
    q: queue.Queue = queue.Queue(maxsize=max(4, 2 * decode_workers + 2, batch_size // 2))
    stop = threading.Event()
    jobs, lock = iter(enumerate(paths)), threading.Lock()
    workers = [
        threading.Thread(target=_producer, args=(jobs, lock, backbone.sample_rate, w, q, stop), daemon=True)
        for _ in range(max(1, decode_workers))
    ]
    got: dict[int, dict[int, tuple]] = {}
    expected: dict[int, tuple[int, float]] = {}
    batch: list[tuple[int, int, np.ndarray]] = []
    ready: list[FileEmbedding] = []
    t0, n_win, audio = time.monotonic(), 0, 0.0
    bar = tqdm(
        total=len(paths), unit="file", desc=desc, disable=not progress, file=sys.stderr, dynamic_ncols=True
    )

    def complete(idx: int) -> None:
        nonlocal n_win, audio
        if idx in expected and len(got.get(idx, ())) == expected[idx][0]:
            n, dur = expected.pop(idx)
            rows = got.pop(idx, {})
            emb = np.stack([rows[k][0] for k in range(n)])
            lg = np.stack([rows[k][1] for k in range(n)]) if logits else None
            bad = int((~np.isfinite(emb).all(axis=1)).sum())
            if bad:  # never store or score NaN: the file fails with a reason, like an unreadable one
                reason = f"backbone returned NaN/inf for {bad} of {n} windows"
                ready.append(FileEmbedding(idx, None, error=reason))
            else:
                ready.append(FileEmbedding(idx, emb, lg, dur))
                n_win, audio = n_win + n, audio + dur
            bar.update(1)

    def run_batch() -> None:
        if not batch:
            return
        x = np.stack([b[2] for b in batch])
        e, lg = backbone.embed_with_logits(x) if logits else (backbone.embed(x), None)
        for r, (idx, k, _) in enumerate(batch):
            got.setdefault(idx, {})[k] = (e[r], None if lg is None else lg[r])
        touched = {b[0] for b in batch}
        batch.clear()
        for idx in touched:
            complete(idx)

    try:
        for t in workers:
            t.start()
        running = len(workers)
        while running:
            kind, idx, a, b = q.get()
            if kind == "done":
                running -= 1
            elif kind == "piece":
                for j, win in enumerate(b):
                    batch.append((idx, a + j, win))
                    if len(batch) >= batch_size:
                        run_batch()
            elif kind == "fatal":
                raise a
            elif kind == "end":
                expected[idx] = (a, b)
                complete(idx)
            else:
                got.pop(idx, None)
                batch[:] = [x for x in batch if x[0] != idx]
                ready.append(FileEmbedding(idx, None, error=a))
                bar.update(1)
            if not running:
                run_batch()
            el = max(time.monotonic() - t0, 1e-9)
            bar.set_postfix_str(f"{n_win / el:.1f} win/s, {audio / el:.0f}x realtime", refresh=False)
            yield from ready
            ready.clear()
        run_batch()
        yield from ready
    finally:
        stop.set()
        for t in workers:  # let decoders drop their files and resamplers before the caller goes on or exits
            if t.is_alive():
                t.join(timeout=10)
        bar.close()

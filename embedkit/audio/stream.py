"""Streaming embedder shared by extraction and inference.

Decoder threads (soundfile and soxr release the GIL) take files from a shared list and put window pieces
on a bounded queue, so decoding overlaps the model and memory stays flat whatever the file lengths. The
consumer batches windows of several files for the backbone and yields each file once all its windows
are embedded.
"""

from __future__ import annotations

import queue
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
        shifted: float32 [S, W, D] embeddings of the windows shifted by each TTA offset (``offsets`` of
            :func:`embed_files`, :mod:`embedkit.audio.tta`), else ``None``.
        shifted_logits: float32 [S, W, K] their logits when asked for, else ``None``.
        audio_s: seconds of audio covered.
        error: one-line reason when the file could not be used, else ``None``.
    """

    index: int
    emb: np.ndarray | None
    logits: np.ndarray | None = None
    audio_s: float = 0.0
    error: str | None = None
    shifted: np.ndarray | None = None
    shifted_logits: np.ndarray | None = None


def _windows(path, sr: int, w: Windowing, offsets: tuple[float, ...]):
    """Pieces [k, S] of a file, or [k, 1 + S, S] with each window's TTA variants when ``offsets``."""
    if not offsets:
        return iter_windows(path, sr, w)
    from embedkit.audio.tta import iter_shifted_windows

    return iter_shifted_windows(path, sr, offsets, w)


def _producer(jobs, lock, sr: int, w: Windowing, q: queue.Queue, stop: threading.Event, offsets=()) -> None:
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
            for first, piece in _windows(path, sr, w, offsets):
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


def _decoders(paths, sr: int, w: Windowing, batch_size: int, decode_workers: int, offsets=()):
    """Make the decoder threads (not started) over a shared job list.

    Returns:
        ``(q, stop, workers)``: the bounded queue of messages, the event that tells decoders to stop and
        the threads.
    """
    # room for about one batch of pieces (a piece is at most a 30 s decode block), so decoders keep
    # going while the backbone runs instead of stalling the next batch
    q: queue.Queue = queue.Queue(maxsize=max(4, 2 * decode_workers + 2, batch_size // 2))
    stop = threading.Event()
    jobs, lock = iter(enumerate(paths)), threading.Lock()
    workers = [
        threading.Thread(target=_producer, args=(jobs, lock, sr, w, q, stop, offsets), daemon=True)
        for _ in range(max(1, decode_workers))
    ]
    return q, stop, workers


def _stop_decoders(stop: threading.Event, workers: list[threading.Thread]) -> None:
    """Tell decoders to stop and wait for them (they drop their files and resamplers first)."""
    stop.set()
    for t in workers:  # let decoders drop their files and resamplers before the caller goes on or exits
        if t.is_alive():
            t.join(timeout=10)


class _Assembler:
    """Consumer side: batches windows of several files for the backbone and assembles finished files.

    Finished files collect in ``ready`` (the caller yields and clears it).
    """

    def __init__(self, backbone, batch_size: int, logits: bool, bar, variants: int = 1, augment=None) -> None:
        self.backbone, self.batch_size, self.logits, self.bar = backbone, batch_size, logits, bar
        if augment is not None and variants > 1:
            raise ValueError("training-time augmentation and TTA offsets cannot be combined in one run")
        self.augment = augment  # (file, window, samples) -> K variants, embedded after the clean window
        self.variants = variants if augment is None else 1 + augment.variants  # 1 + TTA offsets, or 1 + K
        # file -> (window index, variant) -> (emb [D], logits [K] | None)
        self.got: dict[int, dict[tuple[int, int], tuple]] = {}
        self.expected: dict[int, tuple[int, float]] = {}  # file -> (windows, seconds), once decoded
        self.batch: list[tuple[int, tuple[int, int], np.ndarray]] = []  # (file, (window, variant), [S])
        self.ready: list[FileEmbedding] = []
        self.t0, self.n_win, self.audio = time.monotonic(), 0, 0.0

    def add_piece(self, idx: int, first: int, piece: np.ndarray) -> None:
        """Queue windows ``first..`` of file ``idx`` (piece: [n, S] or [n, V, S]), running full batches."""
        for j, win in enumerate(piece):
            k = first + j
            if piece.ndim == 3:  # TTA: the decoder cut the shifted windows
                xs = list(win)
            else:
                xs = [win, *(self.augment(idx, k, win) if self.augment is not None else [])]
            for v, x in enumerate(xs):
                self.batch.append((idx, (k, v), x))
                if len(self.batch) >= self.batch_size:
                    self.run_batch()

    def end(self, idx: int, n: int, dur: float) -> None:
        """File ``idx`` is fully decoded: ``n`` windows covering ``dur`` seconds."""
        self.expected[idx] = (n, dur)
        self.complete(idx)

    def fail(self, idx: int, reason: str) -> None:
        """File ``idx`` failed to decode: drop its windows and record the reason."""
        self.got.pop(idx, None)
        self.batch[:] = [x for x in self.batch if x[0] != idx]
        self.ready.append(FileEmbedding(idx, None, error=reason))
        self.bar.update(1)

    def run_batch(self) -> None:
        """Embed the pending windows in one backbone call and complete the files they finish."""
        if not self.batch:
            return
        x = np.stack([b[2] for b in self.batch])
        bb = self.backbone
        e, lg = bb.embed_with_logits(x) if self.logits else (bb.embed(x), None)
        for r, (idx, k, _) in enumerate(self.batch):
            self.got.setdefault(idx, {})[k] = (e[r], None if lg is None else lg[r])
        touched = {b[0] for b in self.batch}
        self.batch.clear()
        for idx in touched:
            self.complete(idx)

    def complete(self, idx: int) -> None:
        """Assemble file ``idx`` into ``ready`` once it is decoded and all its windows are embedded."""
        V = self.variants
        if idx not in self.expected or len(self.got.get(idx, ())) != self.expected[idx][0] * V:
            return
        n, dur = self.expected.pop(idx)
        rows = self.got.pop(idx, {})
        E = np.stack([[rows[(k, v)][0] for k in range(n)] for v in range(V)])  # [V, W, D]
        lg = np.stack([[rows[(k, v)][1] for k in range(n)] for v in range(V)]) if self.logits else None
        emb = E[0]
        bad = int((~np.isfinite(E).all(axis=2)).any(axis=0).sum())
        if bad:  # never store or score NaN: the file fails with a reason, like an unreadable one
            reason = f"backbone returned NaN/inf for {bad} of {n} windows"
            self.ready.append(FileEmbedding(idx, None, error=reason))
        elif self.augment is not None:  # rows k * V + v: window k, variant v (0 = clean)
            flat = E.transpose(1, 0, 2).reshape(n * V, -1)
            lgf = None if lg is None else lg.transpose(1, 0, 2).reshape(n * V, -1)
            self.ready.append(FileEmbedding(idx, flat, lgf, dur))
            self.n_win, self.audio = self.n_win + n, self.audio + dur
        else:
            sh, shl = (E[1:], None if lg is None else lg[1:]) if V > 1 else (None, None)
            self.ready.append(FileEmbedding(idx, emb, None if lg is None else lg[0], dur, None, sh, shl))
            self.n_win, self.audio = self.n_win + n, self.audio + dur
        self.bar.update(1)

    def show_speed(self) -> None:
        """Windows/s and x realtime in the bar's postfix."""
        el = max(time.monotonic() - self.t0, 1e-9)
        speed = f"{self.n_win / el:.1f} win/s, {self.audio / el:.0f}x realtime"
        self.bar.set_postfix_str(speed, refresh=False)


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
    offsets: tuple[float, ...] = (),
    augment=None,
) -> Iterator[FileEmbedding]:
    """Embed every window of every file, yielding files as they finish (not necessarily in input order).

    Args:
        backbone: a :class:`~embedkit.backbones.Backbone` (``embed_with_logits`` needed if ``logits``).
        paths: audio files.
        w: windowing (default 5 s windows, 5 s hop).
        batch_size: windows per backbone call.
        decode_workers: decoding threads.
        logits: also return the backbone's class logits.
        progress: show a tqdm bar (files; windows/s and x realtime in the postfix); off a terminal, a rate
            line every few seconds (:func:`embedkit.progress.bar`).
        desc: bar label.
        offsets: TTA offsets in seconds (:func:`embedkit.audio.tta.tta_offsets`): each window is also
            embedded shifted by each (``FileEmbedding.shifted``); the speed shown counts unshifted windows.
        augment: optional callable ``(file index, window index, window [S]) -> K windows [S]`` with an
            attribute ``variants`` (K): each window is embedded clean and as its K variants, and a file's
            ``emb`` has ``W * (1 + K)`` rows, row ``k * (1 + K) + v`` = window k, variant v (0 = clean).
            Not together with ``offsets``.

    Yields:
        :class:`FileEmbedding` per file, failures included.
    """
    from embedkit.progress import bar as progress_bar

    w = w or Windowing()
    if not paths:
        return
    bar = progress_bar(len(paths), desc, "file", enabled=progress)  # off a terminal: a rate line every 5 s
    q, stop, workers = _decoders(paths, backbone.sample_rate, w, batch_size, decode_workers, tuple(offsets))
    asm = _Assembler(backbone, batch_size, logits, bar, 1 + len(offsets), augment)
    try:
        for t in workers:
            t.start()
        running = len(workers)
        while running:
            kind, idx, a, b = q.get()
            if kind == "done":
                running -= 1
            elif kind == "piece":
                asm.add_piece(idx, a, b)
            elif kind == "fatal":
                raise a
            elif kind == "end":
                asm.end(idx, a, b)
            else:
                asm.fail(idx, a)
            if not running:
                asm.run_batch()
            asm.show_speed()
            yield from asm.ready
            asm.ready.clear()
        asm.run_batch()
        yield from asm.ready
    finally:
        _stop_decoders(stop, workers)
        bar.close()

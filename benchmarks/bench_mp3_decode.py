"""MP3 block decoding: embedkit's seek-free reader vs one whole ``soundfile.read`` and per-block ``f.read``.

Real recordings (the longest xeno-canto files of ``../shared/data``, each repeated to ``--minutes``, then
resampled to 22.05 kHz mono and MP3-encoded like the field recordings of issue 13), decoded three ways:

- whole: ``soundfile.read`` of the file (the reference samples; memory grows with the file);
- per-block ``f.read``: what embedkit did before (``SoundFile.read`` seeks after every call, which restarts
  the MP3 decoder at each 30 s block boundary);
- embedkit: :func:`embedkit.audio.stream_mono` at the file's rate (seek-free 30 s blocks).

Reports differing samples against the whole read (clipped to [-1, 1] for embedkit, which clips; a loud
recording decodes to a few samples past full scale), and decode time (best of ``--reps``, interleaved).

    python benchmarks/bench_mp3_decode.py
    python benchmarks/bench_mp3_decode.py --files 2 --minutes 3
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import XC, header, require_shared, table  # noqa: E402


def _per_block(path: Path, block_s: float = 30.0) -> np.ndarray:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        n, parts = int(block_s * f.samplerate), []
        while True:
            parts.append(f.read(n, dtype="float32"))
            if len(parts[-1]) < n:
                return np.concatenate(parts)


def _best(fn, reps: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None) -> None:
    import soundfile as sf
    import soxr

    from embedkit.audio import stream_mono

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    require_shared()
    rows = list(csv.DictReader(open(XC / "train.csv")))
    rows.sort(key=lambda r: -float(r["duration_s"]))
    header("MP3 block decoding: seek-free vs whole read vs per-block f.read",
           f"{args.files} real xeno-canto recordings looped to {args.minutes:g} min, 22.05 kHz mono MP3, "
           f"30 s blocks; best of {args.reps}.")
    out, sr = [], 22050
    t_new = t_whole = t_old = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-mp3-") as tmp:
        for r in rows[: args.files]:
            x, sr_in = sf.read(str(XC / "train_audio" / r["filename"]), dtype="float32")
            x = soxr.resample(x, sr_in, sr, quality="HQ")
            x = np.tile(x, int(np.ceil(args.minutes * 60 * sr / len(x))))[: int(args.minutes * 60 * sr)]
            p = Path(tmp) / (Path(r["filename"]).stem + ".mp3")
            sf.write(str(p), x, sr, format="MP3")
            devnull = os.open(os.devnull, os.O_WRONLY)
            saved = os.dup(2)
            os.dup2(devnull, 2)  # the old reader's libmpg123 lines
            try:
                tw, whole = _best(lambda p=p: sf.read(str(p), dtype="float32")[0], args.reps)
                to, old = _best(lambda p=p: _per_block(p), args.reps)
                tn, new = _best(lambda p=p: np.concatenate(list(stream_mono(p, sr))), args.reps)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                os.close(devnull)
            t_new, t_whole, t_old = t_new + tn, t_whole + tw, t_old + to
            d_old, d_new = np.abs(old - whole), np.abs(new - np.clip(whole, -1, 1))  # stream_mono clips
            out.append({"file": p.name, "min": len(whole) / sr / 60,
                        "per-block f.read: samples differing": int((d_old > 0).sum()),
                        "> 1e-3": int((d_old > 1e-3).sum()), "max abs": float(d_old.max()),
                        "embedkit: samples differing": int((d_new > 0).sum()),
                        "whole s": tw, "per-block s": to, "embedkit s": tn})
    print(table(out) + "\n")
    exact = all(r["embedkit: samples differing"] == 0 for r in out)
    print(f"ratio: MP3 decode, embedkit seek-free blocks / whole soundfile.read time: {t_new / t_whole:.2f}x "
          f"(exact on {len(out)} of {len(out)} files: {'yes' if exact else 'NO'}); per-block f.read / whole: "
          f"{t_old / t_whole:.2f}x")


if __name__ == "__main__":
    main()

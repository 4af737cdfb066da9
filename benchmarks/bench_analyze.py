"""``embedkit analyze`` on one long recording: peak RSS and speed against ``extract.py`` on the same audio.

The recording: the shared field backgrounds (``../shared/data/backgrounds``, 27 min in all) decoded at 32 kHz
and repeated in a seeded order until ``--hours`` (default 3) are written, as 16-bit FLAC in 1M-sample blocks
(memory stays flat while writing; libsndfile cannot write more than about 2M Vorbis samples in one call).
The model: ``extract.py`` + ``fit.py --folds 0`` (logreg) on 2 windows of each xc-pr-birds recording.

Timed, each in its own child process (wall time, CPU time and peak RSS of the whole command):
``extract.py --files DIR`` (embeddings written as shards) and ``embedkit analyze --audio DIR`` (the defaults a
user gets: no TTA, the model's 5 s hop, Raven tables) on the same long file with the same backbone.
Targets: analyze's peak RSS < 1.5 GB, and its speed >= 0.8 x extraction's (wall ratio extract / analyze).

    python benchmarks/bench_analyze.py               # 3 hours, birdnet
    python benchmarks/bench_analyze.py --hours 0.5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import REPO, SHARED, VENV_PY, header, require_shared, run_child, table  # noqa: E402

BLOCK = 1 << 20
RSS_TARGET_MB = 1536.0


def compose(path: Path, hours: float, sr: int = 32000, seed: int = 0) -> float:
    """Write ``hours`` of the backgrounds, repeated in a seeded order, as FLAC in blocks; seconds written."""
    import soundfile as sf

    from embedkit.audio import load_mono

    bgs = sorted((SHARED / "backgrounds").glob("*.ogg"))
    rng = np.random.default_rng(seed)
    need, done = int(hours * 3600 * sr), 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(str(path), "w", sr, 1, "PCM_16", format="FLAC") as f:
        while done < need:
            for k in rng.permutation(len(bgs)):
                x = load_mono(bgs[k], sr)[: need - done]
                for a in range(0, len(x), BLOCK):
                    f.write(np.clip(x[a : a + BLOCK], -1, 1))
                done += len(x)
                if done >= need:
                    break
    return done / sr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=3.0, help="length of the composed recording")
    ap.add_argument("--backbone", default="birdnet")
    ap.add_argument("--workdir", help="keep the files here (default: a temporary folder)")
    args = ap.parse_args()
    require_shared()
    with tempfile.TemporaryDirectory(prefix="bench-analyze-") as tmp:
        work = Path(args.workdir or tmp)
        rec = work / "long" / "site1" / "recording.flac"
        secs = compose(rec, args.hours) if not rec.is_file() else None
        import soundfile as sf

        secs = secs or sf.info(str(rec)).duration
        header(
            f"analyze: one {secs / 3600:.2f} h recording, {args.backbone}",
            f"Composed from the shared backgrounds: {rec.stat().st_size / 1e6:.0f} MB FLAC.",
        )
        py, emb, models = VENV_PY, work / "emb", work / "models"
        xc = SHARED / "xc-pr-birds"
        bb, long = ["--backbone", args.backbone], str(rec.parents[1])
        run_child([py, str(REPO / "extract.py"), *bb, "--data", str(xc), "--out", str(emb),
                   "--max-windows", "2", "--no-progress"])  # fmt: skip
        run_child([py, str(REPO / "fit.py"), *bb, "--data", str(xc), "--embeddings", str(emb), "--out",
                   str(models), "--head", "logreg", "--folds", "0", "--name", "m"])  # fmt: skip
        ext = run_child([py, str(REPO / "extract.py"), *bb, "--files", long, "--name", "long",
                         "--out", str(emb), "--no-progress"])  # fmt: skip
        ana = run_child([py, "-m", "embedkit", "analyze", "--models", str(models / "m"), "--audio", long,
                         "--recursive", "--out", str(work / "analysis"), "--no-progress"])  # fmt: skip
        rows = [
            {"command": c, "wall s": round(r.wall_s, 1), "cpu s": round(r.cpu_s, 1),
             "x realtime": round(secs / r.wall_s), "peak RSS MB": round(r.maxrss_mb)}
            for c, r in (("extract.py", ext), ("embedkit analyze", ana))
        ]  # fmt: skip
        print(table(rows) + "\n")
        n_det = sum(1 for _ in open(work / "analysis" / "detections.csv")) - 1
        print(f"analyze wrote {n_det} detections (>= 0.5) of {secs / 5:.0f} windows.\n")
        speed = ext.wall_s / ana.wall_s
        ok_rss, ok_speed = ana.maxrss_mb < RSS_TARGET_MB, speed >= 0.8
        print(f"ratio: analyze peak RSS on a {secs / 3600:.1f} h file: {ana.maxrss_mb:.0f} MB "
              f"(target < {RSS_TARGET_MB:.0f} MB: {'met' if ok_rss else 'MISSED'})")  # fmt: skip
        print(f"ratio: analyze speed / extract.py speed, same audio: {speed:.2f}x "
              f"(target >= 0.8: {'met' if ok_speed else 'MISSED'})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

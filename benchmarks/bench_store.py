"""Store: write and read 100k x 1024 window embeddings as parquet shards vs a plain .npy file.

Rows look like extraction's: 12 windows per file, keys (file, window, start_s, end_s, row_id), shards of
8192 rows (extraction's default ``--shard-rows``), written with :class:`embedkit.store.ShardWriter` in float16
(the default) and float32. Read: :func:`embedkit.store.read_embeddings` (keys DataFrame + float32 [N, D],
sorted, de-duplicated, provenance checked) vs ``np.load`` of the same float32 array. Files are warm in the
page cache on both sides (just written); best of ``--reps`` interleaved reads.

    python benchmarks/bench_store.py               # 100k x 1024
    python benchmarks/bench_store.py --rows 20000
    python benchmarks/bench_store.py --big 1000000  # 1M x 1024 float16 (2 GB): streamed + filtered reads

``--big N`` writes N windows shard by shard (never holding them all) and measures what a dataset bigger than
a comfortable whole read needs: one streaming pass with :func:`embedkit.store.iter_embeddings`, a pushed-down
file filter (10 % of the files) with :func:`embedkit.store.read_embeddings`, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import header, table  # noqa: E402


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def synth_keys(lo: int, hi: int, n: int):
    """Keys of windows ``lo:hi`` of an ``n``-window dataset (12 windows per file, files in written order)."""
    import pandas as pd

    from embedkit.audio import row_id

    k = np.arange(lo, hi)
    n_files = (n + 11) // 12
    files = [f"sp{f * 206 // n_files:03d}/XC{f:07d}.ogg" for f in k // 12]
    keys = pd.DataFrame({"file": files, "window": k % 12, "start_s": (k % 12) * 5.0,
                         "end_s": (k % 12) * 5.0 + 5.0})
    keys["row_id"] = [row_id(Path(f).stem, e) for f, e in zip(keys["file"], keys["end_s"], strict=True)]
    return keys


def big(n: int, d: int, shard_rows: int) -> None:
    """Write ``n`` x ``d`` float16 windows shard by shard; time a streamed pass and a filtered read."""
    import resource

    from embedkit.store import ShardWriter, iter_embeddings, read_embeddings

    def rss_gb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    header("Store at scale: streamed and filtered reads",
           f"{n:,} windows x {d} dims, float16 shards of {shard_rows} rows ({n * d * 2 / 2**30:.1f} GiB of "
           f"vectors; float32 in memory would be {n * d * 4 / 2**30:.1f} GiB).")
    prov = {"backbone": "bench", "dim": d, "sample_rate": 48000, "weights": "none", "window_s": 5.0,
            "hop_s": 5.0}
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-store-big-") as tmp:
        folder = Path(tmp)
        w = ShardWriter(folder, prov, dtype="float16", row_group_size=shard_rows)
        t = time.perf_counter()
        for s in range(0, n, shard_rows):
            m = min(shard_rows, n - s)
            w.write(synth_keys(s, s + m, n), np.maximum(rng.standard_normal((m, d), dtype=np.float32), 0))
        rows.append({"step": "write (ShardWriter, float16)", "s": time.perf_counter() - t,
                     "rows": n, "peak RSS GiB so far": rss_gb()})
        print(f"  wrote {folder_bytes(folder) / 2**30:.2f} GiB", file=sys.stderr, flush=True)
        t = time.perf_counter()
        seen, total = 0, 0.0
        for _, X in iter_embeddings(folder, batch_rows=65536):
            seen += len(X)
            total += float(X[:, 0].sum())
        rows.append({"step": "iter_embeddings, batch_rows=65536 (one pass)", "s": time.perf_counter() - t,
                     "rows": seen, "peak RSS GiB so far": rss_gb()})
        assert seen == n
        n_files = (n + 11) // 12
        pick = [f"sp{f * 206 // n_files:03d}/XC{f:07d}.ogg" for f in range(0, n_files, 10)]
        t = time.perf_counter()
        keys, X = read_embeddings(folder, files=pick, columns=["row_id"])
        rows.append({"step": "read_embeddings(files=10 % of files) (pushed down)",
                     "s": time.perf_counter() - t, "rows": len(keys), "peak RSS GiB so far": rss_gb()})
        del keys, X
        t = time.perf_counter()
        keys, X = read_embeddings(folder, filters=[("window", "<", 1)])
        rows.append({"step": "read_embeddings(filters=window < 1) (pushed down)",
                     "s": time.perf_counter() - t, "rows": len(keys), "peak RSS GiB so far": rss_gb()})
    print(table(rows) + "\n")
    rate = n / rows[1]["s"]
    print(f"ratio: streamed read of {n:,} x {d} float16 windows: {rate / 1e3:.0f}k windows/s, peak RSS "
          f"{rss_gb():.2f} GiB = {rss_gb() * 2**30 / (n * d * 4):.2f}x the float32 size of the embeddings")


def main(argv=None) -> None:
    import pandas as pd

    from embedkit.audio import row_id
    from embedkit.store import ShardWriter, read_embeddings

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--shard-rows", type=int, default=8192)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--big", type=int, metavar="N", help="only the at-scale part with N windows (see above)")
    args = ap.parse_args(argv)
    if args.big:
        return big(args.big, args.dim, args.shard_rows)
    n, d = args.rows, args.dim
    header("Store: parquet shards vs np.load",
           f"{n:,} windows x {d} dims (12 windows per file), shards of {args.shard_rows} rows, warm page "
           f"cache.")
    rng = np.random.default_rng(0)
    X = np.maximum(rng.standard_normal((n, d), dtype=np.float32), 0)
    k = np.arange(n)
    n_files = (n + 11) // 12
    files = [f"sp{f * 206 // n_files:03d}/XC{f:07d}.ogg" for f in k // 12]  # sorted = written order
    keys = pd.DataFrame({"file": files, "window": k % 12, "start_s": (k % 12) * 5.0,
                         "end_s": (k % 12) * 5.0 + 5.0})
    keys["row_id"] = [row_id(Path(f).stem, e) for f, e in zip(keys["file"], keys["end_s"], strict=True)]
    prov = {"backbone": "bench", "dim": d, "sample_rate": 48000, "weights": "none", "window_s": 5.0,
            "hop_s": 5.0}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        work = Path(tmp)
        npy = work / "x.npy"
        t = time.perf_counter()
        np.save(npy, X)
        npy_write = time.perf_counter() - t
        writes, folders = {}, {}
        for dtype in ("float16", "float32"):
            folder = work / dtype
            w = ShardWriter(folder, prov, dtype=dtype, row_group_size=args.shard_rows)
            t = time.perf_counter()
            for s in range(0, n, args.shard_rows):
                w.write(keys.iloc[s : s + args.shard_rows], X[s : s + args.shard_rows])
            writes[dtype], folders[dtype] = time.perf_counter() - t, folder
            print(f"  write {dtype}: {writes[dtype]:.2f} s", file=sys.stderr, flush=True)
        reads: dict[str, list[float]] = {"npy": [], "float16": [], "float32": []}
        for _ in range(args.reps):
            for what in ("npy", "float16", "float32"):
                t = time.perf_counter()
                if what == "npy":
                    Y = np.load(npy)
                else:
                    _, Y = read_embeddings(folders[what])
                reads[what].append(time.perf_counter() - t)
                print(f"  read {what}: {reads[what][-1]:.2f} s", file=sys.stderr, flush=True)
                assert Y.shape == (n, d) and Y.dtype == np.float32
                if what == "float32":
                    assert np.array_equal(Y, X)
                del Y
        base = min(reads["npy"])
        import pyarrow.parquet as pq
        import torch

        from embedkit.store import shard_paths

        parts = {"decode": [], "cast": [], "numpy cast": []}
        h = X.astype(np.float16)
        out = np.empty_like(X)
        for _ in range(args.reps):
            t = time.perf_counter()
            for sp in shard_paths(folders["float16"]):
                pq.read_table(sp, columns=["emb"])
            parts["decode"].append(time.perf_counter() - t)
            t = time.perf_counter()
            torch.from_numpy(out).copy_(torch.from_numpy(h))
            parts["cast"].append(time.perf_counter() - t)
            t = time.perf_counter()
            h.astype(np.float32)
            parts["numpy cast"].append(time.perf_counter() - t)
        parts = {k: min(v) for k, v in parts.items()}
        rows.append({"format": "np.save / np.load (float32 .npy)", "write s": npy_write,
                     "read s (best)": base, "read / np.load": 1.0, "MB on disk": npy.stat().st_size / 2**20,
                     "bytes per window": npy.stat().st_size / n})
        for dtype in ("float16", "float32"):
            size = folder_bytes(folders[dtype])
            rows.append({"format": f"embedkit shards, {dtype}", "write s": writes[dtype],
                         "read s (best)": min(reads[dtype]), "read / np.load": min(reads[dtype]) / base,
                         "MB on disk": size / 2**20, "bytes per window": size / n})
    print(table(rows) + "\n")
    print(f"Where the float16 read goes (best of {args.reps}): parquet decode of the ``emb`` column alone "
          f"{parts['decode']:.2f} s (fixed-size binary: a Parquet FIXED_LEN_BYTE_ARRAY, no repetition/"
          f"definition levels; the FixedSizeList layout of embedkit 0.1.0 took ~0.4 s here), float16 -> "
          f"float32 cast into the output with torch {parts['cast']:.2f} s (numpy's astype: "
          f"{parts['numpy cast']:.2f} s), "
          f"np.load {base:.2f} s; the rest is the keys (strings to pandas, sort, duplicate check).\n")
    r16, r32 = min(reads["float16"]) / base, min(reads["float32"]) / base
    f16 = next(r for r in rows if r["format"].endswith("float16"))["MB on disk"]
    f32 = next(r for r in rows if r["format"].endswith("float32"))["MB on disk"]
    ok = "met" if r16 <= 4 else "NOT met"
    print(f"ratio: store read (float16 shards -> float32 numpy) / np.load: {r16:.1f}x "
          f"(float32 shards {r32:.1f}x; goal <= 4x: {ok})")
    print(f"ratio: store bytes on disk, float16 / float32 shards: {f16 / f32:.2f} "
          f"({f16:.0f} MB vs {f32:.0f} MB)")


if __name__ == "__main__":
    main()

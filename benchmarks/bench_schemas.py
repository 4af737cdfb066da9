"""Cost of the load-time schema checks (issue 24 item 1), as a ratio to the parse they follow.

A BirdCLEF-sized ``model.json`` (206 labels, priors, per-class CV scores, a tuning grid) is parsed with
``json.loads`` (the reference) and with ``embedkit.schemas.read_json`` + ``model_meta`` (bounded parse, depth
and integer walk, pydantic validation); an index's rows table of N rows is read from parquet (the reference)
and checked with ``check_table``. Best of ``--reps`` each, in this run.

    python benchmarks/bench_schemas.py
    python benchmarks/bench_schemas.py --rows 1000000 --reps 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's embedkit


def best(fn, reps: int) -> float:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=500_000, help="rows of the index table")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq

    from embedkit.schemas import INDEX_ROWS, check_table, model_meta, read_json

    rng = np.random.default_rng(0)
    labels = [f"sp{i:03d}" for i in range(206)]
    doc = {
        "format": 2, "head": "logreg", "labels": labels, "embedkit_version": "0.1.0",
        "provenance": {"backbone": "birdnet", "dim": 1024, "sample_rate": 48000, "window_s": 5.0,
                       "hop_s": 5.0, "dtype": "float16", "chunk_offsets": [0.0, 2.0]},
        "priors": rng.random(206).tolist(), "smooth": 0.3,
        "cv": {"per_class": {c: float(v) for c, v in zip(labels, rng.random(206), strict=True)}},
        "tuning": {"grid": [[float(w), float(s), float(m)] for w, s, m in rng.random((600, 3))]},
        "files": {f"head/f{i}.bin": "0" * 64 for i in range(6)},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        mj = Path(tmp) / "model.json"
        mj.write_text(json.dumps(doc, indent=1))
        size = mj.stat().st_size
        t_ref = best(lambda: json.loads(mj.read_text()), args.reps * 20)
        t_new = best(lambda: model_meta(read_json(mj), str(mj)), args.reps * 20)
        n = args.rows
        rows = pd.DataFrame({
            "shard": "part-0.parquet", "file": [f"sp{i % 206:03d}/XC{i // 12:06d}.ogg" for i in range(n)],
            "window": np.arange(n) % 12, "start_s": (np.arange(n) % 12) * 5.0,
            "end_s": (np.arange(n) % 12) * 5.0 + 5,
            "row_id": [f"XC{i // 12:06d}_{5 * (i % 12 + 1)}" for i in range(n)],
        })  # fmt: skip
        pf = Path(tmp) / "rows.parquet"
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), pf)
        r_ref = best(lambda: pq.read_table(pf).to_pandas(), args.reps)
        table = pq.read_table(pf).to_pandas()
        r_new = best(lambda: check_table(table, INDEX_ROWS, str(pf), line_offset=0), args.reps)
    print(f"model.json ({size} B): json.loads {t_ref * 1e3:.2f} ms, "
          f"read_json + schema {t_new * 1e3:.2f} ms: ratio {t_new / t_ref:.2f}")  # fmt: skip
    print(f"index rows ({n} rows): parquet read {r_ref * 1e3:.0f} ms, check_table {r_new * 1e3:.0f} ms: "
          f"ratio {r_new / r_ref:.2f} of the read")  # fmt: skip


if __name__ == "__main__":
    main()

"""Benchmark the exported ONNX heads against embedkit's own prediction of the same windows.

Fits each head on synthetic 1024-D embeddings of ``--classes`` classes (seeded), exports it, and times
``Model.predict`` and an onnxruntime session (1 thread each, the same ``--rows`` windows, best of 3), printing
the ratio (embedkit time / ONNX time; > 1: the graph is faster), the graph's file size and the largest
difference of the probabilities. Wall times depend on what else runs on the machine; the ratio is measured
in one run.

    python benchmarks/bench_export.py                  # 20000 rows, 50 classes, all heads
    python benchmarks/bench_export.py --heads lgbm --rows 100000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

PARAMS = {"logreg": {}, "mlp": {"epochs": 5, "n_jobs": 1}, "mil": {"epochs": 3, "n_jobs": 1},
          "lgbm": {"n_jobs": 1}}  # fmt: skip


def best_of(fn, n: int = 3) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--classes", type=int, default=50)
    ap.add_argument("--heads", nargs="+", default=list(PARAMS))
    args = ap.parse_args()

    import onnxruntime as ort
    from onnx import save
    from threadpoolctl import threadpool_limits

    from embedkit.heads import get_head
    from embedkit.predict.export import build_onnx
    from embedkit.predict.model import Model

    rng = np.random.default_rng(0)
    C, D = args.classes, 1024
    proto = rng.normal(size=(C, D)).astype(np.float32)
    y = rng.integers(0, C, 4000)
    X = np.maximum(proto[y] + rng.normal(scale=2.0, size=(4000, D)), 0).astype(np.float32)
    Y = np.eye(C, dtype=np.float32)[y]
    Xt = np.maximum(proto[rng.integers(0, C, args.rows)] + rng.normal(scale=2.0, size=(args.rows, D)), 0)
    Xt = Xt.astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    print(f"{args.rows} windows x {D} dims, {C} classes, 1 thread")
    print(f"{'head':8s} {'embedkit s':>10s} {'onnx s':>8s} {'ratio':>6s} {'MB':>6s} {'max diff':>9s}")
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        for name in args.heads:
            head = get_head(name, **PARAMS[name]).fit(X, Y)
            model = Model(folder=Path(name), head=head, labels=[f"c{i}" for i in range(C)],
                          provenance={"dim": D}, meta={})  # fmt: skip
            path = Path(tmp) / f"{name}.onnx"
            save(build_onnx(model), str(path))
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            ours = best_of(lambda m=model: m.predict(Xt))
            theirs = best_of(lambda s=sess: s.run(["probabilities"], {"embedding": Xt}))
            diff = np.abs(sess.run(["probabilities"], {"embedding": Xt})[0] - model.predict(Xt)).max()
            mb = path.stat().st_size / 1e6
            print(f"{name:8s} {ours:10.3f} {theirs:8.3f} {ours / theirs:6.2f} {mb:6.1f} {diff:9.1e}")


if __name__ == "__main__":
    main()

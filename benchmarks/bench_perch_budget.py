"""Perch v2 on Kaggle's budget: a stand-in with its architecture, fp32 and int8 ONNX, next to BirdNET.

Kaggle scores on 4 CPU cores in 90 minutes for the whole notebook, test embeddings included. Perch v2's
weights cannot be downloaded here, so :mod:`_perch_b3` builds a stand-in with its architecture and shapes
(EfficientNet-B3 trunk on a 32 kHz, 160000-sample log-mel front end, 1536-D embedding, 14,795 logits;
random seeded weights), exported to ONNX (fp32) and dynamically quantised to int8
(``onnxruntime.quantization.quantize_dynamic``: every op, or the MatMul/Gemm classifier only). Each is run
through embedkit's own ``perch`` backbone (``get_backbone("perch", weights=...)``, what
``extract.py``/``infer.py --backbone perch`` use), and
BirdNET V2.4 (``birdnet``) in the same run as the reference.

Windows: ``--windows`` real 5 s windows of a fixed seeded subset of ``../shared/data/xc-pr-birds``; timed:
the ``embed_with_logits`` calls only (decoding overlaps the model in extraction for every backbone alike),
after load and a warm-up call, each configuration in its own child process with the same thread count.
Projection to the competition: 700 one-minute files = 8400 windows; Kaggle's 4 cores taken as this
machine's cores with perfect scaling (CPU seconds per window / 4), TTA ±1.25 s = 3 backbone calls a window.

    nice python benchmarks/bench_perch_budget.py --windows 24
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import cores, header, interleaved, require_shared, table, xc_subset  # noqa: E402

WIN = 160_000
KAGGLE_WINDOWS = 700 * 12
KAGGLE_CORES = 4
BUDGET_MIN = 90.0
#: what the rest of a notebook needs besides the backbone (decoding, heads, writing): kept free
MARGIN_MIN = 20.0
CONFIGS = ("birdnet", "fp32", "int8", "int8mm")


def prepare(work: Path, n: int, n_classes: int) -> None:
    """Stand-in → perch_v2.onnx (+ labels.csv) and perch_v2_int8.onnx; ``n`` real windows → windows.npy."""
    import _perch_b3

    from embedkit.audio import load_mono

    labels = "inat2024_fsd50k\n" + "".join(f"Species {i}\n" for i in range(n_classes))
    for name in CONFIGS[1:]:
        (work / name).mkdir()
        (work / name / "labels.csv").write_text(labels)
    _perch_b3.export_onnx(work / "fp32" / "perch_v2.onnx", n_classes)
    fp32 = work / "fp32" / "perch_v2.onnx"
    _perch_b3.quantize_int8(fp32, work / "int8" / "perch_v2.onnx")
    _perch_b3.quantize_int8(fp32, work / "int8mm" / "perch_v2.onnx", ["MatMul", "Gemm"])
    files, _ = xc_subset(n * 5 / 60 + 1)
    for sr in (32_000, 48_000):  # Perch's rate, BirdNET's: the same windows
        win, rows = 5 * sr, []
        for f in files:
            y = load_mono(f, sr)
            rows += [y[s : s + win] for s in range(0, len(y) - win + 1, win)]
            if len(rows) >= n:
                break
        np.save(work / f"windows{sr // 1000}k.npy", np.stack(rows[:n]).astype(np.float32))


def child(args) -> None:
    from embedkit.backbones import get_backbone

    work = Path(args.work)
    x = np.load(work / ("windows48k.npy" if args.child == "birdnet" else "windows32k.npy"))
    t = time.perf_counter()
    if args.child == "birdnet":
        bb = get_backbone("birdnet", threads=cores(), batch_size=args.batch)
    else:
        model = str(work / args.child / "perch_v2.onnx")
        bb = get_backbone("perch", weights=model, threads=cores(), batch_size=args.batch)
    bb.embed_with_logits(x[:2])
    setup = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    emb, logits = bb.embed_with_logits(x)
    elapsed, cpu = time.perf_counter() - t, time.process_time() - c
    size = 0 if args.child == "birdnet" else (work / args.child / "perch_v2.onnx").stat().st_size
    print(json.dumps({"elapsed_s": elapsed, "cpu_s": cpu, "setup_s": setup, "windows": len(x),
                      "dim": int(emb.shape[1]), "classes": int(logits.shape[1]),
                      "mb": size / 1e6}))  # fmt: skip


def project(cpu_per_window: float, tta: bool) -> float:
    """Minutes of backbone time for Kaggle's test set on 4 cores (perfect scaling), TTA = 3 calls a window."""
    return cpu_per_window * KAGGLE_WINDOWS * (3 if tta else 1) / KAGGLE_CORES / 60


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", type=int, default=24, help="5 s windows to embed per configuration")
    ap.add_argument("--batch", type=int, default=8, help="windows per model call")
    ap.add_argument("--reps", type=int, default=2, help="runs per configuration (interleaved; best is kept)")
    ap.add_argument("--classes", type=int, default=14_795, help="stand-in logits (Perch v2: 14,795)")
    ap.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    require_shared()
    header(
        "Perch v2 on Kaggle's budget: EfficientNet-B3 stand-in (fp32, int8 ONNX) vs BirdNET V2.4",
        f"{args.windows} real 5 s windows, {cores()} threads, batches of {args.batch}; timed: "
        f"embed_with_logits only, after load and warm-up; best of {args.reps} interleaved runs. Projection: "
        f"{KAGGLE_WINDOWS} windows (700 one-minute files) on {KAGGLE_CORES} cores = CPU s per window x "
        f"windows / {KAGGLE_CORES} (perfect scaling, this machine's per-core speed), TTA = 3 calls a window; "
        f"fits = at most {BUDGET_MIN - MARGIN_MIN:.0f} of the {BUDGET_MIN:.0f} min (the rest for decoding, "
        "heads and the notebook).",
    )
    with tempfile.TemporaryDirectory(prefix="bench-perch-") as tmp:
        work = Path(tmp)
        prepare(work, args.windows, args.classes)
        whos = list(CONFIGS)
        runs = interleaved(__file__, whos, args.reps, ["--work", tmp, "--batch", str(args.batch)])
    labels = {"birdnet": "BirdNET V2.4 (birdnet, TFLite)", "fp32": "Perch v2 stand-in, ONNX fp32",
              "int8": "Perch v2 stand-in, ONNX int8 (dynamic, every op)",
              "int8mm": "Perch v2 stand-in, ONNX int8 (dynamic, MatMul/Gemm only)"}  # fmt: skip
    rows, cpu = [], {}
    limit = BUDGET_MIN - MARGIN_MIN
    for who in whos:
        j = min(runs[who], key=lambda d: d["elapsed_s"])
        cpu[who] = j["cpu_s"] / j["windows"]
        rows.append({"configuration": labels[who], "model MB": j["mb"] or "bundled",
                     "windows/s": j["windows"] / j["elapsed_s"], "CPU s per window": cpu[who],
                     "Kaggle min, no TTA": project(cpu[who], False),
                     "Kaggle min, TTA ±1.25 s": project(cpu[who], True),
                     "fits (no TTA / TTA)": " / ".join("yes" if project(cpu[who], t) <= limit else "no"
                                                       for t in (False, True))})  # fmt: skip
    print(table(rows) + "\n")
    for who in CONFIGS[1:]:
        print(f"ratio: Perch stand-in {who} / BirdNET, CPU s per window: {cpu[who] / cpu['birdnet']:.2f}x")
    for who in CONFIGS[2:]:
        print(f"ratio: Perch stand-in {who} / fp32, CPU s per window: {cpu[who] / cpu['fp32']:.2f}x")


if __name__ == "__main__":
    main()

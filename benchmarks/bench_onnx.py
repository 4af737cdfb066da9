"""ONNX backbone: embedkit's ``onnx`` backbone vs a plain per-window onnxruntime loop vs torch ``panns``.

Model: PANNs Cnn14 with seeded random weights (``torch.manual_seed(0)``), the same weights saved as a
checkpoint (for ``--backbone panns``) and exported to ONNX (TorchScript exporter, opset 17, dynamic batch)
for the two onnxruntime configurations. This is the size class of Perch v2 (Cnn14: 80 M parameters, 5 s at
32 kHz; Perch v2's EfficientNet-B3 is smaller but runs a larger front end), so its speed is what a Perch v2
ONNX file will roughly do on the same cores.

Windows: the first ``--windows`` 5 s windows of a fixed seeded subset of ``../shared/data/xc-pr-birds``
(decoded once, 32 kHz). Timed: the model calls only (no decoding; extraction overlaps decoding with the model
for every backbone alike), after model load and a warm-up call, each configuration in its own child process
with the same thread count (all cores this process may use):

* plain loop: ``onnxruntime.InferenceSession(model)`` with default options, ``session.run`` once per window;
* embedkit onnx: ``get_backbone("onnx", ...)`` ``embed`` on all windows (``--batch`` windows per call);
* embedkit panns fp32 / bf16: ``get_backbone("panns", ...)`` (bf16 autocast only on CPUs with native bf16).

    nice python benchmarks/bench_onnx.py --windows 16
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


def prepare(work: Path, n: int) -> None:
    """Random Cnn14 → checkpoint + ONNX file; ``n`` real windows → ``windows.npy``."""
    import torch

    from embedkit.audio import load_mono
    from embedkit.backbones.panns import CNN14_KWARGS, cnn14_class, embedding_module

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from onnx_models import export

    torch.manual_seed(0)
    model = cnn14_class()(**CNN14_KWARGS).eval()
    torch.save({"model": model.state_dict()}, work / "cnn14.pth")

    export(embedding_module(model), work / "cnn14.onnx", torch.zeros(2, WIN), "audio", ["embedding"])
    files, _ = xc_subset(2 * n * 5 / 60 + 1)
    rows = []
    for f in files:
        y = load_mono(f, 32_000)
        rows += [y[s : s + WIN] for s in range(0, len(y) - WIN + 1, WIN)]
        if len(rows) >= n:
            break
    np.save(work / "windows.npy", np.stack(rows[:n]).astype(np.float32))


def child(args) -> None:
    x = np.load(Path(args.work) / "windows.npy")
    threads = cores()
    t = time.perf_counter()
    if args.child == "loop":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(Path(args.work) / "cnn14.onnx"), providers=["CPUExecutionProvider"])

        def fn(batch):
            return np.concatenate([sess.run(["embedding"], {"audio": w[None]})[0] for w in batch])

        precision = "fp32"
    else:
        from embedkit.backbones import get_backbone

        if args.child == "onnx":
            onnx_file = str(Path(args.work) / "cnn14.onnx")
            bb = get_backbone("onnx", weights=onnx_file, model={"embedding": "embedding"}, threads=threads,
                              batch_size=args.batch)  # fmt: skip
        else:
            bb = get_backbone("panns", weights=str(Path(args.work) / "cnn14.pth"), device="cpu",
                              bf16=args.child == "bf16", threads=threads, batch_size=args.batch)  # fmt: skip
        fn, precision = bb.embed, getattr(bb, "precision", "fp32")
    fn(x[:2])
    setup = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    emb = fn(x)
    elapsed, cpu = time.perf_counter() - t, time.process_time() - c
    np.save(Path(args.work) / f"emb-{args.child}.npy", emb)
    print(json.dumps({"elapsed_s": elapsed, "cpu_s": cpu, "setup_s": setup, "windows": len(x),
                      "precision": precision}))  # fmt: skip


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", type=int, default=16, help="5 s windows to embed per configuration")
    ap.add_argument("--batch", type=int, default=8, help="windows per model call (embedkit backbones)")
    ap.add_argument("--reps", type=int, default=2, help="runs per configuration (interleaved; best is kept)")
    ap.add_argument("--child", choices=["loop", "onnx", "fp32", "bf16"], help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    from embedkit.backbones._torch import cpu_has_bf16

    require_shared()
    header(
        "ONNX backbone: embedkit onnx vs a plain onnxruntime loop vs torch panns (Cnn14, random weights)",
        f"{args.windows} real 5 s windows, {cores()} threads for every configuration, batches of "
        f"{args.batch} for the embedkit backbones; timed: model calls only, after load and warm-up; best of "
        f"{args.reps} interleaved runs each "
        f"(shared machine: run under `nice`; ratios are within one run). CPU bf16: "
        f"{'native' if cpu_has_bf16() else 'not native, so panns bf16 falls back to fp32'}.",
    )
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        work = Path(tmp)
        prepare(work, args.windows)
        labels = {"loop": "plain onnxruntime loop (one run per window)", "onnx": "embedkit onnx backbone",
                  "fp32": "embedkit panns (torch) fp32",
                  "bf16": "embedkit panns (torch) bf16 autocast"}  # fmt: skip
        whos = ["loop", "onnx", "fp32", "bf16"]
        runs = interleaved(__file__, whos, args.reps, ["--work", tmp, "--batch", str(args.batch)])
        res, rows = {}, []
        for who in whos:
            j = min(runs[who], key=lambda d: d["elapsed_s"])
            res[who] = j
            rows.append({"configuration": labels[who], "precision": j["precision"], "windows": j["windows"],
                         "wall s (best)": j["elapsed_s"],
                         "wall s (all runs)": " / ".join(f"{x['elapsed_s']:.1f}" for x in runs[who]),
                         "windows/s": j["windows"] / j["elapsed_s"],
                         "×realtime": 5 * j["windows"] / j["elapsed_s"],
                         "CPU s (timed part)": j["cpu_s"],
                         "CPU s per window": j["cpu_s"] / j["windows"]})  # fmt: skip
        print(table(rows) + "\n")
        ref = np.load(work / "emb-fp32.npy")
        diff = {w: float(np.abs(np.load(work / f"emb-{w}.npy") - ref).max()) for w in ("loop", "onnx")}
        print(f"Agreement with torch fp32: max abs diff onnx backbone {diff['onnx']:.2g}, plain loop "
              f"{diff['loop']:.2g} (embeddings up to {float(np.abs(ref).max()):.2g}).\n")  # fmt: skip
    speed = {w: res[w]["windows"] / res[w]["elapsed_s"] for w in res}
    cpu = {w: res[w]["cpu_s"] / res[w]["windows"] for w in res}
    r_loop, r_bf16 = speed["onnx"] / speed["loop"], speed["onnx"] / speed["bf16"]
    print(f"ratio: onnx backbone / plain onnxruntime loop, wall: {r_loop:.2f}x (goal >= 2x: "
          f"{'met' if r_loop >= 2 else 'NOT met'}); CPU s per window, loop / onnx: "
          f"{cpu['loop'] / cpu['onnx']:.2f}")
    print(f"ratio: onnx backbone / torch panns fp32, wall: {speed['onnx'] / speed['fp32']:.2f}x; CPU s per "
          f"window, torch / onnx: {cpu['fp32'] / cpu['onnx']:.2f}")
    print(f"ratio: onnx backbone / torch panns {res['bf16']['precision']}, wall: {r_bf16:.2f}x (goal >= "
          f"1/1.5 = 0.67x: {'met' if r_bf16 >= 1 / 1.5 else 'NOT met'}); CPU s per window, torch / onnx: "
          f"{cpu['bf16'] / cpu['onnx']:.2f}")
    print(f"ratio: onnx backbone, 4 dedicated cores (CPU per window / 4, perfect scaling assumed): "
          f"{5 * 4 / cpu['onnx']:.0f}x realtime, {60 * 4 / cpu['onnx']:.0f} windows/min")


if __name__ == "__main__":
    main()

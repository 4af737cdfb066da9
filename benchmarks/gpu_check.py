"""GPU check (run by ``benchmarks/gpu_check.sh``): extraction windows/s per backbone and precision, head fits.

Random weights throughout (nothing is downloaded): PANNs Cnn14 (fp32 / bf16 / fp16 autocast), wav2vec2 base
size (12 layers, 768 d), and the ``onnx`` backbone (CUDA execution provider) on Cnn14 exported to ONNX when
that backbone is registered (else a "skipped" line). Two numbers per backbone: model throughput (``embed`` on
a batch of windows already in memory, after a warm-up) and end-to-end ``run_extract`` windows/s on one-minute
synthetic OGG files (decode + resample + model + shards). Heads: mlp and mil fit time on the same synthetic
embeddings on ``cuda`` and on ``cpu`` (fixed epochs, so the ratio is per epoch).

Writes a Markdown section between ``<!-- gpu-check:start -->`` and ``<!-- gpu-check:end -->`` in
``benchmarks/RESULTS.md`` (replaced on every run), or to ``--out``. ``--cpu-dry-run`` runs every Python part
at a tiny size on the CPU (what CI and machines without a GPU can check) and writes nowhere but ``--out``.
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

from _common import table  # noqa: E402

START, END = "<!-- gpu-check:start -->", "<!-- gpu-check:end -->"


def random_cnn14(folder: Path) -> Path:
    import torch

    from embedkit.backbones.panns import CNN14_KWARGS, cnn14_class

    torch.manual_seed(0)
    path = folder / "cnn14-random.pth"
    torch.save({"model": cnn14_class()(**CNN14_KWARGS).state_dict()}, path)
    return path


def random_w2v(folder: Path, tiny: bool) -> Path:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config() if not tiny else Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=8)
    Wav2Vec2Model(cfg).save_pretrained(folder / "w2v")
    return folder / "w2v"


def onnx_cnn14(folder: Path, ckpt: Path) -> Path:
    """Cnn14 (random weights) exported to ONNX: [B, 160000] → [B, 2048] embedding, dynamic batch."""
    import torch

    from embedkit.backbones.panns import CNN14_KWARGS, cnn14_class, embedding_module

    model = cnn14_class()(**CNN14_KWARGS).eval()
    model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["model"])

    path = folder / "cnn14.onnx"
    torch.onnx.export(embedding_module(model), (torch.zeros(2, 160000),), str(path), input_names=["audio"],
                      output_names=["embedding"],
                      dynamic_axes={"audio": {0: "batch"}, "embedding": {0: "batch"}})
    return path


def backbones(folder: Path, device: str, tiny: bool):
    """(label, factory) pairs; a factory that cannot work here raises with the reason."""
    from embedkit.backbones import available, get_backbone

    ckpt = random_cnn14(folder)

    def panns(precision):
        def make():
            bb = get_backbone("panns", weights=str(ckpt), device=device, bf16=precision != "fp32")
            if device.startswith("cuda") or precision == "fp32":
                bb.precision = precision  # force fp16 where the GPU would pick bf16
            return bb
        return make

    out = [(f"panns {p}", panns(p)) for p in ("fp32", "bf16", "fp16")]
    out.append(("wav2vec2 " + ("tiny" if tiny else "base size"), lambda: get_backbone(
        "wav2vec2", weights=str(random_w2v(folder, tiny)), device=device)))
    if "onnx" in available():
        out.append(("onnx Cnn14 (CUDA provider)", lambda: get_backbone(
            "onnx", weights=str(onnx_cnn14(folder, ckpt)), device=device)))
    else:
        out.append(("onnx", None))
    return out


def model_rate(bb, windows: int) -> float:
    """Windows/s of ``bb.embed`` on random audio (after one warm-up batch)."""
    n = int(round(5.0 * bb.sample_rate))
    x = np.random.default_rng(0).standard_normal((windows, n)).astype(np.float32) * 0.1
    bb.embed(x[: min(8, windows)])
    t = time.perf_counter()
    bb.embed(x)
    return windows / (time.perf_counter() - t)


def extract_rate(bb, files: Path, out: Path) -> float:
    from embedkit.config import ExtractConfig
    from embedkit.extract import run_extract

    cfg = ExtractConfig(files=str(files), out=str(out), name=f"gpu-{time.time_ns()}", progress=False,
                        decode_workers=4)
    s = run_extract(cfg, backbone=bb)
    return s.windows / s.elapsed_s


def synth_files(folder: Path, n: int, seconds: float) -> Path:
    from embedkit.audio.write import write_audio

    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        x = (0.1 * rng.standard_normal(int(seconds * 32000))).astype(np.float32)
        write_audio(folder / f"f{i:03d}.ogg", x, 32000, "OGG", "VORBIS")
    return folder


def extraction_rows(device: str, tiny: bool, tmp: Path) -> list[dict]:
    files = synth_files(tmp / "audio", 1 if tiny else 24, 6.0 if tiny else 60.0)
    rows = []
    for label, make in backbones(tmp, device, tiny):
        if make is None:
            rows.append({"backbone": label, "model windows/s": "skipped: no 'onnx' backbone registered",
                         "extract windows/s": "-"})
            print(f"  {label}: skipped (no 'onnx' backbone registered in this checkout)", file=sys.stderr)
            continue
        try:
            bb = make()
        except Exception as e:  # a backbone that cannot run here is reported, the others still run
            rows.append({"backbone": label, "model windows/s": f"skipped: {type(e).__name__}: {e}"[:120],
                         "extract windows/s": "-"})
            continue
        rate = model_rate(bb, 2 if tiny else 512)
        ext = extract_rate(bb, files, tmp / "emb")
        rows.append({"backbone": f"{label} [{getattr(bb, 'precision', 'fp32')}]", "model windows/s": rate,
                     "extract windows/s": ext})
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
        bb.close()
    return rows


def head_rows(device: str, tiny: bool) -> list[dict]:
    from bench_heads import class_counts, synth

    from embedkit.heads import get_head

    n, epochs = (600, 2) if tiny else (50_000, 10)
    X, Y = synth(n, class_counts(), 64 if tiny else 1024, seed=0)
    groups = np.arange(n) // 8
    rows = []
    for name in ("mlp", "mil"):
        times = {}
        for dev in dict.fromkeys([device, "cpu"]):
            kw = {"epochs": epochs, "device": dev}
            if name == "mlp":
                kw.update(patience=0)
            head = get_head(name, **kw)
            t = time.perf_counter()
            head.fit(X, Y, **({"groups": groups} if name == "mil" else {}))
            times[dev] = time.perf_counter() - t
        row = {"head": name, "rows": n, "epochs": epochs, f"fit s ({device})": times[device],
               "fit s (cpu)": times["cpu"], "cpu / device": times["cpu"] / times[device]}
        rows.append(row)
        print(f"  {row}", file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU; write only to --out")
    ap.add_argument("--out", default=None, help="write the section here instead of into RESULTS.md")
    args = ap.parse_args(argv)
    import torch

    device = "cpu" if args.cpu_dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: torch sees no CUDA device (use --cpu-dry-run to check the script on a CPU)")
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU dry run (tiny sizes)"
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        ext = extraction_rows(device, args.cpu_dry_run, Path(tmp))
    heads = head_rows(device, args.cpu_dry_run)
    text = "\n".join([
        START, "## GPU check (`benchmarks/gpu_check.sh`)", "",
        f"{name}; torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Random "
        "weights. Model windows/s: `embed` on windows in memory; extract windows/s: `run_extract` on "
        f"{'one 6 s' if args.cpu_dry_run else '24 one-minute'} synthetic OGG files (decode + resample + "
        "model + shards).", "",
        table(ext), "", "Head fit time, same synthetic embeddings, fixed epochs:", "", table(heads), "", END,
        ""])
    if args.out or args.cpu_dry_run:
        if args.out:
            Path(args.out).write_text(text)
        print(text)
        return
    results = Path(__file__).resolve().parent / "RESULTS.md"
    old = results.read_text()
    if START in old and END in old:
        new = old.split(START)[0] + text + old.split(END, 1)[1].lstrip("\n")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    tmp_path = results.with_suffix(".md.tmp")
    tmp_path.write_text(new)
    tmp_path.replace(results)
    print(text)


if __name__ == "__main__":
    main()

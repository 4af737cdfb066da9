"""PANNs Cnn14 extraction: embedkit vs the panns_inference way, same random weights, same files and cores.

Weights: a seeded random Cnn14 (``torch.manual_seed(0)``) saved as a checkpoint that both sides load.
Files: a fixed subset (seeded) of ``../shared/data/xc-pr-birds`` with at least ``--minutes`` of audio
(32 kHz already: no resampling on either side).

* peer, "the panns_inference way": ``librosa.load(path, sr=32000)`` of each file, then one
  ``model(window)['embedding']`` call per 5 s window under ``torch.no_grad()`` (what
  ``AudioTagging.inference`` does, without its label download); windows cut by the same rule as embedkit
  (5 s hop, a zero-padded tail when it adds >= 1 s).
* embedkit: ``run_extract`` with ``--backbone panns`` (decoder thread, batches of 32 windows,
  ``torch.inference_mode``, BatchNorm folded into the convs, channels-last weights), in float32
  (``--no-bf16``) and with bf16 autocast (on CPUs with native bf16: AVX512-BF16 or AMX).

Each run is a fresh child process; model loading and a warm-up are not timed. Runs go E E P E E (embedkit
around the peer) and the best of each configuration is reported. Agreement on every window: float32 max
abs difference to the peer, bf16 cosine.

    python benchmarks/bench_panns.py                 # >= 10 min of audio
    python benchmarks/bench_panns.py --minutes 3
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

from _common import Child, header, last_json, require_shared, run_child, table, xc_subset  # noqa: E402


def make_checkpoint(path: Path) -> None:
    import torch

    from embedkit.backbones.panns import CNN14_KWARGS, cnn14_class

    torch.manual_seed(0)
    model = cnn14_class()(**CNN14_KWARGS)
    torch.save({"model": model.state_dict()}, path)


def child_embedkit(args) -> None:
    from embedkit.backbones import get_backbone
    from embedkit.config import ExtractConfig
    from embedkit.extract import backbone_kwargs, run_extract

    cfg = ExtractConfig(backbone="panns", weights=args.weights, files=args.files, out=args.out, name="bench",
                        progress=False, dtype="float32", bf16=args.mode == "bf16", device="cpu")
    t = time.perf_counter()
    bb = get_backbone("panns", **backbone_kwargs(cfg))
    bb.embed(np.zeros((4, 160_000), np.float32))
    setup = time.perf_counter() - t
    t = time.perf_counter()
    s = run_extract(cfg, backbone=bb)
    elapsed = time.perf_counter() - t
    import torch

    print(json.dumps({"elapsed_s": elapsed, "setup_s": setup, "windows": s.windows, "audio_s": s.audio_s,
                      "precision": bb.precision, "threads": torch.get_num_threads()}))


def child_peer(args) -> None:
    import librosa
    import torch

    from embedkit.backbones.panns import CNN14_KWARGS, cnn14_class

    t = time.perf_counter()
    model = cnn14_class()(**CNN14_KWARGS)
    model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True)["model"])
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 160_000))
    setup = time.perf_counter() - t
    files = [ln.strip() for ln in open(args.files) if ln.strip()]
    win, tail = 160_000, 32_000
    out, n = {}, 0
    t = time.perf_counter()
    for f in files:
        y, _ = librosa.load(f, sr=32_000, mono=True)
        embs = []
        n_full = (len(y) - win) // win + 1 if len(y) >= win else 0
        starts = list(range(0, n_full * win, win))
        if len(y) - n_full * win >= tail or n_full == 0:
            starts.append(n_full * win)
        for s in starts:
            w = np.zeros(win, np.float32)
            seg = y[s : s + win]
            w[: len(seg)] = seg
            with torch.no_grad():
                embs.append(model(torch.from_numpy(w[None]))["embedding"][0].numpy())
        out[Path(f).name] = np.stack(embs)
        n += len(embs)
    elapsed = time.perf_counter() - t
    np.savez(args.out, **out)
    print(json.dumps({"elapsed_s": elapsed, "setup_s": setup, "windows": n,
                      "threads": torch.get_num_threads()}))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="audio in the subset (at least)")
    ap.add_argument("--peer-reps", type=int, default=1, help="peer runs (embedkit runs around each)")
    ap.add_argument("--child", choices=["embedkit", "peer"], help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["fp32", "bf16"], default="fp32", help=argparse.SUPPRESS)
    ap.add_argument("--files", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child == "embedkit":
        return child_embedkit(args)
    if args.child == "peer":
        return child_peer(args)

    from embedkit.backbones._torch import cpu_has_bf16
    from embedkit.store import read_embeddings

    require_shared()
    files, audio_s = xc_subset(args.minutes)
    bf16 = cpu_has_bf16()
    header(
        "PANNs Cnn14 extraction: embedkit vs the panns_inference way",
        f"{len(files)} real recordings ({audio_s / 60:.1f} min, fixed seeded subset), the same seeded random "
        f"Cnn14 weights on both sides, torch's default thread count. Timed: the loop over the files after "
        f"model load and a warm-up. CPU bf16: "
        f"{'native (AVX512-BF16/AMX)' if bf16 else 'not native: skipped'}.",
    )
    with tempfile.TemporaryDirectory(prefix="bench-panns-") as tmp:
        work = Path(tmp)
        ckpt = work / "cnn14_random.pth"
        make_checkpoint(ckpt)
        lst = work / "files.txt"
        lst.write_text("\n".join(map(str, files)) + "\n")
        modes = ["fp32", "bf16"] if bf16 else ["fp32"]
        order = list(modes)
        for _ in range(args.peer_reps):
            order += ["peer", *reversed(modes)]
        results: dict[str, list[tuple[dict, Child]]] = {m: [] for m in [*modes, "peer"]}
        for r, who in enumerate(order):
            base = [sys.executable, __file__, "--files", str(lst), "--weights", str(ckpt)]
            if who == "peer":
                c = run_child([*base, "--child", "peer", "--out", str(work / "peer.npz")])
            else:
                out = work / f"e-{who}{r}"
                c = run_child([*base, "--child", "embedkit", "--mode", who, "--out", str(out)])
                dst = work / f"emb-{who}"
                if not dst.exists():
                    out.rename(dst)
            results[who].append((last_json(c.out), c))
            print(f"  run {r + 1} {who}: {results[who][-1][0]['elapsed_s']:.1f} s", file=sys.stderr,
                  flush=True)
        labels = {"peer": "panns_inference way (librosa.load, model(window) per 5 s window)",
                  "fp32": "embedkit fp32", "bf16": "embedkit bf16 autocast"}
        rows, best = [], {}
        for who in ["peer", *modes]:
            runs = results[who]
            j, c = min(runs, key=lambda t: t[0]["elapsed_s"])
            best[who] = audio_s / j["elapsed_s"]
            rows.append({"tool": labels[who], "windows": j["windows"], "wall s (best)": j["elapsed_s"],
                         "wall s (all runs)": " / ".join(f"{x['elapsed_s']:.1f}" for x, _ in runs),
                         "×realtime": best[who], "windows/s": j["windows"] / j["elapsed_s"],
                         "process CPU s": c.cpu_s, "peak RSS MB": max(cc.maxrss_mb for _, cc in runs)})
        print(table(rows) + "\n")
        peer = np.load(work / "peer.npz")
        agree = {}
        for m in modes:
            keys, X = read_embeddings(work / f"emb-{m}" / "panns" / "bench")
            names = keys["file"].map(lambda f: Path(f).name).to_numpy()
            order = list(dict.fromkeys(names))
            ref = np.concatenate([peer[n][keys["window"].to_numpy()[names == n]] for n in order])
            mine = np.concatenate([X[names == n] for n in order])
            cos = (mine * ref).sum(1) / (np.linalg.norm(mine, axis=1) * np.linalg.norm(ref, axis=1) + 1e-30)
            agree[m] = (float(np.abs(mine - ref).max()), float(cos.min()), float(np.abs(ref).max()))
        line = (f"Agreement over all {len(ref)} windows: fp32 max abs diff {agree['fp32'][0]:.2g} (values "
                f"up to {agree['fp32'][2]:.2g}), min cosine {agree['fp32'][1]:.7f}")
        if "bf16" in agree:
            line += f"; bf16 min cosine {agree['bf16'][1]:.5f} (max abs diff {agree['bf16'][0]:.2g})"
        import soundfile as sf

        peak = max(float(np.abs(sf.read(str(f), dtype="float32")[0]).max()) for f in files)
        if peak > 1:
            line += (f". Decoded samples peak at {peak:.2f} in this subset: embedkit clips them to [-1, 1], "
                     f"librosa does not, which is where the fp32 difference comes from")
        print(line + ".\n")
    top = max(modes, key=lambda m: best[m])
    print(f"ratio: PANNs extraction, embedkit fp32 / panns_inference way: {best['fp32'] / best['peer']:.1f}x "
          f"({best['fp32']:.1f}x vs {best['peer']:.1f}x realtime; fp32 max abs diff {agree['fp32'][0]:.1g})")
    if "bf16" in best:
        ok = "met" if best["bf16"] / best["peer"] >= 3 else "NOT met"
        r16 = best["bf16"] / best["peer"]
        print(f"ratio: PANNs extraction, embedkit bf16 / panns_inference way: {r16:.1f}x "
              f"({best['bf16']:.1f}x realtime; goal >= 3x: {ok}; bf16 min cosine {agree['bf16'][1]:.4f})")
    else:
        ok = "met" if best[top] / best["peer"] >= 3 else "NOT met"
        print(f"ratio: goal >= 3x with the best embedkit configuration ({top}): {ok}")


if __name__ == "__main__":
    main()

"""Cost of augmented embeddings (``extract.py --augment-background DIR --variants K``, issue 14 item 2).

Files: a fixed subset (seeded) of ``../shared/data/xc-pr-birds`` holding at least ``--minutes`` of audio;
backgrounds: ``../shared/data/backgrounds``. Each extraction is a fresh ``extract.py`` child process (BirdNET,
``--save-logits``, the defaults otherwise), clean and augmented interleaved (C A C A ...), best of each
reported, so a change in machine load hits both alike. Then ``fit.py`` (the default head and prior) on the
clean shards and on the augmented ones with ``--augmented clean`` and ``clean+mixed``, each a child process.

The model rows grow by 1 + K; decoding does not (the variants are mixed from the decoded window), so the
extraction ratio is expected a little under 1 + K, plus the mixing and the background decode at start.

    python benchmarks/bench_augment.py                  # >= 10 min of audio, K = 2
    python benchmarks/bench_augment.py --minutes 3 --variants 1 --reps 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, SHARED, VENV_PY, XC, header, require_shared, run_child, table, xc_subset  # noqa: E402

BG = SHARED / "backgrounds"


def extract(files: Path, out: Path, k: int) -> dict:
    argv = [VENV_PY, str(REPO / "extract.py"), "--backbone", "birdnet", "--files", str(files), "--name",
            "train_audio", "--out", str(out), "--save-logits", "--no-progress"]  # fmt: skip
    if k:
        argv += ["--augment-background", str(BG), "--variants", str(k)]
    c = run_child(argv)
    return {"wall_s": c.wall_s, "cpu_s": c.cpu_s, "rss_mb": c.maxrss_mb}


def fit(emb: Path, out: Path, mode: str, folds: int) -> dict:
    argv = [VENV_PY, str(REPO / "fit.py"), "--backbone", "birdnet", "--data", str(XC), "--embeddings",
            str(emb), "--out", str(out), "--name", mode.replace("+", "_"), "--augmented", mode,
            "--folds", str(folds)]  # fmt: skip
    c = run_child(argv)
    auc = next((ln.split("ROC-AUC")[1].split()[0] for ln in c.out.splitlines() if "ROC-AUC" in ln), "")
    return {"wall_s": c.wall_s, "cpu_s": c.cpu_s, "rss_mb": c.maxrss_mb, "cv_auc": auc}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--variants", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    require_shared()
    paths, total = xc_subset(a.minutes)
    header(
        f"Augmented extraction: clean vs --augment-background --variants {a.variants}",
        f"{len(paths)} xc-pr-birds files, {total / 60:.1f} min of audio; BirdNET with --save-logits; "
        f"backgrounds: {BG.name}/ (SNR -5..10 dB). Best of {a.reps} interleaved runs each.",
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lst = tmp / "files.txt"
        lst.write_text("\n".join(str(p) for p in paths) + "\n")
        best: dict[str, dict] = {}
        for r in range(a.reps):
            for name, k in (("clean", 0), (f"augmented K={a.variants}", a.variants)):
                res = extract(lst, tmp / f"{name[:5]}{r}", k)
                if name not in best or res["wall_s"] < best[name]["wall_s"]:
                    best[name] = res
        rows = [{"extraction": n, **v, "x realtime": total / v["wall_s"]} for n, v in best.items()]
        print(table(rows, ["extraction", "wall_s", "cpu_s", "rss_mb", "x realtime"]) + "\n")
        fits = []
        folds = min(3, len(paths))
        runs = [("clean shards", "clean0", "clean"), ("augmented, --augmented clean", "augme0", "clean"),
                ("augmented, --augmented clean+mixed", "augme0", "clean+mixed")]  # fmt: skip
        for label, emb, mode in runs:
            fits.append({"fit (logreg + prior)": label, **fit(tmp / emb, tmp / "models", mode, folds)})
        print(table(fits, ["fit (logreg + prior)", "wall_s", "cpu_s", "rss_mb", "cv_auc"]) + "\n")
    c, g = best["clean"], best[f"augmented K={a.variants}"]
    print(f"ratio: augmented extraction K={a.variants} / clean, wall: {g['wall_s'] / c['wall_s']:.2f}x "
          f"(CPU {g['cpu_s'] / c['cpu_s']:.2f}x; model rows {1 + a.variants}x)")  # fmt: skip
    f = fits[2]["wall_s"] / fits[0]["wall_s"]
    print(f"ratio: fit --augmented clean+mixed / clean shards, wall: {f:.2f}x")


if __name__ == "__main__":
    main()

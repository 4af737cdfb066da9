# ruff: noqa  (research scripts, see README.md here)
"""Embed augmented copies of every training window: mixed with a background crop of the recording's own fold
group (SNR -5..10 dB), and with prob `mix` a window of another species from the same fold (multi-label mixup)."""
import sys, time
from pathlib import Path
import numpy as np
from embedkit.config import FitConfig
from embedkit.evaluate.data import load_clips
from embedkit.audio import list_audio, load_mono
from embedkit.backbones.build import build_backbone

seed, mixp, lo, hi = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
cfg = FitConfig(data="/work/shared/data/xc-pr-birds", embeddings="/work/cache14/emb_mean", backbone="birdnet")
clips = load_clips(cfg)
bb = build_backbone(clips.provenance, threads=2)
sr = bb.sample_rate; win = 5 * sr
bgp = list_audio("/work/shared/data/backgrounds")
bgs = [load_mono(p, sr) for p in bgp]
group = np.arange(len(bgs)) % 5
rng = np.random.default_rng(seed)
root = Path(clips.data) / "train_audio"
audio = {f: load_mono(root / f, sr) for f in sorted(set(clips.files))}
def window(f, w):
    a = audio[f][w * win:(w + 1) * win]
    return np.pad(a, (0, win - len(a)))
rms = lambda x: float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 1e-9
prim = clips.truth.argmax(1)
Y = clips.targets(0.0).copy()
batch, Yo, X, L = [], [], [], []
t = time.time()
for i in range(len(clips.X)):
    f, w, k = clips.files[i], int(clips.window[i]), int(clips.fold[i])
    x = window(f, w)
    y = Y[i].copy()
    if mixp > 0 and rng.random() < mixp:
        cand = np.flatnonzero((clips.fold == k) & (prim != prim[i]))
        j = int(rng.choice(cand))
        x2 = window(clips.files[j], int(clips.window[j]))
        x = x + x2 * (rms(x) / rms(x2)) * 10 ** (rng.uniform(-6, 0) / 20)
        y = np.maximum(y, Y[j])
    b = bgs[int(rng.choice(np.flatnonzero(group == k)))]
    s = int(rng.integers(0, max(1, len(b) - win)))
    crop = np.pad(b[s:s + win], (0, max(0, win - len(b[s:s + win]))))
    snr = rng.uniform(lo, hi)
    x = crop * (rms(x) / rms(crop)) * 10 ** (-snr / 20) + x
    x = x / max(1.0, np.abs(x).max() / 0.99)
    batch.append(x.astype(np.float32)); Yo.append(y)
    if len(batch) == 64 or i == len(clips.X) - 1:
        e, lg = bb.embed_with_logits(np.stack(batch)); X.append(e.astype(np.float16)); L.append(lg.astype(np.float16)); batch = []
X = np.concatenate(X); L = np.concatenate(L)
np.savez(f"/work/cache14/aug-s{seed}-m{mixp}-snr{lo}_{hi}.npz", X=X, L=L, Y=np.stack(Yo), files=clips.files, window=clips.window, fold=clips.fold)
print("done", time.time() - t, flush=True)

# ruff: noqa  (research scripts, see README.md here)
"""Real-bg test (fold-split backgrounds): heads +- background negatives, prior pooling/weight, smoothing."""
import sys, time
import numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from research_lib import *
from embedkit.evaluate.run import _scores
from embedkit.evaluate.data import background_windows

clipsA, setsA = load("mean")
clipsB, setsB = load("max")
mapped = clipsA.index >= 0
bgw = background_windows(clipsA, BG, CACHE, 2)
TEST = [k for k in [("field", 0), ("field", 1), ("synthetic", 0), ("synthetic", 1)] if k in setsA and k in setsB]
print("test sets:", TEST, flush=True)
zs = {"mean": (class_logits(clipsA.L, clipsA.index), {k: class_logits(setsA[k].L, clipsA.index) for k in TEST}),
      "max": (class_logits(clipsB.L, clipsA.index), {k: class_logits(setsB[k].L, clipsA.index) for k in TEST})}

def score(P_by_set, smooth):
    out = {}
    for key in TEST:
        s = setsA[key]
        out[key] = _scores(s.truth, postprocess(P_by_set[key], s.files, s.window, smooth, 0.0), mapped)
    m = lambda kind, i: np.mean([out[k][i] for k in out if k[0] == kind] or [np.nan])
    per = " ".join(f"{k[0][0]}{k[1]}:{v[1]:.3f}" for k, v in out.items())
    return m("field", 0), m("field", 1), m("synthetic", 0), m("synthetic", 1), per

if "zs" in sys.argv:
    for pool in ("mean", "max"):
        for sm in (0.0, 0.25, 0.5):
            f26, f22, s26, s22, per = score(zs[pool][1], sm)
            print(f"zs {pool:4s} smooth {sm}: field22 {f22:.4f}  synth22 {s22:.4f}  [{per}]", flush=True)

HEADS = {"mil": ("mil", {}), "logreg_C0.01b": ("logreg", {"C": 0.01, "class_weight": "balanced"}),
         "logreg": ("logreg", {}), "mlp": ("mlp", {}), "lgbm": ("lgbm", {}),
         "logreg_C0.003b": ("logreg", {"C": 0.003, "class_weight": "balanced"}),
         "logreg_C0.03b": ("logreg", {"C": 0.03, "class_weight": "balanced"}),
         "mil_wd1": ("mil", {"weight_decay": 1.0}), "mil_h128": ("mil", {"hidden": 128})}

def preds(name, neg):
    path = Path(f"/work/cache14/preds/r2-{name}-neg{neg}-{'-'.join(f'{a}{b}' for a, b in TEST)}.npz")
    if path.is_file():
        z = np.load(path); return z["oof"], {k: z[f"{k[0]}{k[1]}"] for k in TEST}
    head, params = HEADS[name]
    cfg = FitConfig(head=head, params=params, zero_shot="off", weak_negatives=neg)
    Y = clipsA.targets(0.0); data = Windows(clipsA.X, clipsA.files, None, Y)
    bg = Windows(bgw.X, np.char.add("bg/", bgw.files))
    oof = np.zeros(Y.shape, np.float32); out = {k: np.zeros((len(setsA[k].X), Y.shape[1]), np.float32) for k in TEST}
    t = time.time()
    for k in range(5):
        tr = clipsA.fold != k
        h = fit_pipeline(cfg, data.take(tr), bg.take(bgw.fold != k) if neg > 0 else None)
        oof[~tr] = predict_pipeline(h, data.take(~tr), False)
        for key in TEST:
            s = setsA[key]; r = s.fold == k
            out[key][r] = predict_pipeline(h, Windows(s.X[r], s.files[r]), False)
    print(f"fit {name} neg {neg}: {time.time()-t:.0f}s", flush=True)
    np.savez(path, oof=oof, **{f"{k[0]}{k[1]}": v for k, v in out.items()})
    return oof, out

for spec in [a for a in sys.argv[1:] if a != "zs"]:
    name, neg = spec.split(":") if ":" in spec else (spec, "0")
    neg = float(neg)
    oof, P = preds(name, neg)
    for zpool in ("mean", "max"):
        zc, zt = zs[zpool]; off = offsets(clipsA, zc)
        for w in (0.0, 0.5, 1.0, 1.5, 2.0):
            if w == 0 and zpool == "max":
                continue
            Pw = {k: blend(P[k], zt[k], setsA[k].fold, off, w) for k in TEST}
            ow = blend(oof, zc, clipsA.fold, off, w)
            for sm in (0.0, 0.25, 0.5):
                f26, f22, s26, s22, per = score(Pw, sm)
                cv26, cv22 = _scores(clipsA.truth, postprocess(ow, clipsA.files, clipsA.window, sm, 0), mapped)
                print(f"{name:12s} neg {neg:<4} prior {zpool:4s} w {w:<4} sm {sm:<4}: field {f26:.4f}/{f22:.4f}  synth {s26:.4f}/{s22:.4f}  cv {cv26:.4f}/{cv22:.4f}  [{per}]", flush=True)

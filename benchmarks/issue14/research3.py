# ruff: noqa  (research scripts, see README.md here)
"""Augmented training rows (clean + mixed) for mil/logreg, with background negatives, prior max."""
import sys, time
import numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from research_lib import *
from embedkit.evaluate.run import _scores
from embedkit.evaluate.data import background_windows
clipsA, setsA = load("mean"); clipsB, setsB = load("max")
mapped = clipsA.index >= 0
bgw = background_windows(clipsA, BG, CACHE, 2)
TEST = [("field", 0), ("field", 1)]
zc = class_logits(clipsB.L, clipsA.index); zt = {k: class_logits(setsB[k].L, clipsA.index) for k in TEST}
off = offsets(clipsA, zc)
aug = np.load(sys.argv[1])
assert (aug["window"] == clipsA.window).all() and (aug["fold"] == clipsA.fold).all()
for spec in sys.argv[2:]:
    name, neg, augw = spec.split(":"); neg = float(neg); augw = float(augw)
    head, params = {"mil": ("mil", {}), "logreg": ("logreg", {"C": 0.01, "class_weight": "balanced"})}[name]
    cfg = FitConfig(head=head, params=params, zero_shot="off", weak_negatives=neg)
    Y = clipsA.targets(0.0)
    X2 = np.vstack([clipsA.X, aug["X"].astype(np.float32)]); Y2 = np.vstack([Y, aug["Y"]])
    F2 = np.concatenate([clipsA.files, clipsA.files]); fold2 = np.concatenate([clipsA.fold, clipsA.fold])
    isaug = np.r_[np.zeros(len(Y), bool), np.ones(len(Y), bool)]
    data = Windows(X2, F2, None, Y2)
    bg = Windows(bgw.X, np.char.add("bg/", bgw.files))
    out = {k: np.zeros((len(setsA[k].X), Y.shape[1]), np.float32) for k in TEST}
    oof = np.zeros(Y.shape, np.float32)
    t = time.time()
    for k in range(5):
        tr = (fold2 != k) & (~isaug | (augw > 0))
        h = fit_pipeline(cfg, data.take(tr), bg.take(bgw.fold != k) if neg > 0 else None)
        va = clipsA.fold == k
        oof[va] = predict_pipeline(h, Windows(clipsA.X[va], clipsA.files[va]), False)
        for key in TEST:
            s = setsA[key]; r = s.fold == k
            out[key][r] = predict_pipeline(h, Windows(s.X[r], s.files[r]), False)
    print(f"fit {spec}: {time.time()-t:.0f}s", flush=True)
    for w in (0.0, 1.0, 1.5):
        Pw = {k: blend(out[k], zt[k], setsA[k].fold, off, w) for k in TEST}
        ow = blend(oof, zc, clipsA.fold, off, w)
        for sm in (0.25, 0.5):
            res = [_scores(setsA[k].truth, postprocess(Pw[k], setsA[k].files, setsA[k].window, sm, 0), mapped) for k in TEST]
            cv = _scores(clipsA.truth, postprocess(ow, clipsA.files, clipsA.window, sm, 0), mapped)
            print(f"{spec:16s} w {w:<4} sm {sm:<4}: field {np.mean([r[0] for r in res]):.4f}/{np.mean([r[1] for r in res]):.4f}  cv {cv[0]:.4f}/{cv[1]:.4f}", flush=True)

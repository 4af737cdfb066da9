"""Checked LightGBM text vs trees predicted in numpy: which way keeps crafted boosters away from native code.

Issue 24 (item 2) offers two designs: (a) parse and check ``booster.txt`` in Python and give LightGBM a
canonical text written from the checked numbers (``embedkit.heads._lgbm_text``), or (b) store the trees as
arrays and predict them in numpy, so LightGBM never loads a file. On one merged booster of the lgbm head's
shape (``--classes`` one-vs-rest models of ``--rounds`` trees with 15 leaves, ``--dim`` features) this
measures, in the same run:

- load: ``lgb.Booster(model_str=text)`` (no checks; the reference) vs check + canonical text + load;
- predict: ``Booster.predict(raw_score=True)`` on ``--rows`` rows (the reference, ``--threads`` threads) vs a
  vectorised numpy traversal of the same trees (per tree, all rows advance one level per step), whose raw
  scores are asserted equal to LightGBM's.

    python benchmarks/bench_lgbm_predict.py                          # 40 classes x 100 rounds, 20k rows
    python benchmarks/bench_lgbm_predict.py --classes 195 --rows 50000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedkit.heads._lgbm_text import canonical_model_text, parse_model_text, tree_arrays  # noqa: E402
from embedkit.heads.lgbm import merge_model_strings  # noqa: E402


def build(classes: int, rounds: int, dim: int, seed: int = 0) -> str:
    """A merged multiclassova booster text like the lgbm head's (15 leaves, 31 bins, 15 % features)."""
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2000, dim)).astype(np.float32)
    params = {"objective": "binary", "num_leaves": 15, "max_bin": 31, "feature_fraction": 0.15,
              "min_data_in_leaf": 10, "verbosity": -1, "num_threads": 1}  # fmt: skip
    ds = lgb.Dataset(X, label=np.zeros(len(X)), params=params, free_raw_data=False).construct()
    texts = []
    for c in range(classes):
        w = rng.normal(size=dim)
        ds.set_label((X @ w + rng.normal(size=len(X)) > 1.0).astype(np.float32))
        texts.append(lgb.train({**params, "seed": c}, ds, num_boost_round=rounds).model_to_string())
    return lgb.Booster(model_str=merge_model_strings(texts)).model_to_string()


def numpy_predict(model: dict, X: np.ndarray) -> np.ndarray:
    """Raw scores ``[N, K]`` of a parsed model (numerical splits, missing type none) for ``X [N, D]``."""
    k = int(model["header"]["num_class"])
    out = np.zeros((len(X), k))
    rows = np.arange(len(X))
    for i in range(len(model["trees"])):
        t = tree_arrays(model, i)
        lv = t["leaf_value"]
        if t["num_leaves"] == 1:
            out[:, i % k] += lv[0]
            continue
        feat, thr, left, right = t["split_feature"], t["threshold"], t["left_child"], t["right_child"]
        leaf = np.empty(len(X), np.int64)
        idx, node = rows, np.zeros(len(X), np.int64)
        while idx.size:
            nxt = np.where(X[idx, feat[node]] <= thr[node], left[node], right[node])
            done = nxt < 0
            leaf[idx[done]] = ~nxt[done]
            idx, node = idx[~done], nxt[~done]
        out[:, i % k] += lv[leaf]
    return out


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, res = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t0)
    return best, res


def main() -> None:
    import lightgbm as lgb

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=1, help="LightGBM predict threads")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    text = build(a.classes, a.rounds, a.dim)
    n_trees = a.classes * a.rounds
    print(f"booster: {a.classes} classes x {a.rounds} rounds = {n_trees} trees, {len(text) / 1e6:.1f} MB, "
          f"{a.dim} features; predict on {a.rows} rows")  # fmt: skip
    t_plain, _ = best_of(lambda: lgb.Booster(model_str=text), a.repeat)
    t_parse, model = best_of(lambda: parse_model_text(text, a.dim, a.classes), a.repeat)
    t_canon, canon = best_of(lambda: canonical_model_text(model), a.repeat)
    t_load, booster = best_of(lambda: lgb.Booster(model_str=canon), a.repeat)
    checked = t_parse + t_canon + t_load
    print(
        f"load   LightGBM unchecked {t_plain:.3f} s | checked: parse+check {t_parse:.3f} s + canonical "
        f"text {t_canon:.3f} s + LightGBM {t_load:.3f} s = {checked:.3f} s | ratio "
        f"{checked / t_plain:.2f}x"
    )
    X = np.random.default_rng(1).normal(size=(a.rows, a.dim)).astype(np.float32)
    X64 = X.astype(np.float64)
    t_lgb, ref = best_of(lambda: booster.predict(X64, raw_score=True, num_threads=a.threads), a.repeat)
    t_np, mine = best_of(lambda: numpy_predict(model, X64), 1)
    assert np.allclose(mine, ref.reshape(len(X), -1), rtol=1e-9, atol=1e-9), np.abs(mine - ref).max()
    print(
        f"predict LightGBM {t_lgb:.3f} s ({a.threads} thread) | numpy traversal {t_np:.3f} s "
        f"(same raw scores) | ratio {t_np / t_lgb:.1f}x"
    )
    both = (t_parse + t_np) / (checked + t_lgb)
    print(
        f"load + one predict: checked text {checked + t_lgb:.3f} s vs numpy trees {t_parse + t_np:.3f} s "
        f"(their parse counted: arrays are read from a file too) | ratio {both:.1f}x"
    )


if __name__ == "__main__":
    main()

"""Scale-aware head defaults: epoch budgets, capped LightGBM bagging, flat-memory moments, logreg blocks."""

import numpy as np
import pytest

from embedkit.heads import get_head
from embedkit.heads import logreg as logreg_mod
from embedkit.heads.base import _mean_std
from embedkit.heads.mlp import epochs_within


def toy(n=600, d=12, c=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    Y = (X[:, :c] + 0.3 * rng.standard_normal((n, c)) > 0.5).astype(np.float32)
    return X, Y


def test_epochs_within_budget():
    assert epochs_within(60, 2_500_000, 36_000) == 60  # mlp: unchanged at every size bench_heads uses
    assert epochs_within(40, 2_500_000, 50_000) == 40
    assert epochs_within(40, 2_500_000, 500_000) == 5
    assert epochs_within(40, 2_500_000, 10_000_000) == 1
    from embedkit.heads import get_head

    assert get_head("mlp").budget_rows == get_head("mil").budget_rows == 2_500_000
    assert epochs_within(40, None, 10_000_000) == epochs_within(40, 0, 10**7) == 40


@pytest.mark.parametrize("name", ["mlp", "mil"])
def test_budget_caps_the_epochs_run(name):
    X, Y = toy()
    kw = {"epochs": 10, "n_jobs": 1}
    if name == "mlp":
        kw.update(patience=0, val_fraction=0.0)
    capped = get_head(name, budget_rows=3 * len(X), **kw).fit(X, Y)
    free = get_head(name, budget_rows=None, **kw).fit(X, Y)
    assert capped.n_epochs_ == 3 and free.n_epochs_ == 10
    assert capped.predict_proba(X).shape == Y.shape


def test_lgbm_negative_bagging_is_capped_by_rows():
    head = get_head("lgbm", max_neg_rows=30_000)
    assert head.lgb_params(1, n_rows=40_000)["neg_bagging_fraction"] == 0.3  # unchanged up to 100k rows
    p = head.lgb_params(1, n_rows=500_000)
    assert p["neg_bagging_fraction"] == pytest.approx(0.06) == p["scale_pos_weight"]
    assert get_head("lgbm", max_neg_rows=None).lgb_params(1, n_rows=500_000)["neg_bagging_fraction"] == 0.3
    X, Y = toy(n=400)
    a = get_head("lgbm", n_estimators=5, max_neg_rows=100).fit(X, Y).predict_proba(X)
    b = get_head("lgbm", n_estimators=5, max_neg_rows=None).fit(X, Y).predict_proba(X)
    assert not np.allclose(a, b)  # the cap reached LightGBM


def test_lgbm_rows_per_class_are_capped_above_max_rows():
    from sklearn.metrics import roc_auc_score

    head = get_head("lgbm", max_rows=300, seed=3)
    y = np.zeros(2000, bool)
    y[::40] = True  # 50 positives
    rows, keep = head._class_rows(y, c=1)
    assert len(rows) == 300 and np.all(np.diff(rows) > 0) and set(np.flatnonzero(y)) <= set(rows)
    assert keep == pytest.approx(250 / 1950)
    assert np.array_equal(rows, head._class_rows(y, c=1)[0])
    assert not np.array_equal(rows, head._class_rows(y, c=2)[0])
    p = head.lgb_params(1, n_rows=300, keep_neg=keep)
    assert p["scale_pos_weight"] == pytest.approx(0.3 * keep)  # bagging and sampling in one correction
    X, Xt = toy(n=3000, seed=4)[0], toy(n=1000, seed=5)[0]
    Y, Yt = (X[:, :3] > 2.0).astype(np.float32), (Xt[:, :3] > 2.0).astype(np.float32)  # rare, as BirdCLEF
    kw = {"n_estimators": 30, "min_data_in_leaf": 5, "n_jobs": 2}
    capped = get_head("lgbm", max_rows=800, **kw).fit(X, Y)
    full = get_head("lgbm", max_rows=None, **kw).fit(X, Y)
    Pc, Pf = capped.predict_proba(Xt), full.predict_proba(Xt)
    assert not np.allclose(Pc, Pf)  # the subsets reached LightGBM
    auc = [roc_auc_score(Yt[:, k], P[:, k]) for P in (Pc, Pf) for k in range(Y.shape[1])]
    assert min(auc) > 0.8 and np.mean(auc[:3]) > np.mean(auc[3:]) - 0.03  # capped no worse than every row


def test_blockwise_moments_equal_numpy():
    X = np.random.default_rng(1).standard_normal((5000, 7)).astype(np.float32) * 4 + 2
    m, s = _mean_std(X, rows=333)
    np.testing.assert_allclose(m, X.mean(0, dtype=np.float64), rtol=1e-12)
    np.testing.assert_allclose(s, X.std(0, dtype=np.float64), rtol=1e-10)


def test_logreg_blocks_give_the_same_fit(monkeypatch):
    X, Y = toy(n=900)
    one = get_head("logreg").fit(X, Y)
    monkeypatch.setattr(logreg_mod, "_ROWS", 128)  # 8 blocks instead of one
    blocks = get_head("logreg").fit(X, Y)
    np.testing.assert_allclose(blocks.predict_proba(X), one.predict_proba(X), atol=1e-4)
    np.testing.assert_allclose(blocks.coef_, one.coef_, atol=1e-3)


@pytest.mark.parametrize("name", ["logreg", "mlp", "mil"])
def test_heads_make_no_standardised_copy_of_x(name):
    import tracemalloc

    rng = np.random.default_rng(2)
    X = (rng.standard_normal((100_000, 16)) * 3 + 5).astype(np.float32)  # 6.4 MB, far from standardised
    Y = (X[:, :2] > 6).astype(np.float32)
    kw = {"max_iter": 20} if name == "logreg" else {"epochs": 1, "n_jobs": 1}
    groups = {"groups": np.arange(len(X)) // 20} if name == "mil" else {}  # recordings of 20 windows
    get_head(name, **kw).fit(X[:200], Y[:200], **{k: v[:200] for k, v in groups.items()})  # imports done
    tracemalloc.start()  # numpy's allocations are traced (torch's are not: batches stay out of the count)
    head = get_head(name, **kw).fit(X, Y, **groups)
    P = head.predict_proba(X[:5000])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.75 * X.nbytes  # a copy of X alone would be 1.0x
    if name == "logreg":  # the folded weights equal the standardised model
        Xs = (X[:5000] - head.mean_) / head.scale_
        np.testing.assert_allclose(P, 1 / (1 + np.exp(-(Xs @ head.coef_.T + head.intercept_))), atol=1e-5)
    else:  # the network sees standardised batches
        import torch

        with torch.no_grad():
            ref = torch.sigmoid(head.model_(torch.from_numpy((X[:5000] - head.mean_) / head.scale_))).numpy()
        np.testing.assert_allclose(P, ref, atol=1e-5)

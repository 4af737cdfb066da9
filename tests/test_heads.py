import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from embedkit.heads import Head, available, get_head, head_class, register
from embedkit.heads.base import binary_targets, constant_classes
from embedkit.metrics import birdclef_score

# small, fast settings per head (the defaults are sized for 20k x 1024 x 206)
FAST = {
    "logreg": {},
    "mlp": {"hidden": 64, "epochs": 40, "batch_size": 64, "lr": 3e-3, "n_jobs": 1},
    "lgbm": {"n_estimators": 40, "min_data_in_leaf": 5},
    "proto": {"prototypes": 2, "epochs": 40, "batch_size": 64, "lr": 3e-3},
}
HEADS = ["lgbm", "logreg", "mlp", "proto"]


def mixture(n=600, d=32, c=5, seed=0, sep=2.5):
    """Multi-label Gaussian mixture: each present class shifts its own 4 dimensions (its known direction)."""
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, c)) < 0.25).astype(np.float32)
    directions = np.zeros((c, d), np.float32)
    for k in range(c):
        directions[k, 4 * k : 4 * k + 4] = 1.0
    X = sep * (Y @ directions) + rng.standard_normal((n, d)).astype(np.float32) + 3.0
    return X.astype(np.float32), Y


@pytest.fixture(scope="module")
def data():
    X, Y = mixture()
    return X[:400], Y[:400], X[400:], Y[400:]


@pytest.fixture(scope="module")
def fitted(data):
    Xtr, Ytr, _, _ = data
    Ytr = np.hstack([Ytr, np.zeros((len(Ytr), 1), np.float32)])  # last class: no positives
    return {name: get_head(name, **FAST[name]).fit(Xtr, Ytr) for name in HEADS}


def test_registry():
    assert set(HEADS) <= set(available())
    for name in HEADS:
        assert issubclass(head_class(name), Head)
        assert head_class(name).name == name
        assert isinstance(get_head(name), head_class(name))
    with pytest.raises(ValueError, match="unknown head 'nope'.*lgbm.*logreg.*mlp"):
        get_head("nope")
    with pytest.raises(ValueError, match="choose one of"):
        head_class("nope")
    with pytest.raises(ValueError, match="registered twice"):

        @register("logreg")
        class Other(Head):
            pass


@pytest.mark.parametrize("name", HEADS)
def test_recovers_separating_directions(name, data, fitted):
    _, _, Xte, Yte = data
    P = fitted[name].predict_proba(Xte)
    assert birdclef_score(Yte, P[:, :5]) > 0.95


@pytest.mark.parametrize("name", HEADS)
def test_estimator_conventions(name, data, fitted):
    Xtr, Ytr, Xte, _ = data
    head = get_head(name, **FAST[name])
    assert not [k for k in vars(head) if k.endswith("_")], "learned attributes before fit"
    with pytest.raises(NotFittedError):
        head.predict_proba(Xte)
    assert head.fit(Xtr, Ytr) is head
    params = head.get_params()
    learned = [k for k in vars(head) if k not in params]
    assert learned and all(k.endswith("_") for k in learned), learned
    assert head.n_classes_ == 5 and head.n_features_in_ == 32
    P = head.predict_proba(Xte)
    assert P.shape == (len(Xte), 5) and P.dtype == np.float32
    assert P.min() >= 0 and P.max() <= 1
    with pytest.raises(ValueError, match="features"):
        head.predict_proba(Xte[:, :10])
    with pytest.raises(ValueError):
        head.fit(Xtr, Ytr[:10])


@pytest.mark.parametrize("name", HEADS)
def test_class_without_positives_predicts_zero(name, data, fitted):
    P = fitted[name].predict_proba(data[2])
    assert P.shape[1] == 6
    np.testing.assert_array_equal(P[:, 5], 0.0)
    assert not fitted[name].trained_[5]


@pytest.mark.parametrize("name", HEADS)
def test_save_load_identical(name, data, fitted, tmp_path):
    head = fitted[name]
    head.save(tmp_path / name)
    for loader in (Head.load, head_class(name).load):
        again = loader(tmp_path / name)
        assert type(again) is type(head)
        assert again.get_params() == head.get_params()
        np.testing.assert_array_equal(again.predict_proba(data[2]), head.predict_proba(data[2]))
    other = next(n for n in HEADS if n != name)
    with pytest.raises(ValueError, match="not a"):
        head_class(other).load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        Head.load(tmp_path / "missing")


@pytest.mark.parametrize("name", HEADS)
def test_clone_round_trips_params(name, fitted):
    head = fitted[name]
    twin = clone(head)
    assert type(twin) is type(head) and twin.get_params() == head.get_params()
    assert not hasattr(twin, "n_classes_")
    if "seed" in twin.get_params():
        twin.set_params(seed=7)
    else:
        twin.set_params(C=0.5)
    assert twin.get_params() != head.get_params()


def test_logreg_matches_sklearn(data):
    from sklearn.linear_model import LogisticRegression

    Xtr, Ytr, Xte, _ = data
    sw = np.random.default_rng(3).uniform(0.2, 2.0, len(Xtr))
    mean, std = Xtr.mean(0), Xtr.std(0)
    for cw, w in [(None, None), ("balanced", None), (None, sw)]:
        head = get_head("logreg", C=0.1, class_weight=cw, tol=1e-8, max_iter=2000)
        head.fit(Xtr, Ytr, sample_weight=w)
        ref = [
            LogisticRegression(C=0.1, class_weight=cw, tol=1e-10, max_iter=10_000)
            .fit((Xtr - mean) / std, Ytr[:, c], sample_weight=w)
            .predict_proba((Xte - mean) / std)[:, 1]
            for c in range(Ytr.shape[1])
        ]
        np.testing.assert_allclose(head.predict_proba(Xte), np.stack(ref, 1), atol=1e-3)


def test_lgbm_matches_plain_per_class_training(data):
    import lightgbm as lgb

    Xtr, Ytr, Xte, _ = data
    sw = np.random.default_rng(4).uniform(0.2, 2.0, len(Xtr)).astype(np.float32)
    for parallel in ("classes", "trees"):
        head = get_head("lgbm", parallel=parallel, n_jobs=2, **FAST["lgbm"]).fit(Xtr, Ytr, sample_weight=sw)
        params = head.lgb_params(num_threads=1 if parallel == "classes" else 2)
        ref = []
        for c in range(Ytr.shape[1]):
            ds = lgb.Dataset(Xtr, label=Ytr[:, c].copy(), weight=sw, params=params)
            ref.append(lgb.train(params, ds, num_boost_round=40).predict(Xte))
        np.testing.assert_allclose(head.predict_proba(Xte), np.stack(ref, 1), atol=1e-6)


def test_mlp_seeded():
    X, Y = mixture(n=300)
    a = get_head("mlp", seed=1, **FAST["mlp"]).fit(X, Y).predict_proba(X)
    b = get_head("mlp", seed=1, **FAST["mlp"]).fit(X, Y).predict_proba(X)
    c = get_head("mlp", seed=2, **FAST["mlp"]).fit(X, Y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4


def test_mlp_early_stopping_and_soft_targets():
    X, Y = mixture(n=300)
    head = get_head("mlp", epochs=200, patience=3, **{k: v for k, v in FAST["mlp"].items() if k != "epochs"})
    head.fit(X, Y * 0.9, sample_weight=np.linspace(0.5, 1.5, len(X)))
    assert head.n_epochs_ < 200 and head.best_epoch_ <= head.n_epochs_
    assert len(head.history_) == head.n_epochs_


def test_soft_targets_become_labels_and_weights():
    Y = np.array([[0.0, 0.7], [1.0, 0.3], [0.5, 0.49]], np.float32)
    labels, w = binary_targets(Y, None)
    np.testing.assert_array_equal(labels, [[False, True], [True, False], [True, False]])
    np.testing.assert_allclose(w, [[1.0, 0.7], [1.0, 0.7], [0.5, 0.51]], rtol=1e-6)
    assert binary_targets(np.array([[0.0, 1.0]], np.float32), None)[1] is None
    _, w = binary_targets(np.array([[0.0, 1.0]], np.float32), np.array([2.0], np.float32))
    np.testing.assert_array_equal(w, [[2.0, 2.0]])
    trainable, const = constant_classes(np.array([[0, 1, 1], [0, 1, 0]], bool))
    np.testing.assert_array_equal(trainable, [False, False, True])
    np.testing.assert_array_equal(const, [0.0, 1.0, 1.0])


def test_bad_targets_rejected(data):
    Xtr, Ytr, _, _ = data
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        get_head("logreg").fit(Xtr, Ytr * 2)
    with pytest.raises(ValueError, match="sample_weight"):
        get_head("logreg").fit(Xtr, Ytr, sample_weight=-np.ones(len(Xtr)))


def test_lgbm_merged_model_equals_separate_boosters():
    import lightgbm as lgb

    from embedkit.heads.lgbm import merge_model_strings

    X, Y = mixture(n=300)
    params = {"objective": "binary", "num_leaves": 7, "verbosity": -1, "num_threads": 1}
    rounds = [5, 12, 1, 8]  # unequal lengths: the merge pads with zero trees
    boosters = [lgb.train(params, lgb.Dataset(X, label=Y[:, c].copy()), r) for c, r in enumerate(rounds)]
    merged = lgb.Booster(model_str=merge_model_strings([b.model_to_string() for b in boosters]))
    raw = merged.predict(X, raw_score=True)
    np.testing.assert_allclose(raw, np.stack([b.predict(X, raw_score=True) for b in boosters], 1), atol=1e-12)

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from embedkit.metrics import (
    birdclef_score,
    macro_ap,
    padded_cmap,
    per_class_ap,
    per_class_auc,
    scorable_classes,
)

# 4 rows x 2 classes, AUC by counting (positive, negative) pairs ranked correctly (ties count 1/2):
# class 0: pos {0.9, 0.3} vs neg {0.8, 0.1}: 0.9>0.8, 0.9>0.1, 0.3<0.8, 0.3>0.1 -> 3/4
# class 1: pos {0.2, 0.6, 0.7} vs neg {0.5}: 0.2<0.5, 0.6>0.5, 0.7>0.5         -> 2/3
Y4 = np.array([[1, 0], [0, 1], [1, 1], [0, 1]], dtype=float)
S4 = np.array([[0.9, 0.5], [0.8, 0.2], [0.3, 0.6], [0.1, 0.7]])


def test_auc_by_hand():
    np.testing.assert_allclose(per_class_auc(Y4, S4), [3 / 4, 2 / 3])
    assert birdclef_score(Y4, S4) == pytest.approx((3 / 4 + 2 / 3) / 2)


def test_ties_count_half():
    y = np.array([[1], [0], [1], [0]])
    s = np.array([[0.5], [0.5], [0.9], [0.1]])
    # pairs: (0.5,0.5) tie=1/2, (0.5,0.1)=1, (0.9,0.5)=1, (0.9,0.1)=1 -> 3.5/4
    assert birdclef_score(y, s) == pytest.approx(3.5 / 4)


def test_class_without_positives_is_excluded():
    y = np.hstack([Y4, np.zeros((4, 1))])
    s = np.hstack([S4, np.array([[0.0], [1.0], [0.3], [0.2]])])
    assert birdclef_score(y, s) == pytest.approx((3 / 4 + 2 / 3) / 2)
    auc = per_class_auc(y, s)
    assert np.isnan(auc[2]) and not np.isnan(auc[:2]).any()


def test_class_with_only_positives_is_excluded():
    y = np.hstack([Y4, np.ones((4, 1))])
    s = np.hstack([S4, np.array([[0.0], [1.0], [0.3], [0.2]])])
    assert birdclef_score(y, s) == pytest.approx((3 / 4 + 2 / 3) / 2)
    np.testing.assert_array_equal(scorable_classes(y), [True, True, False])


def test_soft_truth_threshold():
    soft = np.where(Y4 > 0, 0.7, 0.2)
    assert birdclef_score(soft, S4) == pytest.approx(birdclef_score(Y4, S4))
    # 0.5 itself counts as positive
    assert birdclef_score(np.where(Y4 > 0, 0.5, 0.49), S4) == pytest.approx(birdclef_score(Y4, S4))


@pytest.mark.parametrize(
    ("scores", "expected"),
    [(np.full((4, 2), 0.3), 0.5), (Y4 * 0.8 + 0.1, 1.0), (1 - Y4, 0.0)],
    ids=["all-equal", "perfect", "reversed"],
)
def test_special_cases(scores, expected):
    assert birdclef_score(Y4, scores) == pytest.approx(expected)


def test_no_scorable_column_raises():
    with pytest.raises(ValueError, match="undefined"):
        birdclef_score(np.zeros((3, 2)), np.random.rand(3, 2))
    with pytest.raises(ValueError, match="undefined"):
        macro_ap(np.zeros((3, 2)), np.random.rand(3, 2))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        birdclef_score(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        birdclef_score(Y4, np.full((4, 2), np.nan))


def test_one_dimensional_input_is_one_column():
    assert birdclef_score(Y4[:, 0], S4[:, 0]) == pytest.approx(3 / 4)


def test_ap_by_hand():
    # class 0 ranking by score: 0.9(+) 0.8(-) 0.3(+) 0.1(-): AP = (1/1 + 2/3) / 2
    # class 1 ranking: 0.7(+) 0.6(+) 0.5(-) 0.2(+): AP = (1 + 1 + 3/4) / 3
    ap = per_class_ap(Y4, S4)
    np.testing.assert_allclose(ap, [(1 + 2 / 3) / 2, (2 + 3 / 4) / 3])
    y = np.hstack([Y4, np.zeros((4, 1))])
    s = np.hstack([S4, np.random.rand(4, 1)])
    assert np.isnan(per_class_ap(y, s)[2])
    assert macro_ap(y, s) == pytest.approx(ap.mean())


def test_padded_cmap_by_hand():
    # one class, truth [1, 0], scores [0.2, 0.8]; one padding row -> truth [1, 0, 1], scores [0.2, 0.8, 1]
    # ranking 1.0(+) 0.8(-) 0.2(+): AP = (1/1 + 2/3) / 2 = 5/6
    assert padded_cmap([[1], [0]], [[0.2], [0.8]], padding_factor=1) == pytest.approx(5 / 6)
    # a class with no positives: truth [0, 0], scores [0.2, 0.8]; two padding rows -> ranking 1(+) 1(+) .8 .2
    assert padded_cmap([[0], [0]], [[0.2], [0.8]], padding_factor=2) == pytest.approx(1.0)
    # two classes, padding 1: class 0 as above (5/6); class 1 truth [0, 1], scores [0.1, 0.9] -> 1.0
    y, s = [[1, 0], [0, 1]], [[0.2, 0.1], [0.8, 0.9]]
    assert padded_cmap(y, s, padding_factor=1) == pytest.approx((5 / 6 + 1) / 2)


def test_padded_cmap_matches_kaggle_formula():
    rng = np.random.default_rng(0)
    y = (rng.random((50, 7)) < 0.2).astype(float)
    s = rng.random((50, 7))
    pad = np.ones((5, 7))
    ref = average_precision_score(np.vstack([y, pad]), np.vstack([s, pad]), average="macro")
    assert padded_cmap(y, s) == pytest.approx(ref)
    with pytest.raises(ValueError):
        padded_cmap(np.zeros((3, 1)), np.zeros((3, 1)), padding_factor=0)


def test_agrees_with_sklearn_on_random_data():
    rng = np.random.default_rng(1)
    y = (rng.random((300, 20)) < 0.1).astype(float)
    y[:, 3] = 0  # unscorable column
    s = rng.random((300, 20)) + 0.3 * y
    keep = y.sum(0) > 0
    assert birdclef_score(y, s) == pytest.approx(roc_auc_score(y[:, keep], s[:, keep], average="macro"))
    ref = [roc_auc_score(y[:, c], s[:, c]) for c in np.flatnonzero(keep)]
    np.testing.assert_allclose(per_class_auc(y, s)[keep], ref)
    assert macro_ap(y, s) == pytest.approx(average_precision_score(y[:, keep], s[:, keep], average="macro"))

"""Per-class choice between the head, its blends with the zero-shot prior and the backbone alone."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from test_quality import make_root

from embedkit.config import ExtractConfig, FitConfig
from embedkit.extract import run_extract
from embedkit.predict.model import load_model, predict_model
from embedkit.train.run import run_fit
from embedkit.zeroshot import apply_prior, fit_prior_choice, prior_choices


def two_class_windows(n_rec: int, per: int = 4, seed: int = 0):
    """Class 0: the backbone's logit z separates it, the head is misled; class 1 the other way round."""
    rng = np.random.default_rng(seed)
    n = 2 * n_rec * per
    files = np.repeat(np.arange(2 * n_rec), per).astype(str)
    lab = np.repeat(np.arange(2 * n_rec) % 2, per)
    Y = np.zeros((n, 2), np.float32)
    Y[np.arange(n), lab] = 1
    informative = Y * 2.0 + rng.normal(0, 1, (n, 2))
    noise = rng.normal(0, 1, (n, 2))
    p_head = 1 / (1 + np.exp(-np.c_[noise[:, 0] - Y[:, 0], informative[:, 1]]))
    z = np.c_[informative[:, 0], noise[:, 1]].astype(np.float32)
    return p_head.astype(np.float32), z, Y, files


def test_apply_prior_head_weight_zero_is_the_backbone_alone():
    rng = np.random.default_rng(1)
    p, z = rng.uniform(0.01, 0.99, (20, 3)), rng.normal(0, 2, (20, 3))
    w, o = np.array([1.0, 0.5, 0.0]), np.array([0.2, -0.1, 0.0])
    out = apply_prior(p, z, w, o, head_weight=np.array([0.0, 1.0, 1.0]))
    # the backbone alone is its own probability: not shifted by the offset (0.2), as the zero-shot rows
    np.testing.assert_allclose(out[:, 0], 1 / (1 + np.exp(-z[:, 0])), rtol=1e-5)
    np.testing.assert_allclose(out[:, 1:], apply_prior(p, z, w, o)[:, 1:], rtol=1e-6)
    assert (1.0, 0.0) in prior_choices() and (0.0, 1.0) in prior_choices()


def test_per_class_choice_follows_strong_evidence():
    p, z, Y, files = two_class_windows(n_rec=40)
    mapped = np.array([True, True])
    w, a = fit_prior_choice(p, z, Y, mapped, files, per_class=True)
    assert a[0] == 0.0 and w[0] > 0  # class 0: the backbone's classifier alone
    assert a[1] == 1.0 and w[1] <= 0.25  # class 1: the head, at most a light prior
    ws, as_ = fit_prior_choice(p, z, Y, mapped, files, per_class=False)
    assert ws[0] == ws[1] and as_[0] == as_[1]  # shared: one pair for both


def test_per_class_choice_is_shrunk_on_few_recordings():
    """2 recordings per class: unshrunk, each class takes its own pair; shrunk (default), the shared one."""
    p, z, Y, files = two_class_windows(n_rec=2)
    mapped = np.array([True, True])
    shared = fit_prior_choice(p, z, Y, mapped, files, per_class=False)
    own = fit_prior_choice(p, z, Y, mapped, files, per_class=True, shrink=0.0)
    shrunk = fit_prior_choice(p, z, Y, mapped, files, per_class=True)
    assert not all(np.array_equal(x, y) for x, y in zip(own, shared, strict=True))
    for x, y in zip(shrunk, shared, strict=True):
        np.testing.assert_array_equal(x, y)


def test_unmapped_labels_keep_the_head():
    p, z, Y, files = two_class_windows(n_rec=10)
    w, a = fit_prior_choice(p, z, Y, np.array([False, True]), files, per_class=True)
    assert w[0] == 0 and a[0] == 1


@pytest.mark.parametrize("per_class", [False, True])
def test_a_mapped_label_the_head_never_saw_gets_the_backbone_alone(per_class):
    """No positive row (a fold whose other folds hold none of its recordings): the classifier alone."""
    p, z, Y, files = two_class_windows(n_rec=10)
    Y3 = np.c_[Y, np.zeros(len(Y), np.float32)]  # label 2: mapped, never a positive
    p3, z3 = np.c_[p, np.full(len(p), 0.5, np.float32)], np.c_[z, np.zeros(len(z), np.float32)]
    w, a = fit_prior_choice(p3, z3, Y3, np.array([True, True, True]), files, per_class=per_class)
    assert (w[2], a[2]) == (1.0, 0.0)
    w2, a2 = fit_prior_choice(p3, z3, Y3, np.array([True, True, False]), files, per_class=per_class)
    assert (w2[2], a2[2]) == (0.0, 1.0)  # unmapped: the head is all there is
    np.testing.assert_array_equal(w[:2], w2[:2])


def test_fixed_prior_weight_is_the_shared_pair():
    """A weight given (``--prior-choice scaled``): each mapped label the head saw gets the head at it."""
    p, z, Y, files = two_class_windows(n_rec=10)
    Y3 = np.c_[Y, np.zeros(len(Y), np.float32)]  # label 2: mapped, never a positive
    p3, z3 = np.c_[p, np.full(len(p), 0.5, np.float32)], np.c_[z, np.zeros(len(z), np.float32)]
    mapped = np.array([True, True, True])
    chosen = fit_prior_choice(p3, z3, Y3, mapped, files)
    w, a = fit_prior_choice(p3, z3, Y3, mapped, files, fixed=0.5)
    assert w.tolist() == [0.5, 0.5, 1.0] and a.tolist() == [1.0, 1.0, 0.0]  # label 2: the backbone alone
    assert (chosen[0][0], chosen[1][0]) != (0.5, 1.0)  # not what the choice on these windows would give
    w, a = fit_prior_choice(p3, z3, Y3, np.array([True, False, True]), files, fixed=0.3)
    assert w.tolist() == [np.float32(0.3), 0.0, 1.0] and a.tolist() == [1.0, 1.0, 0.0]  # unmapped: the head


def test_per_class_choice_chooses_whatever_the_fixed_weight():
    """``--prior-per-class`` chooses on the out-of-fold windows: a fixed weight does not enter it."""
    p, z, Y, files = two_class_windows(n_rec=40)
    mapped = np.array([True, True])
    for x, y in zip(fit_prior_choice(p, z, Y, mapped, files, per_class=True, fixed=0.5),
                    fit_prior_choice(p, z, Y, mapped, files, per_class=True), strict=True):  # fmt: skip
        np.testing.assert_array_equal(x, y)


def test_spread_ratio_and_the_scaled_blend_do_not_depend_on_the_heads_scale():
    """``--prior-choice scaled``: the weight follows the head's logit spread; the blend's ranking does not."""
    from embedkit.predict.apply import Windows
    from embedkit.train.cv import prior_from_oof, spread_ratio
    from embedkit.zeroshot import _logit

    p, z, Y, files = two_class_windows(n_rec=10)
    z = z * np.array([1.0, 4.0], np.float32)  # the backbone's spread differs per label
    h = _logit(p)
    ratio = np.median(h.std(0) / z.std(0))
    assert spread_ratio(p, z, np.array([True, True])) == pytest.approx(ratio, rel=1e-6)
    assert spread_ratio(p, z, np.array([False, False])) == 1.0
    data = Windows(np.zeros((len(p), 2), np.float32), files, z, Y)
    cfg = FitConfig()  # scaled, weight 2
    w1, o1, a1 = prior_from_oof(cfg, data, p, None)
    sharp = (1 / (1 + np.exp(-3 * h))).astype(np.float32)  # the same head, three times the logit scale
    w3, _, _ = prior_from_oof(cfg, data, sharp, None)
    assert a1.tolist() == [1.0, 1.0] and w1[0] == w1[1] == pytest.approx(2 * spread_ratio(p, z, [True, True]))
    np.testing.assert_allclose(w3, 3 * w1, rtol=1e-4)
    b1, b3 = apply_prior(p, z, w1, o1), apply_prior(sharp, z, w3, o1)  # the same blend, 3x the logit
    inside = np.abs(_logit(b3)) < 13  # probabilities are clipped at 1e-6 in logit space
    np.testing.assert_allclose(_logit(b3)[inside], 3 * _logit(b1)[inside], rtol=1e-3, atol=1e-3)
    w, _, _ = prior_from_oof(replace(cfg, prior_weight=4.0), data, p, None)
    np.testing.assert_allclose(w, 2 * w1, rtol=1e-6)


@pytest.fixture(scope="module")
def birdnet_set(tmp_path_factory):
    """Labels aaa, bbb (BirdNET classes) and ccc (none), extracted with BirdNET and its logits."""
    base = tmp_path_factory.mktemp("prior")
    root = make_root(base / "data", durs=(3.0, 5.0, 6.0))
    ex = ExtractConfig(backbone="birdnet", data=str(root), out=str(base / "emb"), save_logits=True, threads=1)
    run_extract(replace(ex, progress=False))
    return root, base / "emb"


@pytest.mark.slow
def test_fit_cli_prior_choice_and_weight(birdnet_set, tmp_path, capsys):
    """The default weight 2 in spreads; ``--prior-weight``; ``--prior-choice cv`` says it ignores it."""
    from embedkit.cli import main

    root, emb = birdnet_set
    base = ["fit", "--data", str(root), "--embeddings", str(emb), "--folds", "3", "--head", "logreg"]

    def weights(*flags, name):
        assert main([*base, "--out", str(tmp_path), "--name", name, *flags]) == 0
        return json.loads((tmp_path / name / "model.json").read_text())["zero_shot"]["weights"]

    default = weights(name="default")
    assert default[0] > 0 and default[0] == default[1] and default[2] == 0  # ccc is no BirdNET class
    assert "weight 2, in units of the logits' spreads" in capsys.readouterr().err
    np.testing.assert_allclose(weights("--prior-weight", "4", name="w"), np.multiply(default, 2), rtol=1e-5)
    no_cv = weights("--folds", "0", name="nocv")  # scaled by the spreads of a head's training predictions
    assert no_cv[0] > 0 and no_cv[0] == no_cv[1] and no_cv[2] == 0 and no_cv[0] != default[0]
    weights("--prior-choice", "cv", "--prior-weight", "4", name="cv")
    err = capsys.readouterr().err
    assert "--prior-weight 4 is not used: --prior-choice cv" in err and "chosen on the out-of-fold" in err
    assert main([*base, "--out", str(tmp_path), "--prior-weight", "-1"]) == 2
    assert "--prior-weight must be a number >= 0" in capsys.readouterr().err


@pytest.mark.slow
def test_prior_per_class_fit_and_infer_with_birdnet(birdnet_set, tmp_path):
    """``fit.py --prior-per-class`` records the choice; inference applies a stored head weight."""
    root, emb = birdnet_set
    cfg = FitConfig(head="logreg", backbone="birdnet", data=str(root), embeddings=str(emb), folds=3,
                    out=str(tmp_path / "models"), prior_per_class=True)  # fmt: skip
    res = run_fit(cfg)
    model = load_model(res.folder)
    zs = model.meta["zero_shot"]
    assert zs["mode"] == "prior" and zs["weights"][2] == 0  # ccc is no BirdNET class
    assert all(a in (0.0, 1.0) for a in zs.get("head_weight", [1.0, 1.0, 1.0]))
    rng = np.random.default_rng(0)
    emb_, logits = (
        rng.normal(0, 1, (4, model.meta["input_dim"])).astype(np.float32),  # extract.py's default: 4096
        rng.normal(0, 3, (4, 6522)).astype(np.float32),
    )
    before = predict_model(model, emb_, logits)
    # the backbone alone for aaa: its column must become BirdNET's own sigmoid(w * z) whatever the head says
    meta = json.loads((res.folder / "model.json").read_text())
    meta["zero_shot"]["head_weight"] = [0.0, 1.0, 1.0]
    meta["zero_shot"]["weights"][0] = 1.0
    (res.folder / "model.json").write_text(json.dumps(meta))
    after = predict_model(load_model(res.folder), emb_, logits)
    z0 = logits[:, zs["index"][0]]
    assert abs(zs["offset"][0]) > 0.1  # an offset that, applied, would show
    np.testing.assert_allclose(after[:, 0], 1 / (1 + np.exp(-z0)), rtol=1e-4)
    np.testing.assert_allclose(after[:, 1:], before[:, 1:], rtol=1e-5)

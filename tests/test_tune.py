"""Prior weight and smoothing learned on labelled soundscapes: ``embedkit compose``, ``fit.py --tune-on``,
the model's learned smoothing in ``infer.py``, and the nested evaluate row."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import write_audio
from test_quality import make_root

from embedkit.cli import main
from embedkit.config import ExtractConfig, FitConfig, InferConfig
from embedkit.errors import UsageError
from embedkit.extract import run_extract
from embedkit.predict.infer import run_infer
from embedkit.predict.model import load_model
from embedkit.predict.post import smooth_windows
from embedkit.predict.smoothing import DEFAULT_SMOOTH, resolve_smooth
from embedkit.train.run import run_fit
from embedkit.train.tune import SMOOTH_GRID, neighbour_mean, tune_post
from embedkit.zeroshot import PRIOR_GRID

# -- the grid search -------------------------------------------------------------------------------------


def _windows(n_files=60, per=12, c=4, seed=0, run=3):
    """Truth [N, C]: per file one call of each of two labels spanning ``run`` consecutive windows."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((n_files * per, c), np.float32)
    files = np.repeat([f"f{i}" for i in range(n_files)], per)
    window = np.tile(np.arange(per), n_files)
    for i in range(n_files):
        for lab in rng.choice(c, 2, replace=False):
            s = int(rng.integers(0, per - run + 1))
            truth[i * per + s : i * per + s + run, lab] = 1
    return truth, files, window, rng


def _sigmoid(x):
    return (1 / (1 + np.exp(-x))).astype(np.float32)


@pytest.mark.parametrize("informative, want", [(True, max(PRIOR_GRID)), (False, 0.0)])
def test_tune_post_picks_the_prior_weight_that_maximises_the_metric(informative, want):
    truth, files, window, rng = _windows(run=1)
    if informative:  # head logit: weak (separation 1, noise sd 2); zero-shot logit: strong (3, sd 1)
        h, z = truth + rng.normal(0, 2, truth.shape), truth * 3.0 + rng.normal(0, 1, truth.shape)
    else:  # head logit: strong (separation 2, sd 1); zero-shot logit: pure noise (sd 8)
        h, z = truth * 2.0 + rng.normal(0, 1, truth.shape), rng.normal(0, 8, truth.shape)
    mapped = np.array([True, True, True, False])
    t = tune_post(_sigmoid(h), z, np.zeros(4), mapped, truth, files, window)
    assert t.weights is not None and t.weights[3] == 0
    assert np.all(t.weights[:3] == want) and t.smooth == 0.0  # isolated positives: smoothing only hurts
    assert len(t.grid) == len(PRIOR_GRID) * len(SMOOTH_GRID)
    assert t.score == pytest.approx(max(g[2] for g in t.grid))


def test_tune_post_smooths_calls_that_span_windows_and_per_class_needs_a_margin():
    truth, files, window, rng = _windows(run=4)
    p = _sigmoid(truth * 1.0 + rng.normal(0, 1, truth.shape))  # independent noise per window
    t = tune_post(p, None, None, np.zeros(4, bool), truth, files, window)
    assert t.weights is None and t.smooth >= 0.375  # averaging neighbours of a 4-window call helps
    assert {g[0] for g in t.grid} == {None}
    # per-class weights: label 0's zero-shot logit is informative, the others' are noise
    z = rng.normal(0, 1, truth.shape)
    z[:, 0] += truth[:, 0] * 4
    shared = tune_post(p, z, np.zeros(4), np.ones(4, bool), truth, files, window)
    own = tune_post(p, z, np.zeros(4), np.ones(4, bool), truth, files, window, per_class=True)
    assert own.weights[0] > own.weights[1] and own.score >= shared.score - 1e-9
    with pytest.raises(UsageError, match="no label"):
        tune_post(p, None, None, np.zeros(4, bool), np.zeros_like(truth), files, window)


def test_neighbour_mean_is_smooth_windows_per_file_in_any_row_order():
    rng = np.random.default_rng(3)
    P = rng.random((30, 2)).astype(np.float32)
    files = np.repeat(["a", "b", "c"], [12, 17, 1])
    window = np.concatenate([np.arange(12), np.arange(17), [0]])
    order = rng.permutation(30)
    nb = neighbour_mean(P[order], files[order], window[order])
    got = np.empty_like(P)
    got[order] = 0.7 * P[order] + 0.3 * nb
    want = np.vstack([smooth_windows(P[files == f], 0.3) for f in ("a", "b", "c")])
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_resolve_smooth_flag_then_models_then_default():
    def m(name, s):
        return SimpleNamespace(folder=Path(name), meta={} if s is None else {"smooth": s})

    assert resolve_smooth(0.2, [m("a", 0.75)], np.ones(1)) == (0.2, "--smooth")
    assert resolve_smooth(0.0, [m("a", 0.75)], np.ones(1))[0] == 0.0  # an explicit 0 is kept
    assert resolve_smooth(None, [m("a", None)], np.ones(1)) == (DEFAULT_SMOOTH, "default")
    s, src = resolve_smooth(None, [m("mA", 0.25), m("mB", None)], np.array([0.5, 0.5]))
    assert s == pytest.approx(0.375) and "learned" in src and "(mA)" in src and "mB" not in src


# -- compose -> extract -> fit --tune-on -> infer ----------------------------------------------------------


@pytest.fixture(scope="module")
def tune_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("tune")
    root = make_root(base / "data", n=4, durs=(6.0, 9.0, 12.0, 7.0))
    bg = base / "bg"
    write_audio(bg / "wind.ogg", 20.0, freq=300.0, seed=5)
    write_audio(bg / "rain.ogg", 9.0, freq=6000.0, seed=6)
    run_extract(ExtractConfig(backbone="toy", data=str(root), out=str(base / "emb"), progress=False))
    return root, bg, base


def test_compose_writes_soundscapes_and_truth_that_score_reads(tune_env, tmp_path, capsys):
    root, bg, _ = tune_env
    out = tmp_path / "tune"
    args = ["compose", "--data", str(root), "--backgrounds", str(bg), "--out", str(out), "--n", "3",
            "--seed", "1", "--holdout", "0.25", "--sample-rate", "16000"]  # fmt: skip
    assert main(args) == 0
    audio = sorted(out.glob("*.ogg"))
    assert [p.name for p in audio] == [f"composed_{i:03d}.ogg" for i in range(3)]
    import soundfile as sf

    assert all(sf.info(str(p)).duration == pytest.approx(60.0) and sf.info(str(p)).samplerate == 16000
               for p in audio)  # fmt: skip
    truth = pd.read_csv(out / "truth.csv")
    assert len(truth) == 36 and list(truth.columns) == ["row_id", "aaa", "bbb", "ccc", "source"]
    assert truth["row_id"].iloc[0] == "composed_000_5" and truth[["aaa", "bbb", "ccc"]].to_numpy().sum() > 0
    held = json.loads((out / "compose.json").read_text())["held_out"]
    assert len(held) == 3 and {h.split("/")[0] for h in held} == {"aaa", "bbb", "ccc"}  # one per label
    used = set(";".join(truth["source"]).split(";"))
    assert used <= set(held) and used
    # a perfect submission scores 1 against it with embedkit score; a reversed one scores 0
    sub = truth.drop(columns="source")
    sub.to_csv(tmp_path / "sub.csv", index=False)
    assert main(["score", str(tmp_path / "sub.csv"), "--truth", str(out / "truth.csv")]) == 0
    assert "score 1.0000" in capsys.readouterr().out
    sub[["aaa", "bbb", "ccc"]] = 1 - sub[["aaa", "bbb", "ccc"]]
    sub.to_csv(tmp_path / "sub.csv", index=False)
    main(["score", str(tmp_path / "sub.csv"), "--truth", str(out / "truth.csv")])
    assert "score 0.0000" in capsys.readouterr().out
    # seeded: the same command elsewhere writes the same truth; an existing folder is refused
    assert main([*args[:6], str(tmp_path / "again"), *args[7:]]) == 0
    assert pd.read_csv(tmp_path / "again" / "truth.csv").equals(truth)
    assert main(args) == 2 and "not empty" in capsys.readouterr().err
    assert not list(tmp_path.glob(".tune.tmp-*"))


def test_fit_tune_on_stores_smoothing_that_infer_uses_unless_smooth_given(tune_env, capsys):
    root, bg, base = tune_env
    out = base / "scapes"
    assert main(["compose", "--data", str(root), "--backgrounds", str(bg), "--out", str(out), "--n", "4",
                 "--sample-rate", "16000", "--holdout", "0.25"]) == 0  # fmt: skip
    run_extract(ExtractConfig(backbone="toy", files=str(out), name="scapes", out=str(base / "emb"),
                              progress=False))  # fmt: skip
    emb, truth = str(base / "emb"), str(out / "truth.csv")
    cfg = FitConfig(head="logreg", backbone="toy", data=str(root), embeddings=emb, folds=2,
                    out=str(base / "models"), tune_on="scapes", tune_truth=truth)  # fmt: skip
    with pytest.raises(UsageError, match="go together"):
        run_fit(replace(cfg, tune_truth=None))
    bad = base / "bad_truth.csv"
    pd.DataFrame({"row_id": ["nosuch_5"], "aaa": [1]}).to_csv(bad, index=False)
    with pytest.raises(UsageError, match="none of the"):
        run_fit(replace(cfg, tune_truth=str(bad), name="bad"))
    model = load_model(run_fit(cfg).folder)
    tuning = model.meta["tuning"]
    assert model.meta["smooth"] == tuning["smooth"] and tuning["smooth"] in SMOOTH_GRID
    assert tuning["windows"] == 48 and tuning["held_out_recordings"] == 3 and tuning["prior_weight"] is None
    assert tuning["score"] == pytest.approx(max(g[2] for g in tuning["grid"]))
    assert "a head fit without the 3 recordings" in capsys.readouterr().err
    learned = model.meta["smooth"]
    other = 0.0 if learned > 0 else 0.5
    scapes = base / "test_soundscapes"
    write_audio(scapes / "S1.ogg", 30.0, freq=800.0, seed=7)
    write_audio(scapes / "S2.ogg", 20.0, freq=2500.0, seed=8)

    def infer(smooth):
        c = InferConfig(data=str(root), soundscapes=str(scapes), models=[str(model.folder)], smooth=smooth,
                        out=str(base / f"sub{smooth}.csv"), progress=False)  # fmt: skip
        return run_infer(c).probs

    auto = infer(None)
    assert f"smoothing {learned:g} (learned on soundscapes" in capsys.readouterr().err
    np.testing.assert_allclose(auto, infer(learned), atol=1e-6)
    assert not np.allclose(auto, infer(other), atol=1e-4)
    assert f"smoothing {other:g} (--smooth)" in capsys.readouterr().err


# -- evaluate: nested choice ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_evaluate_tuned_row_never_lets_a_fold_choose_on_its_own_soundscapes(tune_env, tmp_path):
    from embedkit.evaluate.data import load_clips
    from embedkit.evaluate.run import VARIANTS, run_config
    from embedkit.evaluate.testsets import load_testsets

    root, bg, base = tune_env
    fit = FitConfig(head="logreg", backbone="toy", data=str(root), embeddings=str(base / "emb"), folds=3)
    clips = load_clips(fit)
    tests = load_testsets(clips, 2, [0], tmp_path / "cache", None, bg)
    memo: dict = {}
    post = {"smooth": 0.5, "file_max": 0.0, "tune": True}
    r = run_config(fit, post, clips, tests, memo)
    assert {"cv", "sc", "fd", "chosen"} <= set(r) and r["post"] == "learned"
    assert [(s, k) for s, k, _, _ in r["chosen"]] == [(0, k) for k in range(3)]
    row = ("default, TTA off, prior & smoothing learned on soundscapes", {}, {"tune": True, "tta": ()})
    assert row in VARIANTS
    # scramble fold 0's soundscape truth: fold 0's choice must not move (it is made on folds 1, 2)
    rng = np.random.default_rng(0)
    rows = np.flatnonzero(tests.scapes.fold == 0)
    truth = tests.scapes.truth.copy()
    truth[rows] = truth[rng.permutation(rows)][:, ::-1]
    moved = replace(tests, scapes=replace(tests.scapes, truth=truth))
    r2 = run_config(fit, post, clips, moved, memo)
    assert r2["chosen"][0] == r["chosen"][0]
    np.testing.assert_allclose(r2["test"][rows], r["test"][rows])


@pytest.mark.slow
def test_tune_on_with_birdnet_logits_replaces_the_prior_weight(tmp_path):
    pytest.importorskip("ai_edge_litert")
    root = make_root(tmp_path / "data", n=3, durs=(3.0, 5.0, 6.0))
    write_audio(tmp_path / "bg" / "wind.ogg", 12.0, freq=300.0, seed=5)
    out = tmp_path / "scapes"
    assert main(["compose", "--data", str(root), "--backgrounds", str(tmp_path / "bg"), "--out", str(out),
                 "--n", "2", "--holdout", "0.34"]) == 0  # fmt: skip
    emb = tmp_path / "emb"
    ex = ExtractConfig(backbone="birdnet", data=str(root), out=str(emb), save_logits=True, threads=1,
                       progress=False)  # fmt: skip
    run_extract(ex)
    run_extract(replace(ex, files=str(out), name="scapes"))
    truth = str(out / "truth.csv")
    cfg = FitConfig(head="logreg", backbone="birdnet", data=str(root), embeddings=str(emb), folds=3,
                    out=str(tmp_path / "models"), tune_on="scapes", tune_truth=truth)  # fmt: skip
    model = load_model(run_fit(cfg).folder)
    zs, tuning = model.meta["zero_shot"], model.meta["tuning"]
    assert tuning["prior_weight"] in PRIOR_GRID and tuning["cv_prior_weight"] > 0  # scaled: any number
    assert zs["weights"][:2] == [tuning["prior_weight"]] * 2 and zs["weights"][2] == 0  # ccc: unmapped
    assert {g[0] for g in tuning["grid"]} == set(PRIOR_GRID) and tuning["windows"] == 24

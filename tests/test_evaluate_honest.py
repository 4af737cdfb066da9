"""embedkit evaluate without flattery: site-grouped background folds, paired bootstrap intervals, the
zero-shot grid, the head-only score and the second (strong-species) test."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from embedkit.config import FitConfig
from embedkit.errors import UsageError
from embedkit.evaluate.bootstrap import Bootstrap, compare_rows, fmt_delta, interval, weighted_auc
from embedkit.evaluate.data import ClipSet, SoundscapeSet
from embedkit.evaluate.groups import Backgrounds, assign_folds, auto_group, background_split, file_groups
from embedkit.evaluate.testsets import TestSets as Sets
from embedkit.evaluate.testsets import score_sets


def _silence(path, seconds, sr=8000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(int(seconds * sr), np.float32), sr)


# -- background groups -----------------------------------------------------------------------------------


def test_groups_rules_and_whole_groups_by_duration(tmp_path):
    assert auto_group("maad_S4A03895_20190522_001500.ogg") == "maad_S4A03895_20190522"
    assert auto_group("site/H02_20230420_074000.ogg") == "H02_20230420" and auto_group("rain.ogg") == "rain"
    rels = ["a/x_1.ogg", "a/x_2.ogg", "b/y_1.ogg", "z.ogg"]
    assert file_groups(rels, "auto") == ["x", "x", "y", "z"]
    assert file_groups(rels, "folder") == ["a", "a", "b", "z"]
    assert file_groups(rels, "file") == ["a/x_1", "a/x_2", "b/y_1", "z"]
    csv = tmp_path / "g.csv"
    csv.write_text("file,group\na/x_1.ogg,s1\ny_1.ogg,s1\n")
    assert file_groups(rels, str(csv)) == ["s1", "x", "s1", "z"]  # by path or by name; unlisted: auto
    with pytest.raises(UsageError, match="background-groups"):
        file_groups(rels, "bogus")
    # one long group stays whole; the rest fill the other folds by duration
    groups = ["big"] * 6 + ["a", "b", "b", "c", "d"]
    secs = np.array([10.0] * 6 + [30, 20, 20, 25, 5])
    fold = assign_folds(groups, secs, 3)
    assert len(set(fold[:6])) == 1 and fold[7] == fold[8]
    load = np.bincount(fold, secs, 3)
    assert sorted(load) == [45.0, 55.0, 60.0]  # big | b (40) + d (5) | a (30) + c (25)


def test_background_split_never_shares_a_group_across_test_and_negatives(tmp_path):
    bg = tmp_path / "bg"
    for i in range(6):
        _silence(bg / f"forest_2019_{i:02d}.wav", 10)
    for name, s in (("pond_a.wav", 12), ("pond_b.wav", 12), ("rain.wav", 15), ("wind.wav", 8)):
        _silence(bg / name, s)
    split = background_split(Backgrounds(str(bg)), 3)
    g = np.array(split.group)
    for k in range(3):
        test, neg = split.test_files(k), split.negatives_for(k)
        assert not (test & neg).any() and not set(g[test]) & set(g[neg])
    assert len(set(split.fold[g == "forest_2019"])) == 1 and len(set(split.fold[g == "pond"])) == 1
    assert "fold 0: 6 files, 60 s: forest_2019" in "\n".join(split.lines())
    # fewer groups than folds: the empty fold is composed over all files and gets no weak negatives
    few = background_split(Backgrounds(str(bg), "folder"), 3)  # top-level files: auto groups (4 groups)
    one = tmp_path / "one"
    _silence(one / "site_1.wav", 5)
    _silence(one / "site_2.wav", 5)
    s1 = background_split(one, 2)
    assert s1.test_files(1).all() and not s1.negatives_for(1).any() and not s1.negatives_for(0).any()
    assert few.group == split.group and background_split(Backgrounds(str(bg), "file"), 3).key() != split.key()


def test_shipped_backgrounds_keep_the_forest_site_in_one_fold(shared_data):
    split = background_split(shared_data / "backgrounds", 5)
    g = np.array(split.group)
    forest = g == "maad_S4A03895_20190522"
    assert forest.sum() == 96 and len(set(split.fold[forest])) == 1
    k = int(split.fold[forest][0])
    assert not split.negatives_for(k)[forest].any() and (split.fold[~forest] != k).all()
    assert all((split.fold == j).any() for j in range(5))


# -- paired bootstrap -------------------------------------------------------------------------------------


def _tests(n_sc=20, win=12, C=4, seed=0):
    rng = np.random.default_rng(seed)
    M = n_sc * win
    truth = rng.random((M, C)) < 0.15
    truth[0] = True
    files = np.repeat([f"field0/s{i:02d}" for i in range(n_sc)], win)
    sc = SoundscapeSet(np.zeros((M, 2), np.float32), None, truth, np.repeat(np.arange(n_sc) % 3, win), files,
                       np.tile(np.arange(win), n_sc))  # fmt: skip
    strong = np.array([True, True, False, False])
    return Sets(sc, [("field", 0, np.ones(M, bool))], strong=strong), rng


def test_weighted_auc_is_sklearns_auc_of_the_resample():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y, s = rng.random(200) < 0.3, np.round(rng.random(200), 1)  # ties
    idx = rng.integers(0, 200, 200)
    W = np.vstack([np.ones(200), np.bincount(idx, minlength=200)])
    got = weighted_auc(y, s, W)
    assert got[0] == pytest.approx(roc_auc_score(y, s))
    assert got[1] == pytest.approx(roc_auc_score(y[idx], s[idx]))


def test_paired_intervals_exclude_zero_only_for_a_real_difference():
    tests, rng = _tests()
    mapped = np.array([True, True, True, False])
    good = tests.scapes.truth + rng.normal(0, 0.5, tests.scapes.truth.shape)
    twin = good + rng.normal(0, 0.01, good.shape)
    bad = rng.random(good.shape)
    rows = []
    for name, P in (("zs good", good), ("zs bad", bad), ("**default**", twin)):
        zs = name.startswith("zs")
        r = {"test": P, "zero_shot": zs, "head_test": None if zs else bad}
        r.update(score_sets(tests, P, mapped, _scores))
        r["ho_mapped"] = score_sets(tests, bad, mapped, _scores)["fd_mapped"]
        rows.append((name, r))
    d = compare_rows(rows, tests, mapped, "zs good", "**default**", n=300, seed=3)
    lo, hi = d["zs bad"]["vs_best22"][1]
    assert hi < 0 and d["zs bad"]["vs_best22"][0] < 0  # clearly worse: interval below 0
    delta, (lo, hi) = d["**default**"]["vs_best22"]
    assert lo <= delta <= hi and lo < 0 < hi  # the same scores up to noise: no win
    assert d["**default**"]["ho22_vs_best"][1][1] < 0 and "vs_def22" not in d["**default**"]
    assert d == compare_rows(rows, tests, mapped, "zs good", "**default**", n=300, seed=3)  # seeded
    assert fmt_delta(0.01, (0.002, 0.02)).startswith("**+0.010") and fmt_delta(0.01, (-0.01, 0.02))[0] == "+"
    assert np.isnan(interval(np.full(3, np.nan), np.zeros(3))[0])
    b = Bootstrap(tests, "field", 50, 0)
    assert len(b.sets) == 3  # one per fold
    assert b.sets[0][1].sum(1).tolist() == [7 * 12] * 50  # each resample: fold 0's 7 soundscapes, 12 windows


def test_soundscapes_are_scored_per_fold_so_an_offset_between_heads_changes_nothing():
    """Fold k's windows are ranked among themselves (one head, one test), then the folds are averaged."""
    from embedkit.evaluate.scoring import scores

    tests, rng = _tests()
    mapped = np.array([True, True, True, False])
    P = tests.scapes.truth + rng.normal(0, 0.8, tests.scapes.truth.shape)
    shifted = P + 3.0 * tests.scapes.fold[:, None]  # fold 2's head says everything 6 logits louder
    a, b = score_sets(tests, P, mapped, _scores), score_sets(tests, shifted, mapped, _scores)
    assert a["fd"] == pytest.approx(b["fd"]) and a["fd_mapped"] == pytest.approx(b["fd_mapped"])
    pooled = scores(tests.scapes.truth, shifted, mapped)[0]
    assert abs(pooled - b["fd"]) > 0.02  # pooled over the folds, the offset would have moved it
    per_fold = [scores(tests.scapes.truth[m], P[m], mapped)[0] for _, _, m in tests.scored("field")]
    assert len(per_fold) == 3 and a["fd"] == pytest.approx(np.mean(per_fold))
    bs = Bootstrap(tests, "field", 40, 0)
    np.testing.assert_allclose(bs.scores(P, mapped), bs.scores(shifted, mapped))


def _scores(truth, P, mapped):
    from embedkit.evaluate.scoring import scores

    return scores(truth, P, mapped)


def test_second_test_scores_strong_species_on_windows_without_other_calls():
    tests, rng = _tests()
    mapped = np.array([True, True, True, False])
    P = rng.random(tests.scapes.truth.shape)
    P[:, 2:] = tests.scapes.truth[:, 2:]  # perfect on the non-strong labels: must not count
    r = score_sets(tests, P, mapped, _scores)
    rows = tests.strong_rows(np.ones(len(P), bool))
    assert not tests.scapes.truth[rows][:, 2:].any() and rows.sum() < len(P)
    want = []  # per fold, as every soundscape score
    for _, _, m in tests.scored("field"):
        r_ = tests.strong_rows(m)
        want.append(_scores(tests.scapes.truth[r_][:, :2], P[r_][:, :2], np.ones(2, bool))[0])
    assert r["st"] == pytest.approx(np.mean(want)) and r["st"] < 0.8


# -- zero-shot grid, head only ----------------------------------------------------------------------------


def test_zero_shot_grid_covers_every_post_processing_and_best_is_the_max():
    from embedkit.evaluate.zsgrid import GRID, best_row

    assert len(set(GRID)) == 18
    assert {g[0] for g in GRID} == {0.0, 0.25, 0.5} and {g[1] for g in GRID} == {0.0, 0.25}
    assert {(g[2], g[3]) for g in GRID} == {((), "mean"), ((1.25,), "mean"), ((1.25,), "max")}
    rows = [("a", {"zero_shot": True, "fd_mapped": 0.9}), ("b", {"zero_shot": True, "fd_mapped": 0.93}),
            ("head", {"fd_mapped": 0.99})]  # fmt: skip
    assert best_row(rows) == "b"


def _clip_set(rng, n_files=15, win=6, C=3, K=5):
    files = np.repeat([f"c{i % C}/r{i:02d}.ogg" for i in range(n_files)], win)
    lab = np.repeat(np.arange(n_files) % C, win)
    truth = np.eye(C, dtype=bool)[lab]
    X = (rng.normal(0, 1, (len(files), 8)) + np.eye(C, 8)[lab] * 1.5).astype(np.float32)
    L = rng.normal(-2, 1, (len(files), K)).astype(np.float32)
    L[np.arange(len(files)), lab] += 3.0  # the backbone knows classes 0..C-1 (label c → class c)
    fold = np.repeat(np.arange(n_files) % 3, win)
    index = np.array([0, 1, -1])
    return ClipSet(X, L, truth, np.zeros_like(truth), files, np.tile(np.arange(win), n_files), fold,
                   ["a", "b", "c"], index, {}, "")  # fmt: skip


def test_prior_blended_after_the_off_fit_is_cross_validate_and_head_only_is_the_off_row():
    from dataclasses import replace

    from embedkit.evaluate.fitrow import run_config
    from embedkit.predict.apply import Windows
    from embedkit.train.cv import cross_validate
    from embedkit.zeroshot import class_logits

    rng = np.random.default_rng(0)
    clips = _clip_set(rng)
    sc = _clip_set(rng, n_files=9)
    fold = np.repeat(np.arange(9) // 3, 6)  # each fold's soundscapes hold all three labels
    scapes = SoundscapeSet(sc.X, sc.L, sc.truth, fold, np.char.add("field0/", sc.files), sc.window)
    tests = Sets(scapes, [("field", 0, np.ones(len(sc.X), bool))], strong=np.array([True, False, False]))
    cfg = FitConfig(head="logreg", folds=3, zero_shot="prior", weak_negatives=0.0)
    post = {"smooth": 0.0, "file_max": 0.0, "tta": ()}
    memo: dict = {}
    r = run_config(cfg, post, clips, tests, memo)
    z, zs = class_logits(clips.L, clips.index), class_logits(scapes.L, clips.index)
    data = Windows(clips.X, clips.files, z, clips.targets(0.0))
    test = (Windows(scapes.X, scapes.files, zs), scapes.fold)
    oof, _, tp = cross_validate(cfg, data, clips.fold, None, 0.0, test)
    np.testing.assert_allclose(r["test"], tp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r["oof"], oof, rtol=1e-5, atol=1e-6)
    off = run_config(replace(cfg, zero_shot="off"), post, clips, tests, memo)
    np.testing.assert_allclose(r["head_test"], off["test"])
    assert r["ho"] == pytest.approx(off["fd"]) and r["ho_mapped"] == pytest.approx(off["fd_mapped"])
    assert not np.allclose(r["test"], off["test"]) and len(memo) == 1  # one fit serves both rows


# -- the CLI: --rows, --background-groups, the split under the tables ------------------------------------


def test_evaluate_cli_rows_filter_grouped_split_and_out(tmp_path, capsys):
    from conftest import write_audio
    from test_quality import make_root

    from embedkit.cli import main
    from embedkit.config import ExtractConfig
    from embedkit.extract import run_extract

    root = make_root(tmp_path / "data")
    run_extract(ExtractConfig(backbone="toy", data=str(root), out=str(tmp_path / "emb"), progress=False))
    bg = tmp_path / "bg"
    for name, s in (("siteA_1.ogg", 8.0), ("siteA_2.ogg", 8.0), ("siteB_1.ogg", 9.0), ("rain.ogg", 7.0)):
        write_audio(bg / name, s, freq=300.0, seed=len(name))
    out = tmp_path / "table.md"
    args = ["evaluate", "--data", str(root), "--embeddings", str(tmp_path / "emb"), "--set", "backbone=toy",
            "folds=3", "--table", "--rows", "logreg, plain", "--soundscapes", "1", "--tta", "0",
            "--backgrounds", str(bg), "--cache", str(tmp_path / "cache"), "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    err, text = capsys.readouterr().err, out.read_text()
    assert "rows not run" in err and "default, head mil" in err.split("rows not run")[1]
    names = [ln.split(" | ")[0].lstrip("| ") for ln in text.splitlines() if ln.startswith("| ")]
    assert names[1:] == ["logreg, plain", "**default**"] and "head only (prior off)" in text
    assert "* fold 0: 2 files, 16 s: siteA" in text and not (tmp_path / "table.md.partial").exists()
    assert main([*args[:-2], "--background-groups", "nonsense"]) == 2


# -- the learning curve: --recordings-share --------------------------------------------------------------


def test_recordings_share_keeps_a_seeded_share_of_each_label():
    from embedkit.evaluate.share import kept_recordings, share_of

    clips = _clip_set(np.random.default_rng(0), n_files=15)  # 5 recordings per label
    keep = kept_recordings(clips, 0.4, seed=0)
    assert len(keep) == 6 and sorted({f.split("/")[0] for f in keep}) == ["c0", "c1", "c2"]
    assert all(sum(f.startswith(f"c{c}/") for f in keep) == 2 for c in range(3))
    np.testing.assert_array_equal(keep, kept_recordings(clips, 0.4, seed=0))
    assert any(not np.array_equal(keep, kept_recordings(clips, 0.4, seed=s)) for s in (1, 2, 3))
    assert len(kept_recordings(clips, 0.01)) == 3  # at least one per label
    cut = share_of(clips, 0.4)
    assert set(cut.files) == set(keep) and len(cut.X) == len(cut.L) == len(cut.fold) == 6 * 6
    np.testing.assert_array_equal(cut.fold, clips.fold[np.isin(clips.files, keep)])
    assert share_of(clips, 1.0) is clips
    with pytest.raises(UsageError, match="--recordings-share must be in"):
        kept_recordings(clips, 0.0)


def test_evaluate_cli_recordings_share(tmp_path, capsys):
    from test_quality import make_root

    from embedkit.cli import main
    from embedkit.config import ExtractConfig
    from embedkit.extract import run_extract

    root = make_root(tmp_path / "data")
    run_extract(ExtractConfig(backbone="toy", data=str(root), out=str(tmp_path / "emb"), progress=False))
    args = ["evaluate", "--data", str(root), "--embeddings", str(tmp_path / "emb"), "--set", "backbone=toy",
            "folds=3", "--soundscapes", "1", "--tta", "0", "--cache", str(tmp_path / "cache")]  # fmt: skip
    assert main([*args, "--recordings-share", "1.5"]) == 2
    assert "--recordings-share must be in (0, 1], got 1.5" in capsys.readouterr().err
    assert main([*args, "--recordings-share", "0.5"]) == 0
    err = capsys.readouterr().err
    n = len(list((root / "train_audio").rglob("*.ogg")))
    assert "--recordings-share 0.5 (seed 0): " in err and f" of {n} recordings train" in err

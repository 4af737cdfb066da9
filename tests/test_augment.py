"""Augmented embeddings (issue 14, item 2): the mixing, variant rows at extraction, fit and evaluate."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import ToyBackbone, write_audio
from test_fit import make_root

from embedkit.audio.augment import Augment, augment_window, scale_to_snr, snr_db, time_shift
from embedkit.config import ExtractConfig, FitConfig, InferConfig
from embedkit.errors import UsageError
from embedkit.extract import run_extract
from embedkit.store import StoreError, read_embeddings, read_provenance, shard_paths
from embedkit.train.run import read_oof, run_fit

SR = 16000


def _bg_folder(path):
    write_audio(path / "wind.ogg", 9.0, sr=SR, freq=300.0, seed=5)
    write_audio(path / "rain.ogg", 4.0, sr=SR, freq=6000.0, seed=6)
    return path


# -- the mixing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("db", [-5.0, 0.0, 7.5])
def test_mix_has_the_drawn_snr(db):
    rng = np.random.default_rng(0)
    x = (0.1 * np.sin(np.arange(SR) / 7.0)).astype(np.float32)
    bgs = [rng.normal(0, 0.02, SR * 3).astype(np.float32)]
    y, mixed = augment_window(x, bgs, np.random.default_rng(1), Augment(snr_db=(db, db)), SR)
    assert not mixed and y.shape == x.shape and y.dtype == np.float32
    assert snr_db(x, y - x) == pytest.approx(db, abs=0.01)  # the added background sits at exactly db
    assert scale_to_snr(np.zeros(10, np.float32), bgs[0][:10], 0.0).max() == 0.0  # silent: no background


def test_mix_is_seeded_and_gain_shift_mixup_apply():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.05, SR).astype(np.float32)
    other = rng.normal(0, 0.05, SR // 2).astype(np.float32)
    bgs = [rng.normal(0, 0.3, SR // 2).astype(np.float32), rng.normal(0, 0.01, 2 * SR).astype(np.float32)]
    aug = Augment(snr_db=(0.0, 10.0), gain_db=(-6.0, -6.0), shift_s=0.2, mixup=1.0)
    a, ma = augment_window(x, bgs, np.random.default_rng(7), aug, SR, other)
    b, mb = augment_window(x, bgs, np.random.default_rng(7), aug, SR, other)
    c, _ = augment_window(x, bgs, np.random.default_rng(8), aug, SR, other)
    assert np.array_equal(a, b) and ma and mb and not np.array_equal(a, c)
    assert np.abs(a).max() <= 0.99
    assert augment_window(x, bgs, np.random.default_rng(7), replace(aug, mixup=0.0), SR, other)[1] is False
    s = time_shift(np.arange(5, dtype=np.float32), 2)
    assert s.tolist() == [0, 0, 0, 1, 2] and time_shift(s, -2).tolist() == [0, 1, 2, 0, 0]
    loud = augment_window(np.full(SR, 0.9, np.float32), [], np.random.default_rng(0), Augment(), SR)[0]
    assert np.abs(loud).max() <= 0.99  # no background (empty list) and the peak limit still holds
    with pytest.raises(ValueError, match="snr_db"):
        Augment(snr_db=(5.0, -5.0))


# -- extraction ----------------------------------------------------------------------------------------------


def _cfg(root, out, bg, **kw):
    base = dict(backbone="toy", data=str(root), out=str(out), progress=False, augment_background=str(bg))
    return ExtractConfig(**{**base, "variants": 2, "snr_db": [0.0, 5.0], **kw})


def test_variant_rows_and_provenance(toy_split, tmp_path):
    bg = _bg_folder(tmp_path / "bg")
    s = run_extract(_cfg(toy_split, tmp_path / "aug", bg, batch_size=5))
    clean = run_extract(
        ExtractConfig(backbone="toy", data=str(toy_split), out=str(tmp_path / "c"), progress=False)
    )
    keys, X = read_embeddings(s.dataset, variants=True)
    per = keys.groupby(["file", "window"])["variant"].apply(list)
    assert (per.apply(sorted) == per.apply(lambda v: [0, 1, 2])).all()  # K=2 variants per window
    assert s.windows == len(per) == clean.windows  # the summary counts windows, not rows
    k0, X0 = read_embeddings(s.dataset)  # default: clean rows only, equal to a clean extraction
    kc, Xc = read_embeddings(clean.dataset)
    assert "variant" not in k0.columns and k0.equals(kc) and np.array_equal(X0, Xc)
    mixed = X[keys["variant"].to_numpy() > 0]
    assert not np.isclose(mixed, np.repeat(X0, 2, axis=0), atol=1e-3).all(axis=1).any()
    aug = read_provenance(s.dataset)["augment"]
    assert aug["variants"] == 2 and aug["snr_db"] == [0.0, 5.0] and aug["seed"] == 0 and aug["files"] == 2
    assert aug["backgrounds"] == str(bg) and len(aug["files_sha256"]) == 64 and aug["mixup"] == 0.0
    # a rerun (another batch size, another process order) gives the same variants: seeded per file + window
    s2 = run_extract(_cfg(toy_split, tmp_path / "aug2", bg, batch_size=3))
    k2, X2 = read_embeddings(s2.dataset, variants=True)
    assert k2.equals(keys) and np.array_equal(X2, X)
    assert "variant" in read_embeddings(clean.dataset, variants=True)[0]  # clean datasets: all variant 0


def test_resume_after_a_crash_mid_file_keeps_every_row_once(toy_split, tmp_path):
    bg = _bg_folder(tmp_path / "bg")
    ref = run_extract(_cfg(toy_split, tmp_path / "ref", bg))
    k_ref, X_ref = read_embeddings(ref.dataset, variants=True)
    cfg = _cfg(toy_split, tmp_path / "emb", bg, batch_size=2, flush_s=0.0)
    with pytest.raises(KeyboardInterrupt):
        run_extract(cfg, backbone=ToyBackbone(fail_after=9))  # killed in the middle of a file's rows
    partial, _ = read_embeddings(tmp_path / "emb" / "toy" / "train_audio", variants=True)
    assert 0 < partial["file"].nunique() < 9
    assert (partial.groupby("file").size() == k_ref.groupby("file").size()[partial["file"].unique()]).all()
    run_extract(cfg)
    k, X = read_embeddings(cfg.out + "/toy/train_audio", variants=True)
    assert not k.duplicated(["file", "window", "variant"]).any()
    assert k.equals(k_ref) and np.array_equal(X, X_ref)


def test_mismatched_augmentation_is_refused(toy_split, tmp_path):
    bg = _bg_folder(tmp_path / "bg")
    clean = ExtractConfig(
        backbone="toy", data=str(toy_split), out=str(tmp_path / "e"), progress=False, part="0/2"
    )
    run_extract(clean)
    with pytest.raises(UsageError, match="augment"):  # augmented rows into a clean dataset
        run_extract(_cfg(toy_split, tmp_path / "e", bg, part="1/2"))
    other = run_extract(_cfg(toy_split, tmp_path / "o", bg, part="1/2", snr_db=[-3.0, -3.0]))
    run_extract(_cfg(toy_split, tmp_path / "p", bg, part="0/2"))
    mixed = shard_paths(other.dataset) + shard_paths(tmp_path / "p" / "toy" / "train_audio")
    with pytest.raises(StoreError, match="mix augmentation settings"):  # shards of two settings read together
        read_embeddings(mixed)
    for bad, msg in (({"variants": 0}, "--variants"), ({"snr_db": [5.0, 1.0]}, "snr_db")):
        with pytest.raises(UsageError, match=msg):
            run_extract(_cfg(toy_split, tmp_path / "x", bg, **bad))
    with pytest.raises(UsageError, match="no audio files"):
        run_extract(_cfg(toy_split, tmp_path / "x", tmp_path / "nothing"))
    from embedkit.extract.ray import run_extract_ray

    with pytest.raises(UsageError, match="engine local"):
        run_extract_ray(_cfg(toy_split, tmp_path / "x", bg, engine="ray"))


# -- fit -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aug_ds(tmp_path_factory):
    """(data root, clean embeddings root, augmented embeddings root) of test_fit's 4-label data."""
    base = tmp_path_factory.mktemp("augfit")
    root = make_root(base / "data")
    bg = _bg_folder(base / "bg")
    kw = dict(backbone="toy", data=str(root), progress=False)
    run_extract(ExtractConfig(out=str(base / "clean"), **kw))
    run_extract(ExtractConfig(out=str(base / "aug"), augment_background=str(bg), variants=2, **kw))
    return root, base / "clean", base / "aug"


def _fit(root, emb, out, **kw):
    cfg = FitConfig(head="logreg", backbone="toy", data=str(root), embeddings=str(emb), out=str(out), folds=3)
    return run_fit(replace(cfg, **kw))


def test_fit_augmented_clean_equals_a_clean_fit(aug_ds, tmp_path):
    root, clean, aug = aug_ds
    a = _fit(root, clean, tmp_path / "m", name="clean")
    b = _fit(root, aug, tmp_path / "m", name="ignore", augmented="clean")
    assert a.scores == b.scores and np.array_equal(a.oof, b.oof)
    meta_b = json.loads((b.folder / "model.json").read_text())
    assert meta_b["n_augmented"] == 0


def test_fit_clean_plus_mixed_scores_clean_rows_and_keeps_variants_in_fold(aug_ds, tmp_path, monkeypatch):
    import embedkit.train.cv as cv

    root, clean, aug = aug_ds
    seen = []
    real = cv.fit_pipeline

    def spy(cfg, train, *a, **k):
        seen.append(train.files.copy())
        return real(cfg, train, *a, **k)

    monkeypatch.setattr(cv, "fit_pipeline", spy)
    r = _fit(root, aug, tmp_path / "m", name="mixed", augmented="clean+mixed")
    keys, _, _ = read_oof(r.folder)
    n_clean = len(read_embeddings(clean / "toy" / "train_audio")[0])
    assert len(keys) == n_clean and len(r.oof) == n_clean  # CV scores the clean rows only
    fold = dict(zip(keys["file"], keys["fold"], strict=False))
    for k, files in enumerate(seen):  # fold k's head: 2 mixed + 1 clean row per window of the other folds
        assert not any(fold[f] == k for f in files)
        n_tr = int((keys["fold"] != k).sum())
        assert len(files) == 3 * n_tr
    meta = json.loads((r.folder / "model.json").read_text())
    assert meta["n_augmented"] == 2 * n_clean and meta["config"]["augmented"] == "clean+mixed"
    assert r.scores["roc_auc"] > 0.8
    # the model records the augmentation, and still applies to clean test audio (infer's provenance check)
    from embedkit.predict.infer import run_infer
    from embedkit.predict.model import load_model

    model = load_model(r.folder)
    assert model.provenance["augment"]["variants"] == 2
    model.check(read_provenance(clean / "toy" / "train_audio"))
    write_audio(tmp_path / "sc" / "S1.ogg", 10.0, sr=32000, freq=1500.0, seed=9)
    res = run_infer(InferConfig(data=str(root), soundscapes=str(tmp_path / "sc"), models=[str(r.folder)],
                                out=str(tmp_path / "sub.csv"), progress=False))  # fmt: skip
    assert not res.problems and res.probs.shape == (2, 4)
    with pytest.raises(UsageError, match="--fuse"):
        _fit(root, aug, tmp_path / "m", name="f", augmented="clean+mixed", fuse=["toy"])


# -- evaluate ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_evaluate_augmented_rows_use_own_fold_backgrounds(aug_ds, tmp_path):
    from embedkit.evaluate.augmented import augmented_set
    from embedkit.evaluate.data import load_clips
    from embedkit.evaluate.run import VARIANTS, run_evaluate

    root, clean, _ = aug_ds
    bg = _bg_folder(tmp_path / "bg")
    fit = FitConfig(head="logreg", backbone="toy", data=str(root), embeddings=str(clean), folds=3)
    cache = tmp_path / "cache"
    aug = replace(fit, augmented="clean+mixed")
    res = run_evaluate(aug, InferConfig(smooth=0.3), False, 2, [0], cache, None, bg, {"augment_variants": 1})
    r = res[1]["configuration"]
    base = run_evaluate(fit, InferConfig(smooth=0.3), False, 2, [0], cache, None, bg)[1]["configuration"]
    assert 0.0 <= r["fd"] <= 1.0 and r["cv"] > 0.5 and not np.array_equal(r["test"], base["test"])
    assert len(list(cache.glob("augmented-*.npz"))) == 1  # K=1: one cached variant
    clips = load_clips(fit)
    from embedkit.evaluate.augmented import EVAL_AUGMENT

    s = augmented_set(clips, bg, 2, replace(EVAL_AUGMENT, mixup=1.0), 0, cache)
    assert len(s.X) == 2 * len(clips.X) and s.variant.tolist().count(2) == len(clips.X)
    assert np.array_equal(s.fold, clips.fold[s.row])
    m = s.mix >= 0
    prim = clips.truth.argmax(1)
    assert m.any() and (clips.fold[s.mix[m]] == s.fold[m]).all() and (prim[s.mix[m]] != prim[s.row[m]]).all()
    Y = s.targets(clips.targets(0.0))
    assert (Y[m].sum(1) == 2).all()  # mixup: labels united
    assert {"default, augmented K=2"} <= {v[0] for v in VARIANTS}


def test_cli_flags_and_one_line_errors(toy_split, tmp_path, capsys):
    from embedkit.cli import main

    bg = _bg_folder(tmp_path / "bg")
    base = ["extract", "--backbone", "toy", "--data", str(toy_split), "--no-progress", "--augment-background",
            str(bg), "--variants", "1"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "e"), "--snr-db", "-5", "10", "--gain-db", "-3", "0"]) == 0
    aug = read_provenance(tmp_path / "e" / "toy" / "train_audio")["augment"]
    assert aug["snr_db"] == [-5.0, 10.0] and aug["gain_db"] == [-3.0, 0.0] and aug["variants"] == 1
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "f"), "--snr-db", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--snr-db" in err and len(err.splitlines()) == 1

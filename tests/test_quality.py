"""Quality options on seeded data: zero-shot features/prior, MIL head, weights, weak negatives, self-training,
post-processing, fusion, the soundscape composer and ``embedkit evaluate``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ToyBackbone, write_audio

from embedkit.backbones import register
from embedkit.config import ExtractConfig, FitConfig, InferConfig
from embedkit.errors import UsageError
from embedkit.evaluate.compose import compose
from embedkit.extract import run_extract
from embedkit.heads import get_head
from embedkit.predict.apply import Windows, predict_pipeline
from embedkit.predict.infer import run_infer
from embedkit.predict.model import ModelError, load_model
from embedkit.predict.post import file_max_blend
from embedkit.train.recipe import class_weights, confidence_weights, fit_pipeline, pseudo_labels
from embedkit.train.run import run_fit
from embedkit.zeroshot import apply_prior, class_logits, fit_prior_choice, map_species

SCI = {"aaa": "Coereba flaveola", "bbb": "Todus mexicanus", "ccc": "Nosuchus birdus"}  # ccc: unmapped
FREQ = {"aaa": 800.0, "bbb": 2500.0, "ccc": 5000.0}


def make_root(root: Path, n: int = 3, durs=(5.0, 9.0, 12.0)) -> Path:
    rows = []
    for li, lab in enumerate(sorted(FREQ)):
        for j in range(n):
            fn = f"{lab}/XC{li}{j}.ogg"
            write_audio(root / "train_audio" / fn, durs[j % len(durs)], freq=FREQ[lab], seed=10 * li + j)
            rows.append((lab, "[]", fn, f"au{j}"))
    pd.DataFrame(rows, columns=["primary_label", "secondary_labels", "filename", "author"]).to_csv(
        root / "train.csv", index=False
    )
    pd.DataFrame({"primary_label": list(SCI), "scientific_name": list(SCI.values())}).to_csv(
        root / "taxonomy.csv", index=False
    )
    return root


@pytest.fixture(scope="module")
def toy_ds(tmp_path_factory):
    base = tmp_path_factory.mktemp("quality")
    root = make_root(base / "data")
    run_extract(ExtractConfig(backbone="toy", data=str(root), out=str(base / "emb"), progress=False))
    return root, base / "emb"


def seeded(n_rec=12, per=4, c=3, d=6, seed=0):
    """Bags of windows: only the first window of a recording holds its label's signal."""
    rng = np.random.default_rng(seed)
    X, Y, files, z = [], [], [], []
    for r in range(n_rec):
        lab = r % c
        for w in range(per):
            x = rng.normal(0, 1, d)
            if w == 0:
                x[lab] += 3.0
            X.append(x)
            y = np.zeros(c)
            y[lab] = 1
            Y.append(y)
            files.append(f"r{r}")
            zz = rng.normal(-5, 1, c)
            zz[lab] += 4.0 if w == 0 else 0.0
            z.append(zz)
    return Windows(np.float32(X), np.array(files), np.float32(z), np.float32(Y))


# -- zero-shot ---------------------------------------------------------------------------------------------


def test_map_species_by_scientific_name():
    bl = ["Coereba flaveola_Bananaquit", "Todus  Mexicanus_Puerto Rican Tody", "Other bird_X"]
    idx = map_species(
        ["a", "b", "c", "d"], {"a": "coereba flaveola", "b": "Todus mexicanus", "c": "Nope"}, bl
    )
    assert idx.tolist() == [0, 1, -1, -1]
    assert class_logits(np.arange(6, dtype=np.float32).reshape(2, 3), idx).tolist() == [
        [0, 1, 0, 0],
        [3, 4, 0, 0],
    ]


def test_prior_weight_learned_when_informative_and_zero_when_noise():
    w = seeded(n_rec=30)
    rng = np.random.default_rng(1)
    p = np.clip(w.Y * 0.2 + rng.uniform(0, 0.6, w.Y.shape), 0, 1)
    mapped = np.array([True, True, False])
    good, head_weight = fit_prior_choice(p, w.z, w.Y, mapped, w.files)
    assert good[0] > 0 and good[1] > 0 and good[2] == 0
    noise, _ = fit_prior_choice(w.Y * 0.9 + 0.05, rng.normal(size=w.Y.shape), w.Y, mapped, w.files)
    assert (noise == 0).all()
    out = apply_prior(p, w.z, good, w.z.mean(0), head_weight)
    assert out.shape == p.shape and np.allclose(out[:, 2], p[:, 2], atol=1e-5)


def test_weights_class_and_confidence():
    w = seeded()
    Y = w.Y.copy()
    Y[4:8] = 0
    Y[4:8, 0] = 1  # recording r1 relabelled: labels 0, 1, 2 have 5, 3, 4 recordings
    cw = class_weights(Y, w.files, 1.0)
    assert np.isclose(cw.mean(), 1) and cw[Y[:, 1] > 0].min() > cw[Y[:, 2] > 0].max() > cw[Y[:, 0] > 0].max()
    cf = confidence_weights(w.Y, w.files, w.z, 0.8)
    assert np.allclose(cf[::4], 1.0) and cf.min() >= 0.2 - 1e-6  # the calling window ranks first


def test_mil_head_and_groups():
    w = seeded(n_rec=18, per=5, d=6)
    calling = np.arange(len(w.X)) % 5 == 0
    gaps = []
    for bag_weight in (0.0, 0.5):
        h = get_head("mil", epochs=30, lr=1e-2, bags_per_step=4, bag_weight=bag_weight, n_jobs=1)
        P = h.fit(w.X, w.Y, groups=w.files).predict_proba(w.X)
        assert P.shape == w.Y.shape and h.n_epochs_ == 30
        gaps.append(P[calling][w.Y[calling] > 0].mean() - P[~calling][w.Y[~calling] > 0].mean())
    assert gaps[1] > gaps[0] > 0  # the bag loss lets quiet windows of a labelled recording stay low
    with pytest.raises(ValueError, match="groups"):
        h.fit(w.X, w.Y, groups=w.files[:3])


def test_pseudo_labels_threshold_and_power():
    keep, T = pseudo_labels(np.array([[0.9, 0.2], [0.4, 0.3]]), 0.5, 2.0)
    assert keep.tolist() == [True, False] and np.allclose(T, [[0.81, 0.04]])


def test_fit_pipeline_weak_negatives_and_self_training():
    w = seeded(n_rec=12)
    pool = Windows(np.random.default_rng(3).normal(0, 1, (20, 6)).astype(np.float32), np.array(["u"] * 20))
    pool.X[:5, 0] += 3  # five unlabelled windows of label 0
    cfg = FitConfig(head="logreg", params={"C": 1.0}, weak_negatives=0.1, pseudo=2, pseudo_threshold=0.6)
    head = fit_pipeline(cfg, w, pool)
    assert predict_pipeline(head, pool, False)[:5, 0].mean() > 0.5
    feats = fit_pipeline(replace(cfg, zero_shot="features", weak_negatives=0, pseudo=0), w)
    assert feats.n_features_in_ == 6 + 3


def test_file_max_blend():
    p = np.array([[0.1, 0.0], [0.9, 0.2]], np.float32)
    assert np.allclose(file_max_blend(p, 0.5), [[0.5, 0.1], [0.9, 0.2]])
    assert np.allclose(file_max_blend(p, 0.0), p)


# -- fit: zero-shot needs logits, auto falls back, fusion ---------------------------------------------------


def test_zero_shot_needs_logits_auto_falls_back(toy_ds, tmp_path):
    root, emb = toy_ds
    cfg = FitConfig(
        head="logreg", backbone="toy", data=str(root), embeddings=str(emb), out=str(tmp_path), folds=3
    )
    with pytest.raises(UsageError, match="--save-logits"):
        run_fit(replace(cfg, zero_shot="prior"))
    res = run_fit(replace(cfg, zero_shot="auto", class_weight=0.5))
    meta = json.loads((res.folder / "model.json").read_text())
    assert "zero_shot" not in meta and meta["needs_logits"] is False
    assert cfg.weak_negatives > 0  # on by default: the fit above ran without --unlabelled, so it skipped them
    with pytest.raises(UsageError, match="--unlabelled"):
        run_fit(replace(cfg, pseudo=1))
    res = run_fit(replace(cfg, unlabelled="train_audio", weak_negatives=0.1, pseudo=1, pseudo_threshold=0.5))
    assert res.scores["roc_auc"] > 0.8


@register("toy3")
class Toy3(ToyBackbone):
    """A second toy backbone (3 bands) for fusion."""

    def __init__(self, dim: int = 3, window_s: float = 5.0, batch_size: int = 32):
        super().__init__(dim=dim, window_s=window_s, batch_size=batch_size)


def test_fusion_fit_and_infer(toy_ds, tmp_path):
    root, emb = toy_ds
    run_extract(ExtractConfig(backbone="toy3", data=str(root), out=str(emb), progress=False))
    cfg = FitConfig(head="logreg", backbone="toy", data=str(root), embeddings=str(emb), out=str(tmp_path),
                    folds=3, fuse=["toy3"])  # fmt: skip
    model = load_model(run_fit(cfg).folder)
    assert model.folder.name == "toy+toy3-logreg"  # a fused model's default name says so (not toy-logreg)
    assert [(p["backbone"], p["dim"]) for p in model.meta["fusion"]] == [("toy", 8), ("toy3", 3)]
    with pytest.raises(ModelError):
        model.predict(np.zeros((2, 8), np.float32))
    write_audio(tmp_path / "sc" / "S1.ogg", 10.0, freq=800.0, seed=5)
    r = run_infer(InferConfig(data=str(root), soundscapes=str(tmp_path / "sc"), models=[str(model.folder)],
                              out=str(tmp_path / "sub.csv"), progress=False, smooth=0.0, tta=[]))  # fmt: skip
    from embedkit.audio import load_mono

    x = load_mono(tmp_path / "sc" / "S1.ogg", 16000)[: 2 * 80000].reshape(2, -1)
    X = np.hstack([ToyBackbone().embed(x), Toy3().embed(x)])
    assert not r.problems and np.allclose(r.probs, model.predict(X), atol=1e-5)


# -- birdnet: zero-shot prior from fit to infer -------------------------------------------------------------


@pytest.mark.slow
def test_zero_shot_prior_fit_and_infer_with_birdnet(tmp_path):
    pytest.importorskip("ai_edge_litert")
    root = make_root(tmp_path / "data", durs=(3.0, 5.0, 6.0))
    emb = tmp_path / "emb"
    ex = ExtractConfig(backbone="birdnet", data=str(root), out=str(emb), save_logits=True, threads=1)
    run_extract(replace(ex, progress=False))
    cfg = FitConfig(head="logreg", backbone="birdnet", data=str(root), embeddings=str(emb), folds=3,
                    out=str(tmp_path / "models"), zero_shot="both", confidence_weight=0.5)  # fmt: skip
    res = run_fit(cfg)
    model = load_model(res.folder)
    zs = model.meta["zero_shot"]
    assert model.meta["needs_logits"] and zs["mode"] == "both"
    assert zs["index"][2] == -1 and min(zs["index"][:2]) >= 0 and zs["weights"][2] == 0
    with pytest.raises(ModelError, match="logits"):
        model.predict(np.zeros((1, 4096), np.float32))  # extract.py's default: 2 chunks x (mean, max) x 1024
    scapes = tmp_path / "test_soundscapes"
    write_audio(scapes / "S1.ogg", 10.0, freq=800.0, seed=5)
    out = tmp_path / "sub.csv"
    r = run_infer(InferConfig(data=str(root), soundscapes=str(scapes), models=[str(res.folder)], out=str(out),
                              smooth=0.5, file_max=0.2, progress=False, threads=1))  # fmt: skip
    assert not r.problems and r.probs.shape == (2, 3)


# -- soundscapes and evaluate --------------------------------------------------------------------------------


def test_compose_is_seeded_and_labels_call_windows():
    sr = 8000
    rng = np.random.default_rng(0)
    recs = [((rng.normal(0, 0.1, sr * 8) * (k + 1)).astype(np.float32), k, f"r{k}") for k in range(3)]
    a = compose(recs, 3, 2, sample_rate=sr, duration_s=20.0, seed=4)
    b = compose(recs, 3, 2, sample_rate=sr, duration_s=20.0, seed=4)
    assert np.array_equal(a[0].audio, b[0].audio) and a[0].truth.shape == (4, 3)
    for sc in a:
        for cls, t0, t1, _ in sc.events:
            w0, w1 = int(t0 // 5), int(min(t1, 19.99) // 5)
            assert sc.truth[w0 : w1 + 1, cls].any()
        assert np.abs(sc.audio).max() <= 1.0


def test_evaluate_on_toy_data(toy_ds, tmp_path):
    from embedkit.evaluate.run import VARIANTS, run_evaluate

    root, emb = toy_ds
    fit = FitConfig(head="logreg", backbone="toy", data=str(root), embeddings=str(emb), folds=3)
    lines, res, clips, scapes = run_evaluate(fit, InferConfig(smooth=0.3), False, 2, 0, tmp_path / "cache")
    assert len(scapes.X) == 3 * 2 * 12 and res["configuration"]["cv"] > 0.8
    assert lines[0].startswith("| configuration |") and len(lines) == 3
    assert list((tmp_path / "cache").glob("soundscapes-*.npz"))
    assert {"**default**", "default, self-training 1 round"} <= {v[0] for v in VARIANTS}


def test_compose_field_snr_overlap_and_seed():
    from embedkit.evaluate.field import compose_field

    sr = 8000
    rng = np.random.default_rng(1)
    recs = [(rng.normal(0, 0.1, sr * 8).astype(np.float32), k, f"r{k}") for k in range(6)]
    bgs = [rng.normal(0, s, sr * L).astype(np.float32) for s, L in ((0.01, 7), (0.3, 25))]
    kw = {"sample_rate": sr, "duration_s": 30.0, "calls": (4, 6), "overlap": 1.0}
    a = compose_field(recs, bgs, 6, 3, seed=2, **kw)
    b = compose_field(recs, bgs, 6, 3, seed=2, **kw)
    assert np.array_equal(a[1].audio, b[1].audio) and a[0].truth.shape == (6, 6)
    assert not np.array_equal(a[0].audio, compose_field(recs, bgs, 6, 3, seed=3, **kw)[0].audio)
    for sc in a:  # overlap=1: every call after the first overlaps an earlier one
        ev = sc.events
        hit = [any(p[1] < e[2] and e[1] < p[2] for p in ev[:i]) for i, e in enumerate(ev) if i]
        assert len(ev) >= 4 and all(hit)
        assert (sc.truth.sum(1) >= 2).any() and np.abs(sc.audio).max() <= 1.0
    # SNR: a call at -20 dB barely changes the mix; at +20 dB it dominates its stretch
    lo = compose_field(recs[:1], bgs[:1], 6, 1, seed=0, snr_db=(-20.0, -20.0), calls=(1, 1), sample_rate=sr,
                       duration_s=30.0, background_dbfs=(-30.0, -30.0))[0]  # fmt: skip
    hi = compose_field(recs[:1], bgs[:1], 6, 1, seed=0, snr_db=(20.0, 20.0), calls=(1, 1), sample_rate=sr,
                       duration_s=30.0, background_dbfs=(-30.0, -30.0))[0]  # fmt: skip
    _, t0, t1, _ = hi.events[0]
    seg = slice(int(t0 * sr) + 800, int(t1 * sr) - 800)
    rest = np.r_[0 : int(t0 * sr)] if t0 > 1 else np.r_[int(t1 * sr) : len(hi.audio)]
    ratio_hi = np.std(hi.audio[seg]) / np.std(hi.audio[rest])
    ratio_lo = np.std(lo.audio[seg]) / np.std(lo.audio[rest])
    assert ratio_hi > 5 and ratio_lo < 1.1


@pytest.mark.slow
def test_evaluate_with_real_backgrounds_two_seeds(toy_ds, tmp_path):
    from embedkit.evaluate.run import run_evaluate

    root, emb = toy_ds
    bg = tmp_path / "bg"
    write_audio(bg / "wind.ogg", 14.0, freq=300.0, seed=5)
    write_audio(bg / "rain.ogg", 7.0, freq=6000.0, seed=6)
    fit = FitConfig(head="logreg", backbone="toy", data=str(root), embeddings=str(emb), folds=3)
    cache = tmp_path / "cache"
    inf = InferConfig(smooth=0.3, tta=[])
    lines, res, clips, scapes = run_evaluate(fit, inf, False, 2, [0, 1], cache, None, bg)
    r = res["configuration"]
    assert {"sc", "sc_mapped", "fd", "fd_mapped"} <= set(r) and 0.0 <= r["fd"] <= 1.0
    assert set(r["per_seed"]) == {("synthetic", 0), ("synthetic", 1), ("field", 0), ("field", 1)}
    assert r["fd"] == pytest.approx(np.mean([r["per_seed"][("field", s)][0] for s in (0, 1)]))
    assert len(scapes.X) == 4 * 3 * 2 * 12 and "real bg, 3" in lines[0]
    assert len(list(cache.glob("soundscapes-*.npz"))) == 4
    again = run_evaluate(fit, inf, False, 2, [0, 1], cache, None, bg)[1]["configuration"]
    assert again["fd"] == pytest.approx(r["fd"])  # cached sets, same seeds: same scores
    with pytest.raises(UsageError, match="no audio files"):
        run_evaluate(fit, InferConfig(), False, 2, [5], cache, None, tmp_path / "empty")
    from embedkit.evaluate.data import background_windows

    bgw = background_windows(clips, bg, cache)  # groups by duration: wind (14 s) fold 0, rain (7 s) fold 1
    assert bgw.files.tolist() == ["rain.ogg", "wind.ogg", "wind.ogg"] and bgw.fold.tolist() == [1, 0, 0]
    # weak negatives (on by default) come from the other folds' background windows: off, another head
    neg = replace(fit, weak_negatives=0.0)
    r2 = run_evaluate(neg, inf, False, 2, [0, 1], cache, None, bg)[1]["configuration"]
    assert r2["fd"] != pytest.approx(r["fd"]) and len(list(cache.glob("backgrounds-*.npz"))) == 1


def test_unlabelled_shards_without_logits_serve_weak_negatives_but_not_a_gate(toy_ds, capsys):
    """README's ``fit.py --unlabelled train_soundscapes`` after extracting them without --save-logits: weak
    negatives need no logits; the BirdNET gate of self-training does (one line, not a silent no-gate)."""
    from embedkit.store import read_provenance
    from embedkit.train.cv import load_unlabelled

    root, emb = toy_ds
    prov = read_provenance(emb / "toy" / "train_audio")
    inputs = {
        "index": np.array([0, 1, -1]),
        "parts": [{"backbone": "toy", "provenance": prov, "dim": prov["dim"]}],
    }
    cfg = FitConfig(
        backbone="toy", data=str(root), embeddings=str(emb), unlabelled="train_audio", zero_shot="prior"
    )
    u = load_unlabelled(cfg, inputs)
    assert u is not None and u.z is None and len(u.X) > 0
    cfg = replace(cfg, pseudo=1)
    assert load_unlabelled(cfg, inputs).z is None
    assert "head alone" in capsys.readouterr().err  # said, not silently dropped
    with pytest.raises(UsageError, match="--pseudo-gate needs"):
        load_unlabelled(replace(cfg, pseudo_gate=0.5), inputs)


def test_evaluate_ensemble_row_is_the_mean_of_its_members(toy_ds, tmp_path):
    from embedkit.evaluate.data import load_clips
    from embedkit.evaluate.ensemble import ensemble_row
    from embedkit.evaluate.fitrow import run_config
    from embedkit.evaluate.run import VARIANTS
    from embedkit.evaluate.testsets import load_testsets

    root, emb = toy_ds
    fit = FitConfig(head="logreg", backbone="toy", data=str(root), embeddings=str(emb), folds=3)
    clips = load_clips(fit)
    tests = load_testsets(clips, 2, [0], tmp_path / "cache")
    post = {"smooth": 0.3, "file_max": 0.0, "tta": ()}
    a = run_config(fit, post, clips, tests)
    b = run_config(replace(fit, head="proto", params={"epochs": 5}), post, clips, tests)
    same = ensemble_row([a, a], clips, tests)
    assert same["cv"] == pytest.approx(a["cv"]) and same["sc"] == pytest.approx(a["sc"])
    both = ensemble_row([a, b], clips, tests)
    assert np.allclose(both["test"], (a["test"] + b["test"]) / 2) and both["sc"] != pytest.approx(a["sc"])
    names = {v[0] for v in VARIANTS}
    for name, change, _ in VARIANTS:  # every ensemble row names rows that exist, listed before it
        for m in change.get("ensemble", []):
            assert m in names and [v[0] for v in VARIANTS].index(m) < [v[0] for v in VARIANTS].index(name)

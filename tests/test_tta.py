"""Test-time augmentation (shifted windows, averaged after the head) and BirdNET-gated pseudo-labels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import ToyBackbone, write_audio

from embedkit.audio import Windowing, iter_windows
from embedkit.audio.stream import embed_files
from embedkit.audio.tta import iter_shifted_windows, shifted_starts, shifted_windows, tta_offsets
from embedkit.birdclef import expected_row_ids, validate_submission
from embedkit.config import ExtractConfig, FitConfig, InferConfig
from embedkit.extract import run_extract
from embedkit.predict.infer import run_infer
from embedkit.predict.tta import predict_variants, reduce_variants
from embedkit.train.recipe import pseudo_labels
from embedkit.train.run import run_fit

# -- windows ---------------------------------------------------------------------------------------------


def test_tta_offsets_from_the_flag():
    assert tta_offsets([1.25]) == (-1.25, 1.25)
    assert tta_offsets([2.0, 1.0, -1.0]) == (-2.0, -1.0, 1.0, 2.0)
    assert tta_offsets([]) == tta_offsets([0.0]) == tta_offsets(None) == ()
    with pytest.raises(ValueError, match="finite"):
        tta_offsets([float("nan")])


def test_shifted_starts_are_clipped_at_both_ends():
    # 12 s at 100 Hz: windows at 0, 5 s and a padded tail at 10 s; shifts of -1.25 / +1.25 s
    starts = shifted_starts(np.array([0, 500, 1000]), n=1200, win=500, offsets=[-125, 125])
    assert starts.tolist() == [
        [0, 0, 125],  # the first window's -1.25 s would start before the file: it is the window itself
        [500, 375, 625],  # inside: both shifts as asked
        [1000, 875, 1000],  # the padded tail only moves back (no further past the end than unshifted)
    ]
    # the last full window's +shift stops at the file end (n - win)
    assert shifted_starts(np.array([500]), n=1050, win=500, offsets=[125]).tolist() == [[500, 550]]


def test_shifted_windows_cut_the_signal_at_the_starts():
    sr = 100
    x = np.arange(1200, dtype=np.float32)  # sample value = its index
    V = shifted_windows(x, sr, (-1.25, 1.25))
    assert V.shape == (3, 3, 500)
    assert V[1, 1, 0] == 375 and V[1, 2, 0] == 625 and V[0, 1, 0] == 0
    assert np.array_equal(V[2, 0, :200], x[1000:]) and not V[2, 0, 200:].any()  # padded tail as before
    assert np.array_equal(V[:, :1], shifted_windows(x, sr, ())[:, :1])
    assert shifted_windows(x, sr, ()).shape == (3, 1, 500)


@pytest.mark.parametrize("dur", [3.0, 5.0, 12.3, 31.7])
def test_streamed_shifted_windows_equal_the_whole_file(tmp_path, dur):
    sr = 8000
    x = np.random.default_rng(int(dur * 10)).normal(0, 0.1, int(dur * sr)).astype(np.float32)
    p = tmp_path / "a.wav"
    sf.write(p, x, sr, subtype="FLOAT")
    for offs in [(-1.25, 1.25), (2.5,), (-0.5,)]:
        whole = shifted_windows(x, sr, offs)
        streamed = np.concatenate([v for _, v in iter_shifted_windows(p, sr, offs, block_s=1.3)])
        assert np.array_equal(streamed, whole)
        plain = np.concatenate([v for _, v in iter_windows(p, sr, Windowing())])
        assert np.array_equal(whole[:, 0], plain)  # variant 0 = the windows without TTA
    capped = np.concatenate([v for _, v in iter_shifted_windows(p, sr, (1.0,), Windowing(max_windows=1))])
    assert capped.shape == (1, 2, 5 * sr)


def test_embed_files_with_offsets_adds_the_shifted_embeddings(tmp_path):
    paths = [write_audio(tmp_path / f"{i}.wav", d, sr=16000, freq=900.0 + 400 * i, seed=i)
             for i, d in enumerate([12.0, 4.0])]  # fmt: skip
    bb = ToyBackbone()
    plain = {f.index: f for f in embed_files(bb, paths, progress=False)}
    tta = {f.index: f for f in embed_files(bb, paths, progress=False, offsets=(-1.25, 1.25), batch_size=5)}
    for k, p in enumerate(paths):
        a, b = plain[k], tta[k]
        assert a.shifted is None and b.shifted.shape == (2, *a.emb.shape)
        np.testing.assert_allclose(b.emb, a.emb, rtol=1e-6)  # rows unchanged
        x = sf.read(p, dtype="float32")[0]
        V = shifted_windows(x, 16000, (-1.25, 1.25))
        for s in range(2):
            np.testing.assert_allclose(b.shifted[s], bb.embed(V[:, s + 1]), rtol=1e-6)


# -- averaging -------------------------------------------------------------------------------------------


def test_predict_variants_mean_max_and_no_tta():
    def head(e, lg):
        return 1 / (1 + np.exp(-(e[:, :2] + (0 if lg is None else lg))))

    rng = np.random.default_rng(0)
    emb, sh = rng.normal(size=(4, 3)), rng.normal(size=(2, 4, 3))
    lg, shl = rng.normal(size=(4, 2)), rng.normal(size=(2, 4, 2))
    assert np.array_equal(predict_variants(head, emb, lg, None, None), head(emb, lg))
    assert np.array_equal(predict_variants(head, emb, lg, sh[:0], shl[:0]), head(emb, lg))
    every = np.stack([head(emb, lg), head(sh[0], shl[0]), head(sh[1], shl[1])])
    np.testing.assert_allclose(predict_variants(head, emb, lg, sh, shl), every.mean(0), rtol=1e-6)
    np.testing.assert_allclose(predict_variants(head, emb, lg, sh, shl, "max"), every.max(0), rtol=1e-6)
    with pytest.raises(ValueError, match="reduce"):
        reduce_variants(every, "median")
    seen = []  # a fused model waiting for its other part: every variant is still handed over, result None
    assert predict_variants(lambda e, lg: seen.append(e) and None, emb, None, sh, None) is None
    assert len(seen) == 3


# -- inference -------------------------------------------------------------------------------------------

FREQ = {"aaa": 600.0, "bbb": 1800.0, "ccc": 3200.0}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    base = tmp_path_factory.mktemp("tta")
    root, rows = base / "data", []
    for li, (lab, f) in enumerate(FREQ.items()):
        for j, dur in enumerate([5.0, 8.0]):
            fn = f"{lab}/XC{li}{j}.ogg"
            write_audio(root / "train_audio" / fn, dur, sr=32000, freq=f, seed=10 * li + j)
            rows.append((lab, "[]", fn))
    pd.DataFrame(rows, columns=["primary_label", "secondary_labels", "filename"]).to_csv(
        root / "train.csv", index=False
    )
    (root / "sample_submission.csv").write_text("row_id," + ",".join(FREQ) + "\n")
    run_extract(ExtractConfig(backbone="toy", data=str(root), out=str(base / "emb"), progress=False))
    fit = FitConfig(head="logreg", backbone="toy", data=str(root), embeddings=str(base / "emb"),
                    out=str(base / "models"), folds=0)  # fmt: skip
    scapes = base / "scapes"
    for i, (dur, f) in enumerate([(60.0, 600.0), (12.5, 3200.0)]):
        write_audio(scapes / f"s{i}.ogg", dur, sr=32000, freq=f, seed=90 + i)
    return {"root": root, "folder": run_fit(fit).folder, "scapes": scapes, "base": base}


def _infer(model, name, **kw):
    cfg = InferConfig(data=str(model["root"]), soundscapes=str(model["scapes"]),
                      models=[str(model["folder"])], out=str(model["base"] / name), smooth=0.0,
                      progress=False, **kw)  # fmt: skip
    return run_infer(cfg)


def test_infer_with_tta_writes_a_valid_submission(model):
    off = _infer(model, "off.csv", tta=[])
    zero = _infer(model, "zero.csv", tta=[0.0])
    on = _infer(model, "on.csv")  # on by default: ±1.25 s
    assert np.array_equal(_infer(model, "on2.csv", tta=[1.25]).probs, on.probs)
    assert np.array_equal(zero.probs, off.probs)  # --tta 0 is no TTA
    assert on.problems == [] and on.row_ids == off.row_ids == expected_row_ids(model["scapes"])
    assert on.probs.shape == off.probs.shape == (12 + 3, len(FREQ))
    assert validate_submission(on.path, list(FREQ), expected_row_ids(model["scapes"])) == []
    assert not np.allclose(on.probs, off.probs)  # the shifted windows took part
    # each soundscape is one tone: TTA keeps the windows' decision
    assert (on.probs.argmax(1) == off.probs.argmax(1)).mean() > 0.9


# -- BirdNET-gated pseudo-labels ----------------------------------------------------------------------------


def test_gate_rejects_a_pseudo_positive_birdnet_disagrees_with():
    P = np.array([[0.95, 0.1, 0.02], [0.95, 0.1, 0.02], [0.1, 0.2, 0.995], [0.1, 0.2, 0.95]])
    # label 0 and 1 are BirdNET classes (logit columns), label 2 is not (its column is all 0)
    z = np.array([[3.0, -4.0, 0.0], [-3.0, -4.0, 0.0], [-5.0, -5.0, 0.0], [-5.0, -5.0, 0.0]])
    keep, T = pseudo_labels(P, 0.99, 1.0, z, gate=0.5, gated_threshold=0.9)
    # row 0: head 0.95 >= 0.9 and BirdNET agrees (sigmoid 3 = 0.95): accepted at the lower threshold
    # row 1: BirdNET disagrees (sigmoid -3 = 0.05): rejected; rows 2/3: unknown label keeps 0.99
    assert keep.tolist() == [True, False, True, False]
    np.testing.assert_allclose(T[0], [0.95, 0.0, 0.02], rtol=1e-6)  # label 1 vetoed by BirdNET: 0
    np.testing.assert_allclose(T[1], [0.0, 0.0, 0.995], rtol=1e-6)
    # without a gate: the old rule (top probability >= threshold), whatever BirdNET says
    assert pseudo_labels(P, 0.99, 1.0)[0].tolist() == [False, False, True, False]
    assert pseudo_labels(P, 0.9, 1.0, z, gate=0.0)[0].tolist() == [True, True, True, True]


def test_self_training_with_the_gate_uses_only_agreeing_windows():
    from embedkit.predict.apply import Windows, predict_pipeline
    from embedkit.train.recipe import fit_pipeline

    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (60, 4)).astype(np.float32)
    lab = np.arange(60) % 2
    X[np.arange(60), lab] += 3.0
    Y = np.eye(2, dtype=np.float32)[lab]
    train = Windows(X, np.array([f"r{i // 3}" for i in range(60)]), None, Y)
    U = rng.normal(0, 1, (40, 4)).astype(np.float32)
    U[:20, 0] += 3.0  # windows the head calls label 0 ...
    z = np.full((40, 2), -6.0, np.float32)  # ... and BirdNET rejects all of them
    pool = Windows(U, np.array(["u"] * 40), z)
    cfg = FitConfig(head="logreg", params={"C": 1.0}, weak_negatives=0.0, pseudo=1, pseudo_threshold=0.6)
    alone = predict_pipeline(fit_pipeline(replace(cfg, pseudo=0), train, pool), pool, False)
    free = predict_pipeline(fit_pipeline(cfg, train, pool), pool, False)
    gated = fit_pipeline(replace(cfg, pseudo_gate=0.5, pseudo_gated_threshold=0.6), train, pool)
    # ungated, the head's confident pool windows join the fit; gated, BirdNET rejects them all: no row added
    assert not np.allclose(free, alone, atol=1e-4)
    np.testing.assert_allclose(predict_pipeline(gated, pool, False), alone, rtol=1e-5)
    agree = Windows(U, pool.files, np.where(np.arange(40)[:, None] < 20, 6.0, -6.0).astype(np.float32))
    both = fit_pipeline(replace(cfg, pseudo_gate=0.5, pseudo_gated_threshold=0.6), train, agree)
    assert not np.allclose(predict_pipeline(both, pool, False), alone, atol=1e-4)  # BirdNET agrees: used


# -- embedkit evaluate -----------------------------------------------------------------------------------


def test_evaluate_tta_row_scores_the_shifted_soundscape_windows(tmp_path):
    from test_quality import make_root

    from embedkit.evaluate.run import VARIANTS, post_label, run_evaluate
    from embedkit.evaluate.tta import reduce_shifted

    root = make_root(tmp_path / "data")
    run_extract(ExtractConfig(backbone="toy", data=str(root), out=str(tmp_path / "emb"), progress=False))
    fit = FitConfig(head="logreg", backbone="toy", data=str(root), embeddings=str(tmp_path / "emb"), folds=3)
    cache = tmp_path / "cache"
    off = run_evaluate(fit, InferConfig(smooth=0.3, tta=[]), False, 2, 0, cache)[1]["configuration"]
    on = run_evaluate(fit, InferConfig(smooth=0.3, tta=[1.25]), False, 2, 0, cache)[1]["configuration"]
    assert len(list(cache.glob("soundscapes-*-tta-1.25_+1.25.npz"))) == 1
    assert on["cv"] == off["cv"]  # CV stays on the clips' own windows
    assert on["test"].shape == off["test"].shape and not np.allclose(on["test"], off["test"])
    assert 0.0 <= on["sc"] <= 1.0 and on["post"] == "smooth 0.3, TTA ±1.25 s"
    again = run_evaluate(fit, InferConfig(smooth=0.3, tta=[1.25]), False, 2, 0, cache)[1]["configuration"]
    np.testing.assert_allclose(again["test"], on["test"], rtol=1e-6)  # the shifted windows are cached
    assert post_label({"smooth": 0.0, "file_max": 0.0, "tta": ()}) == "none"
    assert np.array_equal(reduce_shifted(np.arange(12.0).reshape(6, 2), 2), [[4.0, 5.0], [6.0, 7.0]])
    names = {v[0] for v in VARIANTS}
    assert {"default, TTA off", "default, self-training 1 round, BirdNET-gated"} <= names

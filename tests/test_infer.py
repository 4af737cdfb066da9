"""Inference: smoothing, blending, label remapping, and end-to-end runs with the toy backbone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import tone, toy_training_set

from embedkit.birdclef import DataError, check_labels, expected_row_ids, validate_submission
from embedkit.cli import main as cli_main
from embedkit.config import ExtractConfig, FitConfig, InferConfig
from embedkit.errors import UsageError
from embedkit.extract import run_extract
from embedkit.predict.infer import run_infer
from embedkit.predict.model import load_model
from embedkit.predict.post import blend, blend_weights, column_map, known_scale, remap, smooth_windows
from embedkit.store import StoreError, read_embeddings
from embedkit.train.run import run_fit

LABELS = ["ccc", "aaa", "ddd", "bbb"]  # sample_submission order (not sorted)
FREQ = {"aaa": 500.0, "bbb": 1500.0, "ccc": 2500.0, "ddd": 3500.0}
SCAPES = {"s_half": 0.5, "s_seven": 7.0, "s_sixty": 60.0, "s_61": 61.0}
N_ROWS = {"s_half": 1, "s_seven": 2, "s_sixty": 12, "s_61": 13}


# -- pure functions ------------------------------------------------------------------------------------------


def test_smooth_windows_impulse():
    p = np.zeros((5, 2), np.float32)
    p[2, 0] = 1.0
    p[:, 1] = 0.5
    got = smooth_windows(p, 0.4)
    assert got.dtype == np.float32 and got.shape == p.shape
    np.testing.assert_allclose(got[:, 0], [0, 0.2, 0.6, 0.2, 0], atol=1e-7)
    np.testing.assert_allclose(got[:, 1], 0.5, atol=1e-7)  # constant stays constant


def test_smooth_windows_edges_keep_the_missing_neighbours_share():
    p = np.array([[1.0], [0.0], [0.0], [0.0]])
    np.testing.assert_allclose(smooth_windows(p, 0.5)[:, 0], [0.75, 0.25, 0, 0], atol=1e-7)
    q = np.array([[0.0], [0.0], [1.0]])
    np.testing.assert_allclose(smooth_windows(q, 0.2)[:, 0], [0, 0.1, 0.9], atol=1e-7)
    # the mass of every column is preserved (each window's share goes to itself or a neighbour)
    r = np.random.default_rng(0).uniform(size=(7, 3))
    np.testing.assert_allclose(smooth_windows(r, 0.3).sum(0), r.sum(0), rtol=1e-5)


def test_smooth_windows_identity_cases():
    r = np.random.default_rng(1).uniform(size=(6, 4))
    out = smooth_windows(r, 0.0)
    np.testing.assert_array_equal(out, r.astype(np.float32))
    assert out.dtype == np.float32 and out is not r
    one = np.array([[0.3, 0.9]])
    np.testing.assert_array_equal(smooth_windows(one, 0.5), one.astype(np.float32))  # single window


def test_blend_with_weights():
    a = np.array([[0.0, 1.0], [0.4, 0.8]], np.float32)
    b = np.array([[1.0, 0.0], [0.8, 0.4]], np.float32)
    np.testing.assert_allclose(blend([a, b], [3, 1]), [[0.25, 0.75], [0.5, 0.7]], atol=1e-7)
    np.testing.assert_allclose(blend([a, b]), [[0.5, 0.5], [0.6, 0.6]], atol=1e-7)
    np.testing.assert_allclose(blend([a, b], [0, 2]), b)
    assert blend([a, b]).dtype == np.float32
    np.testing.assert_allclose(blend_weights([1, 3], 2), [0.25, 0.75])
    np.testing.assert_allclose(blend_weights(None, 4), [0.25] * 4)


@pytest.mark.parametrize("weights", [[1.0], [1.0, 2.0, 3.0], [1.0, -1.0], [0.0, 0.0]])
def test_blend_weights_errors(weights):
    with pytest.raises(UsageError, match="blend weights"):
        blend_weights(weights, 2)


def test_column_map_and_remap_reordered_and_missing_labels():
    cmap = column_map(["a", "b", "c"], ["c", "x", "a", "b"])
    np.testing.assert_array_equal(cmap, [2, -1, 0, 1])
    p = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], np.float32)
    exp = np.array([[0.3, 0, 0.1, 0.2], [0.6, 0, 0.4, 0.5]], np.float32)
    np.testing.assert_array_equal(remap(p, cmap), exp)
    np.testing.assert_array_equal(column_map(["a"], ["b"]), [-1])
    assert remap(p, column_map(["a", "b", "c"], [])).shape == (2, 0)


# -- end to end with the toy backbone ------------------------------------------------------------------------


def write_scape(path: Path, dur: float, sr: int, seed: int) -> Path:
    """A soundscape whose 5 s windows cycle through the label tones (so windows differ)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    freqs = list(FREQ.values())
    n = int(round(dur * sr))
    per = 5 * sr
    x = np.concatenate(
        [tone(5.0, sr, freqs[(k + seed) % 4], seed=seed * 100 + k) for k in range(-(-n // per))]
    )[:n]
    sf.write(str(path), x, sr, format="OGG", subtype="VORBIS")
    return path


def make_scapes(folder: Path, sr: int = 16000) -> Path:
    for i, (stem, dur) in enumerate(SCAPES.items()):
        write_scape(folder / f"{stem}.ogg", dur, sr, seed=i)
    return folder


def _fit(root: Path, emb: Path, out: Path, name: str, C: float) -> Path:
    cfg = FitConfig(
        head="logreg", backbone="toy", data=str(root), embeddings=str(emb), out=str(out), name=name, folds=0,
        params={"C": C},
    )  # fmt: skip
    return run_fit(cfg).folder


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Data root, two fitted models (C=1 and C=0.01) and a soundscape folder at 16 kHz."""
    base = tmp_path_factory.mktemp("infer")
    root = base / "data"
    toy_training_set(root, None, FREQ, durations=(5.0, 7.0, 10.0), seed0=50, sample_labels=LABELS)
    emb = base / "emb"
    run_extract(ExtractConfig(backbone="toy", data=str(root), out=str(emb), progress=False))
    m1 = _fit(root, emb, base / "models", "m1", 1.0)
    m2 = _fit(root, emb, base / "models", "m2", 0.01)
    scapes = make_scapes(base / "scapes")
    return {"base": base, "root": root, "m1": m1, "m2": m2, "scapes": scapes}


def infer(env, out: Path, **kw):
    base = dict(data=str(env["root"]), soundscapes=str(env["scapes"]), models=[str(env["m1"])], out=str(out))
    base["smooth"] = 0.0  # the heads' own output unless a test asks (InferConfig smooths by default)
    base["tta"] = []  # the unshifted windows' own output unless a test asks (TTA is on by default)
    return run_infer(InferConfig(**{**base, "progress": False, **kw}))


def _expected_ids(stems=SCAPES) -> list[str]:
    return [f"{s}_{5 * (k + 1)}" for s in sorted(stems) for k in range(N_ROWS[s])]


@pytest.fixture(scope="module")
def base_run(env):
    return infer(env, env["base"] / "base.csv")


def test_end_to_end_submission(env, base_run):
    res = base_run
    assert res.problems == [] and res.failures == []
    assert res.row_ids == _expected_ids() == expected_row_ids(env["scapes"])
    df = pd.read_csv(res.path)
    assert list(df.columns) == ["row_id", *LABELS]
    assert list(df["row_id"]) == res.row_ids
    v = df[LABELS].to_numpy()
    assert np.isfinite(v).all() and v.min() >= 0 and v.max() <= 1
    np.testing.assert_allclose(v, res.probs, atol=1e-6)
    assert res.probs.shape == (28, len(LABELS))
    assert validate_submission(res.path, LABELS, expected_row_ids(env["scapes"])) == []
    assert res.audio_s == pytest.approx(sum(SCAPES.values()), abs=0.01)


def test_predictions_follow_the_tones(base_run):
    # window k of soundscape i carries the tone of label sorted(FREQ)[(k + i) % 4]
    names = sorted(FREQ)
    stems = list(SCAPES)
    truth = []
    for rid in base_run.row_ids:
        stem, end = rid.rsplit("_", 1)
        truth.append(names[(int(end) // 5 - 1 + stems.index(stem)) % 4])
    pred = np.array(LABELS)[base_run.probs.argmax(1)]
    assert (pred == np.array(truth)).mean() > 0.9


def test_probabilities_equal_the_saved_head_on_extracted_windows(env, base_run, tmp_path):
    s = run_extract(
        ExtractConfig(
            backbone="toy",
            files=str(env["scapes"]),
            out=str(tmp_path / "emb"),
            dtype="float32",
            progress=False,
        )
    )
    keys, X = read_embeddings(s.dataset)
    assert sorted(keys["row_id"]) == sorted(base_run.row_ids)
    P = load_model(env["m1"]).predict(X)
    ref = pd.DataFrame(P, index=keys["row_id"], columns=LABELS).loc[base_run.row_ids]
    np.testing.assert_allclose(base_run.probs, ref.to_numpy(), atol=1e-5)


def test_an_empty_folder_gives_header_only_a_missing_one_is_an_error(env, tmp_path):
    (tmp_path / "empty").mkdir()  # Kaggle's commit run: the folder is there, its files are not
    res = infer(env, tmp_path / "empty.csv", soundscapes=str(tmp_path / "empty"))
    assert res.problems == [] and res.row_ids == [] and res.probs.shape == (0, len(LABELS))
    assert res.path.read_text().strip() == ",".join(["row_id", *LABELS])
    assert validate_submission(res.path, LABELS, []) == []
    with pytest.raises(UsageError, match="no such folder"):  # a typo: never a header-only submission
        infer(env, tmp_path / "missing.csv", soundscapes=str(tmp_path / "missing"))
    assert not (tmp_path / "missing.csv").exists()


def test_corrupt_file_gets_the_priors(env, base_run, tmp_path):
    folder = tmp_path / "scapes"
    shutil.copytree(env["scapes"], folder)
    (folder / "s_bad.ogg").write_bytes(np.random.default_rng(7).bytes(4096))
    res = infer(env, tmp_path / "sub.csv", soundscapes=str(folder))
    assert res.problems == []
    assert [Path(f).name for f, _ in res.failures] == ["s_bad.ogg"]
    assert res.failures[0][1]  # a reason is given
    bad = [i for i, r in enumerate(res.row_ids) if r.startswith("s_bad_")]
    assert [res.row_ids[i] for i in bad] == [f"s_bad_{e}" for e in range(5, 61, 5)]
    priors = load_model(env["m1"]).priors  # model labels == submission labels here
    assert priors.sum() > 0
    np.testing.assert_allclose(res.probs[bad], np.tile(priors, (12, 1)), atol=1e-7)
    good = [i for i in range(len(res.row_ids)) if i not in bad]
    assert [res.row_ids[i] for i in good] == base_run.row_ids
    np.testing.assert_allclose(res.probs[good], base_run.probs, atol=1e-6)


def test_two_models_blend_with_weights(env, base_run, tmp_path):
    p1 = base_run.probs
    p2 = infer(env, tmp_path / "m2.csv", models=[str(env["m2"])]).probs
    assert np.abs(p1 - p2).max() > 1e-3  # the two models differ, so the blend is informative
    res = infer(env, tmp_path / "blend.csv", models=[str(env["m1"]), str(env["m2"])], weights=[3.0, 1.0])
    assert res.problems == []
    np.testing.assert_allclose(res.probs, 0.75 * p1 + 0.25 * p2, atol=1e-6)
    eq = infer(env, tmp_path / "eq.csv", models=[str(env["m1"]), str(env["m2"])])
    np.testing.assert_allclose(eq.probs, 0.5 * p1 + 0.5 * p2, atol=1e-6)
    with pytest.raises(UsageError):
        infer(env, tmp_path / "w.csv", models=[str(env["m1"]), str(env["m2"])], weights=[1.0])


def test_smoothing_matches_smooth_windows(env, base_run, tmp_path):
    res = infer(env, tmp_path / "smooth.csv", smooth=0.4)
    assert res.row_ids == base_run.row_ids and res.problems == []
    stems = np.array([r.rsplit("_", 1)[0] for r in res.row_ids])
    expected = np.concatenate([smooth_windows(base_run.probs[stems == s], 0.4) for s in sorted(SCAPES)])
    np.testing.assert_allclose(res.probs, expected, atol=1e-6)
    assert np.abs(res.probs - base_run.probs).max() > 0.05  # windows differ, so smoothing changes values
    one = stems == "s_half"
    np.testing.assert_allclose(res.probs[one], base_run.probs[one], atol=1e-7)  # single window: unchanged


def test_sample_columns_reordered_and_extra(env, base_run, tmp_path):
    cols = ["bbb", "zzz", "aaa", "ccc", "ddd"]
    sample = tmp_path / "sample.csv"
    sample.write_text(",".join(["row_id", *cols]) + "\n")
    res = infer(env, tmp_path / "sub.csv", sample=str(sample), allow_label_mismatch=True)
    df = pd.read_csv(res.path)
    assert list(df.columns) == ["row_id", *cols] and res.problems == []
    assert (df["zzz"] == 0).all()  # the documented fallback: a column no model knows is 0
    for c in LABELS:
        np.testing.assert_allclose(df[c].to_numpy(), base_run.probs[:, LABELS.index(c)], atol=1e-6)


def _edit_model(src: Path, dst: Path, **prov) -> Path:
    shutil.copytree(src, dst)
    doc = json.loads((dst / "model.json").read_text())
    doc["provenance"].update(prov)
    (dst / "model.json").write_text(json.dumps(doc))
    return dst


def test_model_of_another_identity_is_refused(env, tmp_path):
    out = tmp_path / "sub.csv"
    other_dim = _edit_model(env["m1"], tmp_path / "dim16", dim=16)
    with pytest.raises(StoreError, match="dim"):
        infer(env, out, models=[str(other_dim)])
    other_weights = _edit_model(env["m1"], tmp_path / "w", weights="other-weights")
    with pytest.raises(StoreError, match="weights"):
        infer(env, out, models=[str(env["m1"]), str(other_weights)])
    other_window = _edit_model(env["m1"], tmp_path / "win", window_s=3.0)
    with pytest.raises(UsageError, match="different windows"):
        infer(env, out, models=[str(env["m1"]), str(other_window)])
    assert not out.exists()


def test_cli_infer(env, tmp_path):
    out = tmp_path / "cli.csv"
    args = ["infer", "--data", str(env["root"]), "--soundscapes", str(env["scapes"]), "--no-progress"]
    assert cli_main([*args, "--models", str(env["m1"]), "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df["row_id"]) == _expected_ids()
    assert cli_main([*args, "--models", str(tmp_path / "nomodel"), "--out", str(tmp_path / "x.csv")]) == 2
    assert not (tmp_path / "x.csv").exists()


def test_32khz_soundscapes_give_the_expected_rows(env, tmp_path):
    folder = make_scapes(tmp_path / "scapes32", sr=32000)
    res = infer(env, tmp_path / "sub.csv", soundscapes=str(folder))
    assert res.row_ids == _expected_ids() == expected_row_ids(folder)
    assert res.problems == [] and res.failures == []


# -- labels and inputs that cannot be trusted (issue 13) ---------------------------------------------------


def _sample(path: Path, cols: list[str]) -> Path:
    path.write_text(",".join(["row_id", *cols]) + "\n")
    return path


def _cli_infer(env, out: Path, *extra: str) -> list[str]:
    args = ["infer", "--data", str(env["root"]), "--soundscapes", str(env["scapes"]), "--no-progress",
            "--tta", "0"]  # the unshifted windows: compared with base_run
    return [*args, "--models", str(env["m1"]), "--out", str(out), *extra]


def test_sample_sharing_no_label_is_refused(env, tmp_path, capsys):
    sample = _sample(tmp_path / "other.csv", ["xxx", "yyy"])
    out = tmp_path / "sub.csv"
    with pytest.raises(DataError, match="shares no label with model"):
        infer(env, out, sample=str(sample), allow_label_mismatch=True)  # no flag makes it useful
    assert cli_main(_cli_infer(env, out, "--sample", str(sample))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shares no label" in err[0] and "xxx" in err[0]
    assert not out.exists()


def test_partly_different_labels_are_named_and_refused_without_the_flag(env, base_run, tmp_path, capsys):
    sample = _sample(tmp_path / "s.csv", ["aaa", "bbb", "ccc", "eee"])  # ddd missing from it, eee unknown
    out = tmp_path / "sub.csv"
    assert cli_main(_cli_infer(env, out, "--sample", str(sample))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--allow-label-mismatch" in err[0]
    assert "1 submission label(s) it does not know (eee)" in err[0] and "dropped (ddd)" in err[0]
    assert not out.exists()
    allow = _cli_infer(env, out, "--sample", str(sample), "--allow-label-mismatch", "--smooth", "0")
    assert cli_main(allow) == 0
    assert "does not know (eee)" in capsys.readouterr().err  # still said, as a note
    df = pd.read_csv(out)
    assert list(df.columns) == ["row_id", "aaa", "bbb", "ccc", "eee"] and (df["eee"] == 0).all()
    np.testing.assert_allclose(df["aaa"], base_run.probs[:, LABELS.index("aaa")], atol=1e-6)


def test_sample_path_that_does_not_exist_is_an_error(env, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    with pytest.raises(UsageError, match="no such file"):
        infer(env, out, sample=str(tmp_path / "nope.csv"))
    assert cli_main(_cli_infer(env, out, "--sample", str(tmp_path / "nope.csv"))) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not out.exists()


def test_no_sample_anywhere_falls_back_to_the_model_labels_with_a_note(env, tmp_path, capsys):
    res = infer(env, tmp_path / "sub.csv", data=str(tmp_path / "nodata"))
    assert res.problems == []
    assert list(pd.read_csv(res.path).columns)[1:] == load_model(env["m1"]).labels
    assert "sample_submission.csv: the columns are the labels of" in capsys.readouterr().err


def test_empty_sample_submission_is_one_line(env, tmp_path, capsys):
    empty = tmp_path / "sample_submission.csv"
    empty.write_bytes(b"")
    out = tmp_path / "sub.csv"
    assert cli_main(_cli_infer(env, out, "--sample", str(empty))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "empty file (0 bytes)" in err[0]
    sub = tmp_path / "any.csv"
    sub.write_text("row_id,aaa\nx_5,0.5\n")
    assert cli_main(["validate", str(sub), "--sample", str(empty)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "empty file (0 bytes)" in err[0]
    garbage = tmp_path / "bin.csv"
    garbage.write_bytes(b"\xff\xfe\x00" * 50)
    assert cli_main(["validate", str(sub), "--sample", str(garbage)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_check_labels_and_blend_over_the_models_that_know_a_label():
    with pytest.raises(DataError, match="shares no label with model b"):
        check_labels(["x"], {"a": ["x"], "b": ["y"]}, "s.csv", allow=True)
    assert check_labels(["x", "y"], {"a": ["y", "x"]}, "s.csv") == []  # order does not matter
    notes = check_labels(["x", "y"], {"a": ["x", "y"], "b": ["x"]}, "s.csv", allow=True)
    assert len(notes) == 1 and notes[0].startswith("model b: 1 submission label(s) it does not know (y)")
    cmaps = [column_map(["x", "y"], ["x", "y", "z"]), column_map(["x"], ["x", "y", "z"])]
    w = blend_weights([3.0, 1.0], 2)
    p = [np.array([[0.2, 0.8]], np.float32), np.array([[0.6]], np.float32)]
    got = sum(wi * remap(pi, c) for wi, pi, c in zip(w, p, cmaps, strict=True)) * known_scale(cmaps, w)
    np.testing.assert_allclose(got, [[0.75 * 0.2 + 0.25 * 0.6, 0.8, 0.0]], rtol=1e-6)


def test_stale_submission_temps_of_dead_runs_are_removed(env, tmp_path):
    import os
    import subprocess
    import sys

    from embedkit.store.write import _host

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    pid = int(dead.stdout)  # a pid that is not running any more
    out = tmp_path / "sub.csv"
    stale = [
        tmp_path / f".tmp-{pid}@{_host()}-check-sub.csv",  # a killed infer, between write and check
        tmp_path / f".tmp-{pid}-.tmp-{pid}@{_host()}-check-sub.csv",  # ... inside write_submission
    ]
    kept = [
        tmp_path / f".tmp-{os.getppid()}@{_host()}-check-sub.csv",  # a live process
        tmp_path / f".tmp-{pid}@otherhost-check-sub.csv",  # another machine's, young
        tmp_path / f".tmp-{pid}@{_host()}-check-other.csv",  # another output's
        tmp_path / ".tmp-notes-sub.csv",  # not ours
    ]
    for p in stale + kept:
        p.write_text("row_id\n")
    res = infer(env, out)
    assert res.problems == [] and out.is_file()
    assert not [p for p in stale if p.exists()]
    assert all(p.exists() for p in kept)

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from embedkit.demo.data import LICENSE, TAXONOMY_COLUMNS, TRAIN_COLUMNS, main, make_demo_dataset, window_truth

SMALL = dict(n_species=8, clips_per_species=4, n_train_soundscapes=1, n_test_soundscapes=4, seed=0)
TINY = ["--species", "2", "--clips", "2", "--train-soundscapes", "0", "--test-soundscapes", "1"]
STEM = re.compile(r"^H\d{2}_20\d{6}_\d{6}$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), **SMALL)


def _csvs(root: Path) -> dict[str, bytes]:
    files = sorted(root.glob("*.csv")) + [root / "README.txt"]
    return {p.name: p.read_bytes() for p in files}


def _audio(root: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(root)): sf.read(p, dtype="float32")[0] for p in sorted(root.rglob("*.ogg"))}


def test_layout_and_columns(demo):
    for name in ("train.csv", "taxonomy.csv", "sample_submission.csv", "test_truth.csv", "README.txt"):
        assert (demo / name).is_file(), name
    train = pd.read_csv(demo / "train.csv", keep_default_na=False)
    tax = pd.read_csv(demo / "taxonomy.csv", dtype={"primary_label": str})
    assert list(train.columns) == TRAIN_COLUMNS
    assert list(tax.columns) == TAXONOMY_COLUMNS
    assert len(train) == SMALL["n_species"] * SMALL["clips_per_species"]
    assert set(train.collection) <= {"XC", "iNat", "CSA"}
    assert train.rating.between(0, 5).all()
    assert (train.license == LICENSE).all()
    assert train.author.nunique() > 1
    labels = set(tax.primary_label)
    assert len(labels) == SMALL["n_species"] and set(train.primary_label.astype(str)) == labels
    assert set(tax.class_name) == {"Aves", "Amphibia", "Insecta", "Mammalia"}
    for lab, cls, taxon in zip(tax.primary_label, tax.class_name, tax.inat_taxon_id, strict=True):
        if cls == "Aves":
            assert re.fullmatch(r"[a-z]{6}\d?", lab), lab
        else:
            assert lab.isdigit() and int(lab) == taxon
    assert tax.scientific_name.is_unique and tax.common_name.is_unique
    assert len(list((demo / "train_soundscapes").glob("*.ogg"))) == SMALL["n_train_soundscapes"]
    assert "seed=0" in (demo / "README.txt").read_text()


def test_train_audio_decodes(demo):
    train = pd.read_csv(demo / "train.csv")
    durations = []
    for fn, label in zip(train.filename, train.primary_label.astype(str), strict=True):
        assert fn.startswith(f"{label}/") and fn.endswith(".ogg")
        info = sf.info(demo / "train_audio" / fn)
        assert (info.samplerate, info.channels, info.format, info.subtype) == (32000, 1, "OGG", "VORBIS")
        durations.append(info.duration)
    assert min(durations) < 5.0 and min(durations) >= 1.9 and max(durations) <= 30.5
    assert sum(d < 5.0 for d in durations) < len(durations) / 2
    x, _ = sf.read(demo / "train_audio" / train.filename[0])
    assert 0.3 < np.abs(x).max() < 0.7  # peak-normalised to ~0.5 (Vorbis overshoots a little)


def test_secondary_labels(demo):
    train = pd.read_csv(demo / "train.csv")
    known = set(train.primary_label.astype(str))
    parsed = [ast.literal_eval(s) for s in train.secondary_labels]
    for prim, sec in zip(train.primary_label.astype(str), parsed, strict=True):
        assert isinstance(sec, list) and set(sec) <= known and prim not in sec
    assert any(parsed)
    assert all(ast.literal_eval(t) in ([], ["song"], ["call"], ["call", "song"]) for t in train["type"])


def test_submission_and_truth(demo):
    tax = pd.read_csv(demo / "taxonomy.csv", dtype={"primary_label": str})
    sub = pd.read_csv(demo / "sample_submission.csv")
    truth = pd.read_csv(demo / "test_truth.csv")
    assert list(sub.columns) == ["row_id"] + sorted(tax.primary_label)
    assert list(truth.columns) == list(sub.columns)
    stems = sorted(p.stem for p in (demo / "test_soundscapes").glob("*.ogg"))
    assert len(stems) == SMALL["n_test_soundscapes"] and all(STEM.match(s) for s in stems)
    assert all(STEM.match(p.stem) for p in (demo / "train_soundscapes").glob("*.ogg"))
    assert list(truth.row_id) == [f"{s}_{e}" for s in stems for e in range(5, 61, 5)]
    assert list(sub.row_id) == [f"{s}_{e}" for s in stems[:3] for e in range(5, 61, 5)]
    assert np.allclose(sub.iloc[:, 1:].to_numpy(), 1 / len(tax))
    y = truth.iloc[:, 1:].to_numpy()
    assert set(np.unique(y)) <= {0, 1} and y.sum() > 0 and (y.sum(axis=1) == 0).any()
    for s in stems:
        info = sf.info(demo / "test_soundscapes" / f"{s}.ogg")
        assert (info.samplerate, info.channels, info.frames) == (32000, 1, 60 * 32000)


def test_window_truth_overlap_rule():
    y = window_truth([(0, 4.6, 6.0), (1, 4.4, 5.3), (2, 12.0, 12.3), (1, 58.0, 61.0)], 3)
    assert y.shape == (12, 3)
    assert y[:, 0].tolist() == [0, 1] + [0] * 10  # 0.4 s in window 1, 1.0 s in window 2
    assert y[:, 1].tolist() == [1] + [0] * 10 + [1]  # 0.6 s + 0.3 s; a call running past the end
    assert y[:, 2].tolist() == [0, 0, 1] + [0] * 9  # a call shorter than 0.5 s inside the window


def test_species_separable(demo):
    """Nearest-centroid (leave-one-out) on per-clip mean log-spectra in 32 bands beats chance by far."""
    train = pd.read_csv(demo / "train.csv")
    edges = np.unique(np.geomspace(3, 513, 33).astype(int))
    feats = []
    for fn in train.filename:
        x, _ = sf.read(demo / "train_audio" / fn, dtype="float32")
        frames = np.lib.stride_tricks.sliding_window_view(x, 1024)[::512] * np.hanning(1024)
        power = np.add.reduceat(np.abs(np.fft.rfft(frames, axis=1)) ** 2, edges[:-1], axis=1)
        logspec = np.log(power.mean(axis=0) + 1e-10)
        feats.append(logspec - logspec.mean())  # level-normalised
    X, y = np.stack(feats), train.primary_label.astype(str).to_numpy()
    hits = 0
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        labs = np.unique(y[rest])
        centroids = np.stack([X[rest & (y == lab)].mean(axis=0) for lab in labs])
        hits += labs[np.argmin(((centroids - X[i]) ** 2).sum(axis=1))] == y[i]
    assert hits / len(y) > 0.6, hits / len(y)


def test_deterministic_and_seeded(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "a"), "--seed", "3", *TINY]) == 0
    assert "seed 3" in capsys.readouterr().out
    main(["--out", str(tmp_path / "b"), "--seed", "3", *TINY])
    main(["--out", str(tmp_path / "c"), "--seed", "4", *TINY])
    a, b, c = (tmp_path / "a", tmp_path / "b", tmp_path / "c")
    assert _csvs(a) == _csvs(b)
    audio_a, audio_b = _audio(a), _audio(b)
    assert audio_a.keys() == audio_b.keys() and len(audio_a) == 2 * 2 + 1
    for k in audio_a:
        np.testing.assert_allclose(audio_a[k], audio_b[k], atol=1e-6)
    assert _csvs(a)["train.csv"] != _csvs(c)["train.csv"]
    assert _csvs(a)["taxonomy.csv"] != _csvs(c)["taxonomy.csv"]


def test_rejects_bad_species_count(tmp_path):
    with pytest.raises(ValueError, match="n_species"):
        make_demo_dataset(tmp_path, n_species=1)

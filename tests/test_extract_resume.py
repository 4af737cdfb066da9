"""A rerun into a folder of shards never drops a setting that changes the data: it adds it, or says no."""

import numpy as np
import pandas as pd
import pytest
from conftest import write_audio

from embedkit.cli import main
from embedkit.store import read_embeddings, shard_paths


def extract(root, out, *extra):
    return main(["extract", "--backbone", "toy-logits", "--data", str(root), "--out", str(out),
                 "--no-progress", *extra])


def test_save_logits_on_done_files_adds_them_in_place(toy_split, tmp_path, capsys):
    out = tmp_path / "e"
    assert extract(toy_split, out) == 0
    ds = out / "toy-logits" / "train_audio"
    before = sorted(p.name for p in shard_paths(ds))
    k0, X0 = read_embeddings(ds)
    capsys.readouterr()
    assert extract(toy_split, out, "--save-logits") == 0  # was: "0 files embedded, 9 already done", no logits
    err = capsys.readouterr().err
    assert "logits added to 9 done files" in err
    assert sorted(p.name for p in shard_paths(ds)) == before  # the same shards, rewritten in place
    k, X, L = read_embeddings(ds, logits=True)
    pd.testing.assert_frame_equal(k, k0)
    np.testing.assert_array_equal(X, X0)
    assert extract(toy_split, tmp_path / "ref", "--save-logits") == 0
    kr, Xr, Lr = read_embeddings(tmp_path / "ref" / "toy-logits" / "train_audio", logits=True)
    pd.testing.assert_frame_equal(k, kr)
    np.testing.assert_array_equal(L, Lr)
    assert L.shape == (len(k), 4) and np.abs(L).sum() > 0


def test_without_save_logits_on_shards_with_logits_keeps_storing_them(toy_split, tmp_path, capsys):
    out = tmp_path / "e"
    assert extract(toy_split, out, "--save-logits", "--part", "0/2") == 0
    capsys.readouterr()
    assert extract(toy_split, out, "--part", "1/2") == 0
    assert "hold logits: storing them for this run's files too" in capsys.readouterr().err
    k, X, L = read_embeddings(out / "toy-logits" / "train_audio", logits=True)  # every shard has logits
    assert k["file"].nunique() == 9 and np.isfinite(L).all()


@pytest.mark.parametrize(
    "flags, flag, theirs",
    [
        (["--dtype", "float32"], "--dtype", "dtype=float16"),
        (["--window-s", "4"], "--window-s", "window_s=5.0"),
        (["--hop-s", "2.5"], "--hop-s", "hop_s=5.0"),
    ],
)
def test_a_setting_that_differs_from_the_shards_is_refused_in_one_line(
    toy_split, tmp_path, capsys, flags, flag, theirs
):
    out = tmp_path / "e"
    assert extract(toy_split, out, "--part", "0/2") == 0
    capsys.readouterr()
    assert extract(toy_split, out, "--part", "1/2", *flags) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.count(flag) >= 1 and theirs in err and "--out/--name" in err


def test_augmentation_that_differs_from_the_shards_is_refused(toy_split, tmp_path, capsys):
    for j in range(2):
        write_audio(tmp_path / "bg" / f"bg{j}.ogg", 6.0, freq=200 + 100 * j, seed=50 + j)
    out = tmp_path / "e"
    assert extract(toy_split, out, "--part", "0/2") == 0
    capsys.readouterr()
    assert extract(toy_split, out, "--part", "1/2", "--augment-background", str(tmp_path / "bg")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--augment-background" in err and "augment=off" in err


def test_birdnet_pooling_differs_is_refused_and_logits_are_added(tmp_path, capsys):
    """Default backbone: --pool max on the default concat shards is refused; --save-logits adds logits."""
    pytest.importorskip("ai_edge_litert")
    write_audio(tmp_path / "data" / "train_audio" / "aaa" / "XC1.ogg", 6.0, freq=3000, seed=1)
    base = ["extract", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "e"), "--no-progress"]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--pool", "max"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("embedkit extract: error: --pool:")
    assert "this run has pool=max" in err and "have pool=concat" in err
    assert main([*base, "--time-pool", "mean"]) == 2  # the pre-pool map pooled otherwise: other values
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("embedkit extract: error: --time-pool:")
    assert "this run has time_pool=mean" in err and "have time_pool=meanmax" in err and "dim" in err
    assert main([*base, "--save-logits"]) == 0
    assert "logits added to 1 done files" in capsys.readouterr().err
    k, X, L = read_embeddings(tmp_path / "e" / "birdnet" / "train_audio", logits=True)
    assert L.shape == (2, 6522) and np.isfinite(L).all()


def test_an_option_the_backbone_does_not_take_is_named(toy_split, tmp_path, capsys):
    """--time-pool (BirdNET's) and --weights on a backbone without them: one line says so; the run goes on."""
    flags = ["--time-pool", "max", "--weights", "w.bin", "--pool", "concat"]
    assert extract(toy_split, tmp_path / "e", *flags) == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "ignored" in x)
    assert "--time-pool max" in line and "--weights w.bin" in line and "'toy-logits'" in line
    assert "--pool" not in line  # set to its default: nothing is lost
    assert extract(toy_split, tmp_path / "f") == 0
    assert "ignored" not in capsys.readouterr().err


def test_ray_engine_refuses_to_drop_logits_and_names_the_fix(toy_split, tmp_path, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "e"
    assert extract(toy_split, out) == 0
    capsys.readouterr()
    assert extract(toy_split, out, "--engine", "ray", "--save-logits") == 2  # before Ray is even started
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "have no logits" in err and "--engine local" in err


def test_birdnet_takes_its_model_file_as_weights(tmp_path, capsys):
    """--weights on birdnet is its .tflite file (recorded by hash), never ignored; a wrong path fails."""
    import shutil

    from embedkit.backbones.birdnet import MODEL_FILE, bundled_model_dir
    from embedkit.files import sha256_file
    from embedkit.store import read_provenance

    pytest.importorskip("ai_edge_litert")
    write_audio(tmp_path / "data" / "train_audio" / "aaa" / "XC1.ogg", 6.0, freq=3000, seed=1)
    mine = tmp_path / "mine.tflite"
    shutil.copy(bundled_model_dir() / MODEL_FILE, mine)
    base = ["extract", "--data", str(tmp_path / "data"), "--no-progress", "--threads", "1"]
    assert main([*base, "--out", str(tmp_path / "e"), "--weights", str(mine)]) == 0
    assert "ignored" not in capsys.readouterr().err
    prov = read_provenance(tmp_path / "e" / "birdnet" / "train_audio")
    assert prov["weights"] == f"birdnet v2.4 file sha256:{sha256_file(mine)[:16]}"
    assert main([*base, "--out", str(tmp_path / "f"), "--weights", str(tmp_path / "none.tflite")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "none.tflite" in err and not (tmp_path / "f" / "birdnet").exists()

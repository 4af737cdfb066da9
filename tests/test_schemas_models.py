"""Issue 24, items 1, 3, 4, 6, 7 on real model folders: every hostile or malformed file is one line, exit 2.

The attacker recomputes ``files`` in ``model.json`` after each edit (hashes prove integrity, not trust), so
each case reaches the schemas, not the hash check. Every case runs the real CLI (``infer`` / ``fit``).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import toy_training_set, write_audio

from embedkit import kaggle_kit as kk
from embedkit.cli import main as cli_main
from embedkit.predict.model import load_model
from embedkit.store.manifest import manifest

FREQ = {"aaa": 500.0, "bbb": 1500.0, "ccc": 2500.0}
HEADS = ("logreg", "mlp", "lgbm")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Toy data, embeddings, a fitted logreg / mlp / lgbm model, and two soundscapes."""
    base = tmp_path_factory.mktemp("schemas")
    root, emb = base / "data", base / "emb"
    toy_training_set(root, emb, FREQ)
    for head in HEADS:
        params = ["--params", "epochs=3", "hidden=16", "n_jobs=1"] if head == "mlp" else []
        assert cli_main(fit_args(base, root, emb, head, *params)) == 0
    scapes = base / "scapes"
    for i, dur in enumerate([12.0, 8.0]):
        write_audio(scapes / f"S{i}.ogg", dur, freq=list(FREQ.values())[i], seed=100 + i)
    return {"base": base, "root": root, "emb": emb, "models": base / "models", "scapes": scapes}


def fit_args(base, root, emb, head, *extra, name=None):
    return ["fit", "--head", head, "--backbone", "toy", "--data", str(root), "--embeddings", str(emb),
            "--out", str(base / "models"), "--folds", "0", "--name", name or head, *extra]  # fmt: skip


def run(args, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = cli_main(args)
    return rc, capsys.readouterr().err.strip().splitlines()


def infer_args(env, out: Path, model: Path, *extra: str) -> list[str]:
    return ["infer", "--data", str(env["root"]), "--soundscapes", str(env["scapes"]), "--out", str(out),
            "--no-progress", "--tta", "0", "--models", str(model), *extra]  # fmt: skip


def tampered(env, head: str, dst: Path, edit_meta=None, edit_head=None) -> Path:
    """A copy of a fitted model with ``model.json`` / ``head.json`` edited and the hashes recomputed."""
    shutil.copytree((env["models"] / head).resolve(), dst)
    if edit_head is not None:
        hj = dst / "head" / "head.json"
        doc = json.loads(hj.read_text())
        edit_head(doc)
        hj.write_text(json.dumps(doc))
    meta = json.loads((dst / "model.json").read_text())
    meta["files"] = manifest(dst, skip=("model.json",))
    out = edit_meta(meta) if edit_meta is not None else None
    text = out if isinstance(out, str) else json.dumps(meta)
    (dst / "model.json").write_text(text)
    return dst


def refused(env, tmp_path, capsys, model: Path, *needles: str) -> str:
    out = tmp_path / "sub.csv"
    rc, err = run(infer_args(env, out, model), capsys)
    assert rc == 2 and len(err) == 1, err
    assert "Traceback" not in err[0] and all(n in err[0] for n in needles), err
    assert not out.exists()
    return err[0]


def _set(key, value):
    def edit(m):
        m[key] = value

    return edit


@pytest.mark.parametrize(
    "case, edit, needles",
    [
        ("list", lambda m: json.dumps([m]), ("model.json", "valid dictionary")),
        ("provenance-string", _set("provenance", "birdnet"), ("model.json", "provenance")),
        ("priors-strings", lambda m: m.update(priors=[str(p) for p in m["priors"]]), ("priors.0", "number")),
        ("smooth-nan", _set("smooth", float("nan")), ("smooth", "finite", "< 1.0")),
        ("smooth-inf", _set("smooth", float("inf")), ("smooth", "finite")),
        (
            "deep",
            lambda m: json.dumps(m)[:-1] + ', "x": ' + "[" * 200_000 + "]" * 200_000 + "}",
            ("model.json", "nested deeper than 32"),
        ),
        ("huge-int", lambda m: json.dumps(m)[:-1] + ', "x": ' + "7" * 4400 + "}", ("model.json", "4300")),
        ("labels-repeat", lambda m: m.update(labels=["aaa", "aaa", "ccc"]), ("labels repeat",)),
        (
            "zero-shot-inf",
            _set(
                "zero_shot", {"mode": "prior", "index": [0, 1, 2], "weights": [float("inf")], "offset": [0.0]}
            ),
            ("zero_shot.weights.0", "finite"),
        ),
        (
            "files-escape",
            lambda m: m["files"].update({"../../etc/passwd": "0" * 64}),
            ("../../etc/passwd", "leaves its folder"),
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_hostile_model_json_is_one_line(env, tmp_path, capsys, case, edit, needles):
    model = tampered(env, "logreg", tmp_path / case, edit_meta=edit)
    refused(env, tmp_path, capsys, model, *needles)


@pytest.mark.parametrize(
    "head, key, value, needles",
    [
        ("mlp", "hidden", 2_000_000, ("head.json", "params: hidden = 2000000", "<= 65536")),
        ("mlp", "device", "cuda:99", ("head.json", "cuda:99", "CUDA device")),
        ("mlp", "n_jobs", 1e6, ("n_jobs", "valid integer", "<= 1024")),
        ("lgbm", "n_jobs", 1_000_000, ("n_jobs", "<= 1024")),
        ("lgbm", "params", {"num_class": 2e9}, ("num_class", "0..100000")),
        ("lgbm", "params", {"output_model": "/tmp/x.txt"}, ("output_model", "file/network")),
        ("logreg", "C", float("nan"), ("params: C", "finite")),
    ],
)
def test_head_params_that_would_allocate_or_crash_are_refused_before_the_head_is_built(
    env, tmp_path, capsys, head, key, value, needles
):
    def edit(doc):
        doc["params"][key] = value

    model = tampered(env, head, tmp_path / "m", edit_head=edit)
    refused(env, tmp_path, capsys, model, *needles)


def test_arrays_of_the_wrong_shape_are_refused_at_load(env, tmp_path, capsys):
    from safetensors.numpy import load_file, save_file

    model = tampered(env, "logreg", tmp_path / "m")
    st = model / "head" / "state.safetensors"
    arrays = load_file(str(st))
    arrays["coef_"] = np.zeros((arrays["coef_"].shape[0], arrays["coef_"].shape[1] + 1), np.float32)
    save_file(arrays, str(st))
    tampered(env, "logreg", tmp_path / "m2")  # fresh copy, then move the bad arrays in with new hashes
    shutil.copy(st, tmp_path / "m2" / "head" / "state.safetensors")
    meta = json.loads((tmp_path / "m2" / "model.json").read_text())
    meta["files"] = manifest(tmp_path / "m2", skip=("model.json",))
    (tmp_path / "m2" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(Exception, match="coef_ has shape"):
        load_model(tmp_path / "m2")  # at load, not at predict
    refused(env, tmp_path, capsys, tmp_path / "m2", "coef_", "(3, 8)")


def test_model_json_must_be_a_regular_file_inside_the_folder(env, tmp_path, capsys):
    model = tampered(env, "logreg", tmp_path / "m")
    outside = tmp_path / "elsewhere.json"
    (model / "model.json").rename(outside)
    (model / "model.json").symlink_to(outside)
    refused(env, tmp_path, capsys, model, "model.json", "not a regular file")


def test_no_trust_pickle_hint_for_a_format_2_folder_listing_a_pickle(env, tmp_path, capsys):
    model = tampered(env, "logreg", tmp_path / "m")
    (model / "head" / "state.joblib").write_bytes(b"\x80\x04N.")  # pickle of None: never loaded
    tampered_meta = json.loads((model / "model.json").read_text())
    tampered_meta["files"] = manifest(model, skip=("model.json",))  # listed: the hashes match
    (model / "model.json").write_text(json.dumps(tampered_meta))
    err = refused(env, tmp_path, capsys, model, "format 2", "state.joblib")
    assert "--trust-pickle" not in err
    rc, err = run(infer_args(env, tmp_path / "s.csv", model, "--trust-pickle"), capsys)
    assert rc == 2 and len(err) == 1 and "refused" in err[0]


def test_kit_hint_says_only_if_you_trust_its_origin(env, tmp_path):
    legacy = tmp_path / "legacy"
    (legacy / "head").mkdir(parents=True)
    (legacy / "head" / "state.joblib").write_bytes(b"\x80\x04N.")
    (legacy / "model.json").write_text(json.dumps({"format": 1, "head": "logreg", "labels": ["a"]}))
    with pytest.raises(kk.UsageError, match="only if you trust its origin"):
        kk.copy_models([legacy], tmp_path / "kit")


@pytest.mark.parametrize(
    "head, params, needles",
    [
        ("mlp", ["hidden=2000000"], ("--params: hidden = 2000000", "<= 65536")),
        ("lgbm", ["n_jobs=1e6"], ("n_jobs = 1000000.0", "<= 1024")),
        ("lgbm", ["params={'num_class': 2e9}"], ("num_class", "0..100000")),
        ("mlp", ["device=cuda:99"], ("cuda:99",)),
        ("logreg", ["C=1e999"], ("--params.C = inf", "finite")),
    ],
)
def test_fit_params_are_checked_before_any_allocation(env, tmp_path, capsys, head, params, needles):
    args = fit_args(env["base"], env["root"], env["emb"], head, "--params", *params, name="bad")
    args[args.index("--out") + 1] = str(tmp_path / "models")
    rc, err = run(args, capsys)
    assert rc == 2 and len(err) == 1 and all(n in err[0] for n in needles), err  # before reading any data
    assert not (tmp_path / "models" / "bad").exists()


@pytest.mark.parametrize("where", ["safetensors", "csv"])
def test_a_full_disk_during_fit_is_one_line_and_the_old_model_is_kept(
    env, tmp_path, capsys, monkeypatch, where
):
    """ENOSPC injected deterministically where fit writes: safetensors' own error (the message a full disk
    gives it; before: a 26-line SafetensorError traceback) and an ``OSError`` (the per-class CSV)."""
    import errno

    import safetensors.numpy as stn
    from safetensors import SafetensorError

    out = tmp_path / "models"
    args = fit_args(env["base"], env["root"], env["emb"], "logreg", name="m")
    args[args.index("--out") + 1] = str(out)
    assert cli_main(args) == 0
    before = load_model(out / "m").head.coef_.copy()

    def full(*a, **k):
        if where == "safetensors":
            raise SafetensorError(
                "Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                'message: "No space left on device" })'
            )
        raise OSError(errno.ENOSPC, "No space left on device", str(out))

    if where == "safetensors":
        monkeypatch.setattr(stn, "save_file", full)
    else:
        monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    rc, err = run(args, capsys)
    err = [e for e in err if not e.startswith("[fit]")]
    assert rc == 2 and len(err) == 1, err
    assert "no space left" in err[0] and str(out / "m") in err[0] and "bytes" in err[0], err
    assert "Traceback" not in err[0]
    monkeypatch.undo()
    np.testing.assert_array_equal(load_model(out / "m").head.coef_, before)  # the old version is intact
    assert (out / "m").is_dir() and not (out / "m").is_symlink()  # the old version is the folder still
    assert not [p.name for p in out.glob(".m.*") if ".prev-" not in p.name]  # no half-written version left


def test_preflight_import_of_numpy_is_inside_the_try(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "numpy", None)  # `import numpy` raises ImportError
    assert kk.preflight(["models/x"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "numpy" in err[0] and "[kit]" in err[0], err


def test_torch_weights_that_do_not_fit_the_head_are_refused_at_load(env, tmp_path, capsys):
    def edit(doc):
        doc["params"]["hidden"] = 32  # the weights in model.safetensors have 16 hidden units

    model = tampered(env, "mlp", tmp_path / "m", edit_head=edit)
    refused(env, tmp_path, capsys, model, "model.safetensors", "has shape (16", "allowed: (32")


def test_infer_flags_a_submission_whose_every_probability_is_the_same(env, tmp_path, capsys):
    """A head that says nothing (weights 0: every probability 0.5) gives submission.invalid.csv, exit 1."""
    from safetensors.numpy import load_file, save_file

    model = tampered(env, "logreg", tmp_path / "m")
    st = model / "head" / "state.safetensors"
    arrays = load_file(str(st))
    arrays["coef_"][:] = 0.0
    arrays["intercept_"][:] = 0.0
    save_file(arrays, str(st))
    meta = json.loads((model / "model.json").read_text())
    meta["files"] = manifest(model, skip=("model.json",))
    (model / "model.json").write_text(json.dumps(meta))
    out = tmp_path / "sub.csv"
    rc, err = run(infer_args(env, out, model, "--smooth", "0"), capsys)
    assert rc == 1 and any("every probability is 0.5" in e for e in err), err
    assert not out.exists() and (tmp_path / "sub.invalid.csv").exists()


def test_allow_label_mismatch_says_what_the_header_is(env, tmp_path, capsys):
    sample = tmp_path / "sample.csv"
    sample.write_text("row_id," + ",".join([*sorted(FREQ), "zzz"]) + "\n")
    out = tmp_path / "sub.csv"
    args = infer_args(env, out, env["models"] / "logreg", "--sample", str(sample))
    assert run(args, capsys)[0] == 2  # refused without the flag
    rc, err = run([*args, "--allow-label-mismatch"], capsys)
    said = [e for e in err if "the header is that of" in e and "1 column(s) no model knows" in e]
    assert rc == 0 and said, err
    assert list(pd.read_csv(out).columns) == ["row_id", *sorted(FREQ), "zzz"]

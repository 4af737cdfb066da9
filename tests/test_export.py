"""ONNX export of saved models (every head, the zero-shot prior, composites) against what infer computes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import toy_training_set
from test_infer import FREQ, make_scapes

from embedkit.cli import main as cli_main
from embedkit.config import ExtractConfig, FitConfig, InferConfig
from embedkit.extract import run_extract
from embedkit.predict.infer import run_infer
from embedkit.predict.model import Model, load_model
from embedkit.store import read_embeddings
from embedkit.train.run import run_fit

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

HEADS = {
    "logreg": {"C": 1.0},
    "mlp": {"hidden": 16, "epochs": 8, "n_jobs": 1, "val_fraction": 0.0},
    "mil": {"hidden": 16, "epochs": 4},
    "proto": {"prototypes": 2, "epochs": 4},
    "lgbm": {"n_estimators": 15, "min_data_in_leaf": 2, "feature_fraction": 1.0, "n_jobs": 1},
}


def _data(root: Path, labels: list[str]) -> Path:
    return toy_training_set(root, None, FREQ, durations=(5.0, 7.0, 10.0), seed0=50, labels=labels)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Toy embeddings of 4 tone labels, one model per head, soundscapes and their float32 embeddings."""
    base = tmp_path_factory.mktemp("export")
    root = _data(base / "data", sorted(FREQ))
    emb = base / "emb"
    run_extract(ExtractConfig(backbone="toy", data=str(root), out=str(emb), progress=False))
    models = {}
    for head, params in HEADS.items():
        cfg = FitConfig(head=head, backbone="toy", data=str(root), embeddings=str(emb),
                        out=str(base / "models"), name=head, folds=0, params=params)  # fmt: skip
        models[head] = run_fit(cfg).folder
    scapes = make_scapes(base / "scapes")
    s = run_extract(ExtractConfig(backbone="toy", files=str(scapes), out=str(base / "scape_emb"),
                                  dtype="float32", progress=False))  # fmt: skip
    keys, X = read_embeddings(s.dataset)
    return {"base": base, "root": root, "emb": emb, "models": models, "scapes": scapes, "keys": keys, "X": X}


def run_onnx(path: Path, emb: np.ndarray, logits: np.ndarray | None = None) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"embedding": emb.astype(np.float32)}
    if logits is not None:
        feed["logits"] = logits.astype(np.float32)
    assert [i.name for i in sess.get_inputs()] == list(feed)
    return sess.run(["probabilities"], feed)[0]


def _infer(env, model: Path, out: Path, **kw):
    cfg = dict(data=str(env["root"]), soundscapes=str(env["scapes"]), models=[str(model)], out=str(out),
               progress=False, smooth=0.0, tta=[])  # fmt: skip
    return run_infer(InferConfig(**{**cfg, **kw}))


@pytest.mark.parametrize("head", list(HEADS))
def test_exported_head_equals_infer_on_the_same_windows(env, head, tmp_path):
    out = tmp_path / f"{head}.onnx"
    assert cli_main(["export", str(env["models"][head]), "--format", "onnx", "--out", str(out)]) == 0
    labels = (tmp_path / f"{head}.labels.txt").read_text().split()
    info = json.loads((tmp_path / f"{head}.json").read_text())
    assert labels == load_model(env["models"][head]).labels == info["labels"]
    assert info["inputs"] == {"embedding": ["batch", 8]} and info["backbone"]["backbone"] == "toy"
    res = _infer(env, env["models"][head], tmp_path / "sub.csv")
    P = run_onnx(out, env["X"])
    assert P.shape == (len(env["X"]), len(labels)) and P.dtype == np.float32
    ref = pd.DataFrame(res.probs, index=res.row_ids, columns=labels).loc[env["keys"]["row_id"]].to_numpy()
    assert np.abs(P - ref).max() <= 1e-5
    assert P.std() > 0.01  # the head separates the tones: not a constant graph


def test_tta_and_smoothing_as_documented_reproduce_infer(env, tmp_path):
    """infer's defaults (TTA +-1.25 s, smoothing 0.5) = the graph on each variant, mean, then the formula."""
    from embedkit.audio import Windowing, list_audio
    from embedkit.audio.stream import embed_files
    from embedkit.backbones import get_backbone as build

    out = tmp_path / "m.onnx"
    cli_main(["export", str(env["models"]["logreg"]), "--out", str(out)])
    info = json.loads(out.with_suffix(".json").read_text())
    S, s = info["tta"]["offsets_s"], info["smoothing"]["weight"]
    assert (S, s) == ([1.25], 0.5)
    res = _infer(env, env["models"]["logreg"], tmp_path / "sub.csv", smooth=None, tta=[1.25])
    files = list_audio(env["scapes"])
    got = {}
    for fe in embed_files(build("toy"), files, Windowing(), offsets=(-1.25, 1.25), progress=False):
        variants = [run_onnx(out, fe.emb)] + [run_onnx(out, e) for e in fe.shifted]
        p = np.mean(variants, axis=0)
        prev, nxt = np.vstack([p[:1], p[:-1]]), np.vstack([p[1:], p[-1:]])
        q = (1 - s) * p + s / 2 * (prev + nxt)
        for k, row in enumerate(q):
            got[f"{files[fe.index].stem}_{5 * (k + 1)}"] = row
    mine = np.stack([got[r] for r in res.row_ids])
    assert np.abs(mine - res.probs).max() <= 1e-5


def _zero_shot_model(mode: str, seed: int = 0, head_weight=None) -> tuple[Model, np.ndarray, np.ndarray]:
    """A logreg model with a zero-shot prior/features over 5 of 7 backbone classes (in memory)."""
    from embedkit.heads import get_head

    rng = np.random.default_rng(seed)
    N, D, C, K = 200, 6, 4, 7
    X = rng.normal(size=(N, D)).astype(np.float32)
    L = rng.normal(scale=3, size=(N, K)).astype(np.float32)
    index = np.array([3, -1, 0, 6])
    z = np.where(index >= 0, L[:, np.maximum(index, 0)], 0).astype(np.float32)
    Y = (X[:, :C] + 0.3 * z > 0.5).astype(np.float32)
    features = mode in ("features", "both")
    head = get_head("logreg", C=0.5).fit(np.hstack([X, z]) if features else X, Y)
    zs = {
        "mode": mode,
        "index": index.tolist(),
        "weights": [0.5, 0.0, 2.0, 4.0],
        "offset": [0.3, 0.0, -1.0, 2.0],
    }
    if head_weight is not None:  # fit.py --prior-per-class: per-class choice, 0 = the backbone alone
        zs["head_weight"] = head_weight
    meta = {"zero_shot": zs, "needs_logits": True, "input_dim": D + (C if features else 0), "head": "logreg"}
    m = Model(
        folder=Path("zs"), head=head, labels=list("abcd"), provenance={"backbone": "x", "dim": D}, meta=meta
    )
    return m, X, L


@pytest.mark.parametrize("mode", ["prior", "features", "both"])
def test_zero_shot_prior_and_features_inside_the_graph(mode, tmp_path):
    from onnx import save

    from embedkit.predict.export import build_onnx

    m, X, L = _zero_shot_model(mode)
    save(build_onnx(m), str(tmp_path / "zs.onnx"))
    P = run_onnx(tmp_path / "zs.onnx", X, L)
    ref = m.predict(X, L)  # what infer calls for each file's windows
    assert np.abs(P - ref).max() <= 1e-5
    if mode != "features":  # the blend moves the probabilities: the prior is really in the graph
        plain = m.head.predict_proba(
            np.hstack([X, np.zeros((len(X), 4), np.float32)]) if mode == "both" else X
        )
        assert np.abs(P - plain).max() > 0.05


def test_lgbm_graph_handles_extreme_thresholds_and_untrained_classes(tmp_path):
    """Features equal to split thresholds and exact zeros, a class with no positives (constant 0)."""
    from onnx import save

    from embedkit.heads import get_head
    from embedkit.predict.export import build_onnx

    rng = np.random.default_rng(3)
    X = np.round(rng.normal(size=(400, 5)), 1).astype(np.float32)  # few distinct values: thresholds hit
    X[::7, 2] = 0.0
    Y = np.stack([X[:, 0] > 0.1, X[:, 1] + X[:, 2] > 0, np.zeros(400, bool)], axis=1).astype(np.float32)
    head = get_head("lgbm", n_estimators=30, min_data_in_leaf=3, feature_fraction=1.0, n_jobs=1).fit(X, Y)
    m = Model(folder=Path("t"), head=head, labels=["p", "q", "never"], provenance={"dim": 5}, meta={})
    save(build_onnx(m), str(tmp_path / "t.onnx"))
    P = run_onnx(tmp_path / "t.onnx", X)
    assert np.abs(P - m.predict(X)).max() <= 1e-5
    assert np.all(P[:, 2] == 0.0)
    # zero_as_missing: LightGBM sends exact zeros the default way (missing type "Zero"): BRANCH_EQ nodes
    zh = get_head("lgbm", n_estimators=30, min_data_in_leaf=3, feature_fraction=1.0, n_jobs=1,
                  params={"zero_as_missing": True}).fit(X, Y)  # fmt: skip
    dump = json.dumps(zh.booster_.dump_model())
    assert '"missing_type": "Zero"' in dump
    mz = Model(folder=Path("z"), head=zh, labels=["p", "q", "never"], provenance={"dim": 5}, meta={})
    proto = build_onnx(mz)
    modes = [a for n in proto.graph.node for a in n.attribute if a.name == "nodes_modes"]
    assert b"BRANCH_EQ" in modes[0].strings
    save(proto, str(tmp_path / "z.onnx"))
    assert np.abs(run_onnx(tmp_path / "z.onnx", X) - mz.predict(X)).max() <= 1e-5


def test_export_refuses_in_one_line(env, tmp_path, capsys):
    assert cli_main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a model folder" in err[0]
    assert not (tmp_path / "x.onnx").exists()


def test_per_class_head_weight_inside_the_graph(tmp_path):
    """A model whose prior chose the backbone's classifier alone for some labels exports as infer runs it."""
    from onnx import save

    from embedkit.predict.export import build_onnx

    m, X, L = _zero_shot_model("prior", head_weight=[0.0, 1.0, 1.0, 0.0])
    save(build_onnx(m), str(tmp_path / "zs.onnx"))
    P = run_onnx(tmp_path / "zs.onnx", X, L)
    assert np.abs(P - m.predict(X, L)).max() <= 1e-5
    z0 = L[:, 3]  # label a: the backbone alone, its own probability sigmoid(w * z), not shifted by o
    assert np.abs(P[:, 0] - 1 / (1 + np.exp(-0.5 * z0))).max() <= 1e-5

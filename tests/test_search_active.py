"""Search as active learning: several queries, the query's own recording left out, ranking by a head, the
review page with y / n buttons whose CSV the label loop and fit.py --extra-labels read."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_search import FREQ, extract_toy, make_split

from embedkit.cli import main
from embedkit.config import FitConfig
from embedkit.search import build_index, load_labels, search
from embedkit.search.ann import normalise
from embedkit.search.query import embed_clip
from embedkit.search.review import LABELS_JS
from embedkit.store import read_embeddings


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """12 toy recordings of 3 tones, their index, and a logreg head fit on them."""
    from embedkit.train.run import run_fit

    base = tmp_path_factory.mktemp("active")
    root = make_split(base / "data", "train_audio", 12)
    rows = [
        (p.parent.name, "[]", f"{p.parent.name}/{p.name}") for p in sorted((root / "train_audio").glob("*/*"))
    ]
    pd.DataFrame(rows, columns=["primary_label", "secondary_labels", "filename"]).to_csv(
        root / "train.csv", index=False
    )
    (root / "sample_submission.csv").write_text("row_id," + ",".join(sorted(FREQ)) + "\n")
    s = extract_toy(root, base / "emb")
    index = build_index(s.dataset)
    model = run_fit(FitConfig(head="logreg", backbone="toy", data=str(root), embeddings=str(base / "emb"),
                              out=str(base / "models"), folds=0, params={"C": 0.05})).folder  # fmt: skip
    return {"base": base, "root": root, "ds": s.dataset, "index": index, "model": model}


def _clip(env, name: str) -> str:
    return str(env["root"] / "train_audio" / name)


def test_several_queries_mean_any_and_exclude_source(env, tmp_path):
    ix = env["index"]
    a, b = _clip(env, "aaa/XC000.ogg"), _clip(env, "aaa/XC003.ogg")
    own = search(ix, a + ":0-5", k=12, exact=True)  # its first window: among its nearest, at similarity 1
    assert own.loc[own["file"] == "aaa/XC000.ogg", "score"].max() > 0.9999
    out = tmp_path / "hits.csv"
    assert main(["search", "--index", str(env["ds"]), "--query", a, "--query", b, "--exclude-source",
                 "--exact", "--k", "6", "--out", str(out)]) == 0  # fmt: skip
    hits = pd.read_csv(out)
    assert len(hits) == 6 and not hits["file"].isin(["aaa/XC000.ogg", "aaa/XC003.ogg"]).any()
    assert hits["file"].str.startswith("aaa/").sum() >= 4  # the other aaa recordings come first
    # mean = a search with the mean of the two clips' unit embeddings
    qa, qb = embed_clip(ix, a), embed_clip(ix, b)
    mean = search(ix, [a, b], k=8, exact=True)
    ref = search(ix, normalise(np.stack([qa, qb])).mean(0), k=8, exact=True)
    assert mean["row_id"].tolist() == ref["row_id"].tolist()
    # any = per window its best similarity to either clip
    keys, X = read_embeddings(env["ds"])
    sims = normalise(X) @ normalise(np.stack([qa, qb])).T
    best = pd.Series(sims.max(1), index=keys["row_id"]).sort_values(ascending=False)
    anyq = search(ix, [a, b], k=8, exact=True, combine="any")
    np.testing.assert_allclose(anyq["score"], best.iloc[:8].to_numpy(), atol=1e-5)
    rid = keys.loc[keys["file"] == "aaa/XC000.ogg", "row_id"].iloc[0]
    assert "aaa/XC000.ogg" in set(search(ix, row_id=rid, k=12, exact=True)["file"])
    row = search(ix, row_id=rid, k=12, exact=True, exclude_source=True)
    assert len(row) == 12 and "aaa/XC000.ogg" not in set(row["file"])


def test_rank_by_head_top_and_uncertain(env, tmp_path, capsys):
    from embedkit.predict.model import load_model

    keys, X = read_embeddings(env["ds"])
    p = pd.Series(load_model(env["model"]).predict(X)[:, 1], index=keys["row_id"])  # bbb
    out = tmp_path / "top.csv"
    args = ["search", "--index", str(env["ds"]), "--rank-by-head", str(env["model"]), "--species", "bbb"]
    assert main([*args, "--k", "5", "--out", str(out)]) == 0
    top = pd.read_csv(out)
    np.testing.assert_allclose(top["score"], p.sort_values(ascending=False).iloc[:5], atol=1e-5)
    assert (top["file"].str.startswith("bbb/")).all() and (top["species"] == "bbb").all()
    assert main([*args, "--uncertain", "--threshold", "0.4", "--k", "4", "--out", str(out)]) == 0
    unsure = pd.read_csv(out)
    closest = (p - 0.4).abs().sort_values(kind="stable").iloc[:4]
    np.testing.assert_allclose(np.abs(unsure["score"] - 0.4), closest.to_numpy(), atol=1e-5)
    capsys.readouterr()
    assert main(["search", "--index", str(env["ds"]), "--rank-by-head", str(env["model"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--species" in err[0]
    assert main([*args, "--query", _clip(env, "aaa/XC000.ogg")]) == 2
    assert "exactly one of" in capsys.readouterr().err
    prior = tmp_path / "prior"  # a model that blends the backbone's logits: the toy shards have none
    shutil.copytree(env["model"].resolve(), prior)
    doc = json.loads((prior / "model.json").read_text())
    doc.update(needs_logits=True, zero_shot={"mode": "prior", "index": [0, 1, 2], "weights": [1.0] * 3,
                                              "offset": [0.0] * 3})  # fmt: skip
    (prior / "model.json").write_text(json.dumps(doc))
    assert main(["search", "--index", str(env["ds"]), "--rank-by-head", str(prior), "--species", "bbb"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds none" in err[0] and "--save-logits" in err[0]


def test_review_page_shows_the_query_and_its_labels_csv_feeds_the_loop(env, tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the page's script cannot be run")
    out = tmp_path / "review" / "hits.csv"
    q = _clip(env, "ccc/XC002.ogg") + ":1-4"
    assert main(["search", "--index", str(env["ds"]), "--query", q, "--k", "5", "--species", "ccc",
                 "--html", "--out", str(out)]) == 0  # fmt: skip
    page = out.with_suffix(".html").read_text()
    assert "<h2>Query</h2>" in page and "query_01.wav" in page and page.count('data-v="y"') == 5
    srcs = re.findall(r'src="([^"]+)"', page)
    assert len(srcs) == 2 * 6 and all(not Path(s).is_absolute() and (out.parent / s).is_file() for s in srcs)
    blob = re.search(r'<script type="application/json" id="hits-data">(.*?)</script>', page, re.S).group(1)
    data = json.loads(blob)
    assert data["save_as"] == "hits_labelled.csv" and len(data["rows"]) == 5
    # the page's own function, run by node, with answers y, n, -, y, n
    code = LABELS_JS + f"process.stdout.write(labelledCsv({blob}, {{0: 'y', 1: 'n', 3: 'y', 4: 'n'}}));"
    csv = subprocess.run([node, "-e", code], capture_output=True, text=True, check=True).stdout
    saved = tmp_path / "hits_labelled.csv"
    saved.write_text(csv)
    lab = load_labels(saved)  # what fit.py --extra-labels reads
    hits = pd.read_csv(out)
    assert lab["y"].tolist() == [1.0, 0.0, 1.0, 0.0] and set(lab["species"]) == {"ccc"}
    assert lab["file"].tolist() == hits["file"].iloc[[0, 1, 3, 4]].tolist()
    assert main(["label", "--hits", str(saved), "--no-loop", "--out", str(tmp_path / "lab.csv")]) == 0
    assert pd.read_csv(tmp_path / "lab.csv", keep_default_na=False)["label"].tolist() == [
        "y",
        "n",
        "",
        "y",
        "n",
    ]

"""Search and label: ANN index vs exact search on real BirdNET windows, clip queries, incremental index,
snippets/HTML, the labelling loop and its round trip into fit.py, bad inputs."""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_audio

from embedkit.cli import main
from embedkit.config import ExtractConfig, FitConfig
from embedkit.errors import UsageError
from embedkit.extract import run_extract
from embedkit.search import build_index, load_index, load_labels, search
from embedkit.search.ann import exact_topk, graph_topk, normalise
from embedkit.search.config import IndexConfig, LabelConfig, SearchConfig
from embedkit.search.index import shard_vectors
from embedkit.search.label import label_loop, run_label
from embedkit.search.query import clip_windows, parse_clip, query_backbone
from embedkit.search.snippets import write_html, write_snippets
from embedkit.store import ShardWriter, StoreError, read_embeddings

FREQ = {"aaa": 800.0, "bbb": 2500.0, "ccc": 5000.0}


# -- real BirdNET windows -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_index(tmp_path_factory):
    """BirdNET embeddings of every xc-pr-birds recording (at most 6 windows each) and their index."""
    from conftest import SHARED

    if not (SHARED / "xc-pr-birds").is_dir():
        pytest.skip(f"{SHARED} not present")  # the shared_data fixture fails instead under CI's flag
    base = tmp_path_factory.mktemp("search-real")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMBEDKIT_CACHE", str(base / "cache"))
        s = run_extract(
            ExtractConfig(
                backbone="birdnet",
                data=str(SHARED / "xc-pr-birds"),
                out=str(base / "emb"),
                max_windows=6,
                progress=False,
                threads=2,
            )
        )
        yield build_index(s.dataset), s.dataset


@pytest.mark.slow
def test_ann_recall_at_10_on_real_birdnet_windows(shared_data, real_index):
    index, dataset = real_index
    keys, X = read_embeddings(dataset)
    assert len(index) == len(keys) > 800 and index.dim == X.shape[1] == 4096  # 2 chunks x (mean, max)
    q = X[::5]
    truth, tsims = exact_topk(X, q, 10)
    got, sims = graph_topk(index.graph, q, 10)
    # the data hold duplicated windows (one recording is filed under two species): a hit counts when its exact
    # similarity reaches the 10th exact neighbour's, so that equal vectors are interchangeable
    exact_of_got = np.einsum("qd,qkd->qk", normalise(q), normalise(X)[got])
    recall = float(np.mean(exact_of_got >= tsims[:, 9:10] - 1e-5))
    strict = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True)])
    print(f"recall@10, ANN vs exact: {recall:.4f} (same rows: {strict:.4f}; {len(q)} of {len(X)} windows)")
    assert recall >= 0.95
    assert np.all(np.diff(sims, axis=1) <= 1e-6)  # best first
    # the API: a stored window finds itself (or an identical copy) first, ANN and exact agree
    rid = index.rows["row_id"].iloc[7]
    a, b = search(index, row_id=rid, k=10), search(index, row_id=rid, k=10, exact=True)
    assert b["score"].iloc[0] == pytest.approx(1, abs=1e-5) and a["score"].iloc[0] == pytest.approx(
        1, abs=1e-3
    )
    assert rid in set(b["row_id"][b["score"] > 1 - 1e-5]) and np.allclose(a["score"], b["score"], atol=2e-3)


@pytest.mark.slow
def test_query_clip_finds_its_species_first(shared_data, real_index):
    """One 3 s clip per species (not aligned to the stored windows) → hits from *other* recordings."""
    index, _ = real_index
    train = pd.read_csv(shared_data / "xc-pr-birds" / "train.csv")
    species_of = dict(zip(train["filename"], train["primary_label"], strict=True))
    files = index.rows["file"].map(species_of)
    bb = query_backbone(index)
    precisions, chance = [], []
    try:
        for sp, grp in train.groupby("primary_label"):
            rec = grp.sort_values("duration_s").iloc[len(grp) // 2]
            mid = float(rec["duration_s"]) / 2  # a 3 s clip from the middle, not aligned to the windows
            path = shared_data / "xc-pr-birds" / "train_audio" / rec["filename"]
            clip = f"{path}:{max(mid - 1.5, 0):g}-{mid + 1.5:g}"
            hits = search(index, clip, k=80, backbone=bb)
            other = hits[hits["file"] != rec["filename"]].head(10)
            precisions.append(float((other["file"].map(species_of) == sp).mean()))
            pool = files[index.rows["file"] != rec["filename"]]
            chance.append(float((pool == sp).mean()))
    finally:
        bb.close()
    p10, base = float(np.mean(precisions)), float(np.mean(chance))
    print(
        f"precision@10 of clip queries (other recordings only), mean over {len(precisions)} species: "
        f"{p10:.3f}; chance {base:.3f}"
    )
    assert p10 > 4 * base


def test_clip_windows_widen_short_clips_and_split_long_ones(tmp_path):
    f = write_audio(tmp_path / "a.wav", 12.0, sr=16000, fmt="WAV", subtype="FLOAT")
    one = clip_windows(f"{f}:5-6", 16000, 5.0)
    assert one.shape == (1, 80000)
    x = clip_windows(str(f), 16000, 5.0)  # 12 s → 3 windows, the last zero-padded
    assert x.shape == (3, 80000) and np.all(x[2, 32000:] == 0) and np.any(x[2, :32000] != 0)
    two = clip_windows(f"{f}:0-7", 16000, 5.0)  # nothing after the clip's end
    assert two.shape == (2, 80000) and np.all(two[1, 32000:] == 0) and np.any(two[1, :32000] != 0)
    edge = clip_windows(f"{f}:0-1", 16000, 5.0)  # centred on 0.5 s: 2 s of zeros before the file
    assert np.all(edge[0, :31999] == 0) and np.any(edge[0, 40000:] != 0)
    assert parse_clip("C:/x/a.wav") == (Path("C:/x/a.wav"), None, None)
    assert parse_clip("a:b.wav:1.5-4")[1:] == (1.5, 4.0)


# -- toy datasets -------------------------------------------------------------------------------------------


def make_split(root: Path, split: str, n: int, first: int = 0, durs=(6.0, 11.0, 16.0)) -> Path:
    for i in range(first, first + n):
        lab = sorted(FREQ)[i % 3]
        write_audio(root / split / lab / f"XC{i:03d}.ogg", durs[i % len(durs)], freq=FREQ[lab], seed=i)
    return root


def extract_toy(root: Path, emb: Path, split: str = "train_audio"):
    return run_extract(
        ExtractConfig(backbone="toy", data=str(root), split=split, out=str(emb), progress=False)
    )


def test_incremental_add_equals_full_build(tmp_path, capsys):
    root = make_split(tmp_path / "data", "train_audio", 9)
    s = extract_toy(root, tmp_path / "emb")
    first = build_index(s.dataset)
    make_split(root, "train_audio", 6, first=9)
    extract_toy(root, tmp_path / "emb")  # resume: only the new files, into a new shard
    capsys.readouterr()
    inc = build_index(s.dataset)
    assert "added" in capsys.readouterr().err
    full = build_index(s.dataset, out=tmp_path / "full", rebuild=True)
    assert len(inc.meta["shards"]) == 2 and len(inc) == len(full) > len(first)
    pd.testing.assert_frame_equal(inc.rows.iloc[: len(first)], first.rows)  # old rows kept, not rebuilt
    key = ["file", "window"]
    assert inc.rows.sort_values(key)[key].values.tolist() == full.rows.sort_values(key)[key].values.tolist()
    for ix in (inc, full):
        ids = np.concatenate([shard_vectors(ix, sh)[0] for sh in dict.fromkeys(ix.rows["shard"])])
        assert sorted(ids) == list(range(len(ix)))
    for rid in inc.rows["row_id"].iloc[::7]:
        for exact in (False, True):
            a = search(inc, row_id=rid, k=8, exact=exact)
            b = search(full, row_id=rid, k=8, exact=exact)
            assert np.allclose(a["score"], b["score"], atol=1e-3)
            assert set(a["row_id"]) == set(b["row_id"]) or not exact
    capsys.readouterr()
    assert build_index(s.dataset).meta["files"] == inc.meta["files"]  # nothing new: untouched
    assert "up to date" in capsys.readouterr().err


def test_mixed_provenance_and_corrupt_index_are_refused(tmp_path):
    root = make_split(tmp_path / "data", "train_audio", 6)
    s = extract_toy(root, tmp_path / "emb")
    build_index(s.dataset)
    other = ShardWriter(
        tmp_path / "other",
        {"backbone": "toy", "dim": 8, "sample_rate": 16000, "weights": "toy", "window_s": 5.0, "hop_s": 2.5},
    )
    keys = pd.DataFrame(
        {"file": ["z.ogg"], "window": [0], "start_s": [0.0], "end_s": [5.0], "row_id": ["z_5"]}
    )
    shutil.copy(other.write(keys, np.ones((1, 8), np.float32)), s.dataset / "part-zzzz.parquet")
    with pytest.raises(StoreError, match="hop_s"):
        build_index(s.dataset)
    (s.dataset / "part-zzzz.parquet").unlink()
    ix = load_index(s.dataset)
    graph = ix.folder / ix.meta["files"]["graph"]["name"]
    graph.write_bytes(graph.read_bytes()[:-7] + b"corrupt")
    with pytest.raises(StoreError, match="SHA-256"):
        load_index(s.dataset)
    assert len(build_index(s.dataset, rebuild=True)) == len(ix)


def test_snippets_and_html_page(tmp_path):
    root = make_split(tmp_path / "data", "train_audio", 6)
    s = extract_toy(root, tmp_path / "emb")
    hits = search(build_index(s.dataset), row_id=read_embeddings(s.dataset)[0]["row_id"][0], k=4)
    hits.loc[1, "file"] = "<script>alert(1)</script>.ogg"
    hits.loc[3, "audio"] = str(tmp_path / "gone.ogg")
    snips = write_snippets(hits, tmp_path / "snips")
    import soundfile as sf

    x, sr = sf.read(str(tmp_path / "snips" / snips[0]))
    assert sr == 32000 and len(x) == pytest.approx((hits["end_s"][0] - hits["start_s"][0]) * sr, abs=1)
    assert snips[3].startswith("skipped: missing file")
    page = write_html(hits, snips, tmp_path / "snips", tmp_path / "hits.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<audio") == 3 and page.count("<img") == 3
    assert (tmp_path / "snips" / Path(snips[0]).with_suffix(".png").name).is_file()


# -- labelling ----------------------------------------------------------------------------------------------


def test_label_loop_from_stdin_saves_after_each_answer(tmp_path):
    hits = pd.DataFrame(
        {
            "rank": [1, 2, 3, 4],
            "score": [0.9, 0.8, 0.7, 0.6],
            "file": list("abcd"),
            "window": 0,
            "start_s": 0.0,
            "end_s": 5.0,
            "species": "aaa",
            "label": ["", "n", "", ""],
        }
    )
    saved = []
    played = []
    out = io.StringIO()
    label_loop(
        hits,
        io.StringIO("p\nmaybe\ny\n\nq\n"),
        out,
        save=lambda h: saved.append(h["label"].tolist()),
        play=played.append,
    )
    assert hits["label"].tolist() == ["y", "n", "", ""]
    assert saved == [["y", "n", "", ""], ["y", "n", "", ""]] and len(played) == 1
    assert "'maybe'?" in out.getvalue()
    path = tmp_path / "hits.csv"
    hits.assign(label="").to_csv(path, index=False)
    res = run_label(
        LabelConfig(hits=str(path), out=str(tmp_path / "l.csv"), species="bbb"),
        inp=io.StringIO("y\nn\n"),
        out=io.StringIO(),
    )  # input ends: the rest stay unlabelled
    back = pd.read_csv(tmp_path / "l.csv", keep_default_na=False)
    assert back["label"].tolist() == ["y", "n", "", ""] == res["label"].tolist()
    assert set(back["species"]) == {"aaa"}  # species given in the table win over --species


@pytest.fixture
def fit_setup(tmp_path):
    """Train recordings (train.csv of 3 labels) and a second dataset of unlabelled 'ccc'-like recordings."""
    root = make_split(tmp_path / "data", "train_audio", 12)
    rows = [
        (p.parent.name, "[]", f"{p.parent.name}/{p.name}") for p in sorted((root / "train_audio").glob("*/*"))
    ]
    pd.DataFrame(rows, columns=["primary_label", "secondary_labels", "filename"]).to_csv(
        root / "train.csv", index=False
    )
    pd.DataFrame({"primary_label": sorted(FREQ), "scientific_name": ["A a", "B b", "C c"]}).to_csv(
        root / "taxonomy.csv", index=False
    )
    for i in range(4):
        write_audio(root / "train_soundscapes" / f"S{i}.ogg", 10.0, freq=FREQ["ccc"], seed=100 + i)
    extract_toy(root, tmp_path / "emb")
    sound = extract_toy(root, tmp_path / "emb", "train_soundscapes")
    return root, tmp_path / "emb", sound.dataset


def fitted_p(tmp_path, root, emb, name, extra=None) -> np.ndarray:
    """P(label) of the soundscape windows [M, 3] under a logreg head fitted with ``extra`` labels."""
    from embedkit.predict.model import load_model, predict_model
    from embedkit.train.run import run_fit

    cfg = FitConfig(
        head="logreg",
        backbone="toy",
        data=str(root),
        embeddings=str(emb),
        out=str(tmp_path / "m"),
        name=name,
        folds=2,
        zero_shot="off",
        params={"C": 1.0},  # a weakly regularised head, so labels move it (the default C=0.01 barely moves)
        extra_labels=extra,
    )
    res = run_fit(cfg)
    _, Xs = read_embeddings(emb / "toy" / "train_soundscapes")
    return predict_model(load_model(res.folder), Xs), res


def test_labelling_round_trip_changes_the_fit(fit_setup, tmp_path):
    root, emb, sound = fit_setup
    base, _ = fitted_p(tmp_path, root, emb, "base")
    assert base[:, 2].mean() > 0.5  # the soundscapes sound like ccc
    # search the soundscapes, mark every hit "not ccc" in the terminal loop, fit again
    hits = search(build_index(sound), row_id=read_embeddings(sound)[0]["row_id"][0], k=100, species="ccc")
    hits.to_csv(tmp_path / "hits.csv", index=False)
    answers = io.StringIO("n\n" * len(hits))
    run_label(
        LabelConfig(hits=str(tmp_path / "hits.csv"), out=str(tmp_path / "lab.csv")),
        inp=answers,
        out=io.StringIO(),
    )
    lab = load_labels(tmp_path / "lab.csv")
    assert len(lab) == len(hits) and (lab["y"] == 0).all() and set(lab["species"]) == {"ccc"}
    neg, res = fitted_p(tmp_path, root, emb, "neg", str(tmp_path / "lab.csv"))
    assert neg[:, 2].mean() < base[:, 2].mean() - 0.2
    meta = json.loads((res.folder / "model.json").read_text())
    assert meta["n_windows"] == len(read_embeddings(emb / "toy" / "train_audio")[0]) + len(hits)
    oof = pd.read_parquet(res.folder / "oof.parquet")
    added = oof[oof["file"].str.startswith("train_soundscapes/")]
    assert len(added) == len(hits) and added.groupby("file")["fold"].nunique().max() == 1  # grouped by file
    # a positive of another label on training windows: relabel two 'aaa' windows as 'bbb' too
    tk = read_embeddings(emb / "toy" / "train_audio")[0]
    two = tk[tk["file"].str.startswith("aaa/")].head(2).assign(species="bbb", label="y", dataset="")
    two.to_csv(tmp_path / "pos.csv", index=False)
    assert len(load_labels(tmp_path / "pos.csv", dataset=emb / "toy" / "train_audio")) == 2
    _, res2 = fitted_p(tmp_path, root, emb, "pos", str(tmp_path / "pos.csv"))
    Y = np.stack(pd.read_parquet(res2.folder / "oof.parquet")["y"].to_numpy())
    assert int(Y[:, 1].sum()) == int((tk["file"].str.startswith("bbb/")).sum()) + 2


# -- errors and signatures ----------------------------------------------------------------------------------


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    root = make_split(tmp_path / "data", "train_audio", 3)
    s = extract_toy(root, tmp_path / "emb")
    build_index(s.dataset)
    ix = str(s.dataset)
    cases = [
        (["index", "--embeddings", str(tmp_path / "nothing")], "no embedding shards"),
        (["search", "--index", str(tmp_path / "nothing"), "--row-id", "x_5"], "no such index folder"),
        (["search", "--index", ix], "exactly one of"),
        (["search", "--index", ix, "--row-id", "nope_5"], "no window with that id"),
        (["search", "--index", ix, "--row-id", "XC000_5", "--k", "0"], "--k must be"),
        (["search", "--index", ix, "--query", "a.wav:5-2"], "must come after"),
        (["search", "--index", ix, "--query", str(tmp_path / "missing.wav")], "missing file"),
        (["label", "--hits", str(tmp_path / "none.csv")], "hits file not found"),
    ]
    capsys.readouterr()
    for argv, msg in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, (argv, err)
    bad = tmp_path / "bad.csv"
    pd.DataFrame(
        {"file": ["a"], "window": [0], "species": ["aaa"], "label": ["maybe"], "dataset": [ix]}
    ).to_csv(bad, index=False)
    with pytest.raises(UsageError, match="row 2: label 'maybe'"):
        load_labels(bad)
    pd.DataFrame(
        {
            "file": ["a", "a"],
            "window": [0, 0],
            "species": ["aaa"] * 2,
            "label": ["y", "n"],
            "dataset": [ix] * 2,
        }
    ).to_csv(bad, index=False)
    with pytest.raises(UsageError, match="both y and n"):
        load_labels(bad)
    pd.DataFrame({"file": ["a"], "window": [0], "species": [""], "label": ["y"], "dataset": [ix]}).to_csv(
        bad, index=False
    )
    with pytest.raises(UsageError, match="no species"):
        load_labels(bad)
    with pytest.raises(UsageError, match="vector has 3 values"):
        search(ix, np.ones(3))


def test_cli_flags_match_the_library_signatures():
    fields = {f.name for f in dataclasses.fields(IndexConfig)}
    assert set(inspect.signature(build_index).parameters) - {"embeddings", "out"} <= fields
    sig = set(inspect.signature(search).parameters)
    renamed = {"audio_root": "data", "query": "query", "index": "index"}
    assert {renamed.get(p, p) for p in sig - {"backbone"}} <= {
        f.name for f in dataclasses.fields(SearchConfig)
    }
    assert "extra_labels" in {f.name for f in dataclasses.fields(FitConfig)}

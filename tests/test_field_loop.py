"""The field loop on shared recordings, with BirdNET: class folders → fit → analyze a nested folder with two
same-named files → Raven tables read back → search + label in Raven tables → fit --annotations → export ONNX
→ onnxruntime equals embedkit.

Also the "labels in" path on real calls: boxes around the loud bird-band stretches of real clips, written as
Raven selection tables, train a model with ``fit.py --annotations --annotated-fully``.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import SHARED

from embedkit.cli import main as cli_main
from embedkit.predict.model import load_model
from embedkit.tables import raven_frame, read_raven, write_raven

SPECIES = ["purvir1", "banana", "bkwvir"]
CLIP_S = 12.0

pytestmark = pytest.mark.slow


def _trim(src, dst, start_s=0.0, dur=CLIP_S):
    info = sf.info(str(src))
    x, sr = sf.read(str(src), start=int(start_s * info.samplerate), frames=int(dur * info.samplerate),
                    dtype="float32", always_2d=True)  # fmt: skip
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(dst), x.mean(1), sr, format="OGG", subtype="VORBIS")
    return dst


def call_boxes(path, lo=1000.0, hi=10000.0, frame_s=0.25):
    """(begin, end) seconds of the stretches whose 1-10 kHz energy is in the clip's loud part."""
    x, sr = sf.read(str(path), dtype="float32")
    n = int(frame_s * sr)
    frames = x[: len(x) // n * n].reshape(-1, n)
    spec = np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2
    f = np.fft.rfftfreq(n, 1 / sr)
    db = 10 * np.log10(spec[:, (f >= lo) & (f <= hi)].sum(1) + 1e-12)
    loud = db > np.median(db) + 0.5 * (db.max() - np.median(db))
    boxes, k = [], 0
    while k < len(loud):
        if loud[k]:
            j = k
            while j + 1 < len(loud) and loud[j + 1]:
                j += 1
            boxes.append((k * frame_s, (j + 1) * frame_s))
            k = j + 1
        else:
            k += 1
    return boxes


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    if not (SHARED / "xc-pr-birds").is_dir():  # as the shared_data fixture (function-scoped) does
        if os.environ.get("EMBEDKIT_REQUIRE_SHARED") == "1":
            pytest.fail(f"EMBEDKIT_REQUIRE_SHARED=1 but {SHARED} is missing")
        pytest.skip(f"{SHARED} not present")
    base = tmp_path_factory.mktemp("field")
    audio = SHARED / "xc-pr-birds" / "train_audio"
    classes, held = base / "classes", {}
    for sp in SPECIES:
        files = sorted((audio / sp).glob("*.ogg"))
        for f in files[:3]:
            _trim(f, classes / sp / f.name)
        held[sp] = files[3]
    emb, models = base / "emb", base / "models"
    assert cli_main(["extract", "--backbone", "birdnet", "--files", str(classes), "--name", "classes",
                     "--out", str(emb), "--no-progress"]) == 0  # fmt: skip
    fit = ["fit", "--backbone", "birdnet", "--embeddings", str(emb), "--split", "classes",
           "--out", str(models), "--folds", "0"]  # fmt: skip
    assert cli_main([*fit, "--data", str(classes), "--name", "classes"]) == 0
    return {"base": base, "classes": classes, "held": held, "emb": emb, "models": models, "fit": fit}


def test_field_loop(loop, capsys):
    base, models = loop["base"], loop["models"]
    model = load_model(models / "classes")
    assert sorted(model.labels) == sorted(SPECIES)
    assert (models / "data-classes" / "train.csv").is_file()
    # analyze: two sites with a same-named recording (held-out calls of two species)
    rec = base / "rec"
    _trim(loop["held"]["purvir1"], rec / "siteA" / "20240501_060000.ogg", 0, 10)
    _trim(loop["held"]["banana"], rec / "siteB" / "20240501_060000.ogg", 0, 10)
    out = base / "analysis"
    assert cli_main(["analyze", "--models", str(models / "classes"), "--audio", str(rec), "--recursive",
                     "--min-score", "0.2", "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    tables = {s: out / s / "20240501_060000.selections.txt" for s in ("siteA", "siteB")}
    got = {s: read_raven(t) for s, t in tables.items()}
    for t in got.values():
        assert {"Selection", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)"} <= set(
            t.columns
        )
        assert set(t["label"]) <= set(SPECIES)
    top = {s: t.loc[t["Score"].astype(float).idxmax(), "label"] for s, t in got.items() if len(t)}
    assert top.get("siteA") == "purvir1" or top.get("siteB") == "banana"  # the model hears its own birds
    if importlib.util.find_spec("opensoundscape"):  # optional: not installed by the project
        from opensoundscape.annotations import BoxedAnnotations

        ba = BoxedAnnotations.from_raven_files(
            [str(t) for t in tables.values()], annotation_column="Annotation"
        )
        assert len(ba.df) == sum(len(t) for t in got.values())
    # search with a held-out clip, hits as Raven tables; a reviewer marks them in Raven
    dataset = loop["emb"] / "birdnet" / "classes"
    assert cli_main(["index", "--embeddings", str(dataset)]) == 0
    hits_dir = base / "hits_raven"
    q = _trim(loop["held"]["bkwvir"], base / "query.ogg", 0, 5)
    assert cli_main(["search", "--index", str(dataset), "--query", str(q), "--k", "8", "--species", "bkwvir",
                     "--out", str(base / "hits.csv"), "--raven", str(hits_dir)]) == 0  # fmt: skip
    for t in sorted(hits_dir.rglob("*.selections.txt")):
        df = pd.read_csv(t, sep="\t", dtype=str, keep_default_na=False)
        df["Label"] = np.where(df["Begin File"].str.startswith("bkwvir/"), "y", "n")
        df.to_csv(t, sep="\t", index=False)
    lab_dir = base / "labelled_raven"
    assert cli_main(["label", "--hits", str(hits_dir), "--no-loop", "--out", str(base / "labelled.csv"),
                     "--raven", str(lab_dir)]) == 0  # fmt: skip
    labelled = pd.read_csv(base / "labelled.csv", keep_default_na=False)
    assert len(labelled) == 8 and set(labelled["label"]) <= {"y", "n"}
    back = pd.concat([read_raven(t) for t in lab_dir.rglob("*.selections.txt")])
    assert (
        set(back["label"]) <= {"bkwvir", "negative"}
        and (back["label"] == "bkwvir").sum() == (labelled["label"] == "y").sum()
    )
    # ... and flows back into fit --annotations
    capsys.readouterr()
    assert cli_main([*loop["fit"], "--annotations", str(lab_dir), "--name", "from-hits"]) == 0
    assert load_model(models / "from-hits").labels == ["bkwvir"]
    err = capsys.readouterr().err
    assert "--annotations:" in err and "negative windows" in err
    # export: the head as one ONNX graph; onnxruntime on the recordings' windows equals embedkit's numbers
    import onnxruntime as ort

    import embedkit

    onnx_file = base / "from-hits.onnx"
    assert cli_main(["export", str(models / "from-hits"), "--out", str(onnx_file)]) == 0
    m = load_model(models / "from-hits")
    win = embedkit.embed(sorted(rec.rglob("*.ogg")), "birdnet", logits=bool(m.meta.get("needs_logits")))
    feed = {"embedding": np.stack(win["emb"]).astype(np.float32)}
    if m.meta.get("needs_logits"):
        feed["logits"] = np.stack(win["logits"]).astype(np.float32)
    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    P = sess.run(["probabilities"], feed)[0]
    ref = m.predict(feed["embedding"], feed.get("logits"))  # what infer / analyze apply to each window
    assert P.shape == ref.shape == (len(win), 1) and np.abs(P - ref).max() <= 1e-5


def test_fit_on_raven_boxes_around_real_calls(loop, capsys):
    """Boxes around the loud bird-band parts of real clips, as Raven tables, train a model."""
    tables = loop["base"] / "boxes"
    n_boxes = 0
    for clip in sorted(loop["classes"].rglob("*.ogg")):
        sp = clip.parent.name
        boxes = call_boxes(clip)
        n_boxes += len(boxes)
        b = np.array(boxes).reshape(-1, 2)
        t = raven_frame(b[:, 0], b[:, 1], [sp] * len(b), 1000.0, 10000.0)
        write_raven(tables / sp / f"{clip.stem}.Table.1.selections.txt", t)
    assert n_boxes >= len(SPECIES) * 3
    capsys.readouterr()
    args = [*loop["fit"], "--annotations", str(tables), "--annotated-fully", "--min-overlap", "0.5"]
    assert cli_main([*args, "--name", "boxes"]) == 0
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if "--annotations:" in ln)
    assert f"{n_boxes} boxes in 9 recordings" in line
    n_pos = int(line.split("-> ")[1].split()[0])
    n_neg = int(line.split(" positive and ")[1].split()[0])
    assert n_pos > 0 and n_neg > 0  # windows between the calls of fully annotated clips are negatives
    assert sorted(load_model(loop["models"] / "boxes").labels) == sorted(SPECIES)

"""``embedkit report``: figures from a small toy-backbone run, and the helpers behind them."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embedkit.cli import main as cli_main
from embedkit.config import ExtractConfig, FitConfig, InferConfig
from embedkit.demo.data import make_demo_dataset
from embedkit.extract import run_extract
from embedkit.predict.infer import run_infer
from embedkit.report.page import _window_probs, build_report, find_models, pick_soundscape
from embedkit.report.spectrogram import log_mel, mel_filterbank
from embedkit.train.run import run_fit

PNGS = ("training_data.png", "cv_models.png", "soundscape.png")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A complete small run with the toy backbone: demo data (5 species), two heads, a submission."""
    out = tmp_path_factory.mktemp("run")
    data = make_demo_dataset(
        out / "data", n_species=5, clips_per_species=4, n_train_soundscapes=0, n_test_soundscapes=2, workers=2
    )
    run_extract(
        ExtractConfig(
            backbone="toy",
            data=str(data),
            split="train_audio",
            out=str(out / "emb"),
            max_windows=3,
            progress=False,
        )
    )
    folders = []
    for head in ("logreg", "lgbm"):
        res = run_fit(
            FitConfig(
                head=head,
                backbone="toy",
                data=str(data),
                embeddings=str(out / "emb"),
                out=str(out / "models"),
                folds=3,
                params={"n_estimators": 20} if head == "lgbm" else {},
            )
        )
        folders.append(res.folder)
    run_infer(
        InferConfig(data=str(data), models=[str(folders[0])], out=str(out / "submission.csv"), progress=False)
    )
    return out


def _png_pixels(path: Path) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(str(path))


def test_report_writes_nontrivial_figures_and_a_self_contained_page(run, tmp_path):
    page = build_report([run / "models"], tmp_path / "rep", extra_facts={"demo score": "0.9"})
    assert page == tmp_path / "rep" / "index.html"
    names = [*PNGS, "cv_toy-logreg.png", "cv_toy-lgbm.png"]
    for name in names:
        png = tmp_path / "rep" / name
        assert png.stat().st_size > 15_000, name
        img = _png_pixels(png)
        assert img.shape[0] > 300 and img.shape[1] > 500, (name, img.shape)
        rgb = img[..., :3]
        assert rgb.std() > 0.05, f"{name} is nearly blank"
        assert len(np.unique(rgb.reshape(-1, 3).round(2), axis=0)) > 50, f"{name} has too few colours"
    text = page.read_text()
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(imgs) == len(names)
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in imgs)
    for fact in ("backbone", "toy", "demo score", "model toy-lgbm", "submission"):
        assert fact in text
    assert 'src="http' not in text and "<script" not in text  # nothing fetched from elsewhere


def test_soundscape_view_shows_the_file_with_most_true_species(run):
    sub = pd.read_csv(run / "submission.csv")
    truth = pd.read_csv(run / "data" / "test_truth.csv")
    chosen = pick_soundscape([run / "data" / "test_soundscapes"], sub, truth, None)
    t = truth.set_index("row_id")
    counts = {
        s: int((t[t.index.str.startswith(s)].max(axis=0) > 0.5).sum())
        for s in {r.rsplit("_", 1)[0] for r in t.index}
    }
    assert counts[chosen.stem] == max(counts.values())
    assert pick_soundscape([run / "data" / "test_soundscapes"], sub, truth, chosen.stem) == chosen
    probs = _window_probs(sub, chosen.stem)
    assert list(probs.index) == [5.0 * k for k in range(12)]
    assert list(probs.columns) == list(sub.columns[1:])


def test_cli_report_and_its_errors(run, tmp_path, capsys):
    out = tmp_path / "r"
    assert cli_main(["report", "--models", str(run / "models" / "toy-logreg"), "--out", str(out)]) == 0
    assert f"report: {out / 'index.html'}" in capsys.readouterr().out
    assert (out / "soundscape.png").is_file() and not (out / "cv_toy-lgbm.png").exists()
    assert cli_main(["report", "--models", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such folder" in err[0]
    with pytest.raises(Exception, match="no model folders"):
        find_models([tmp_path])


def test_report_without_submission_or_data(run, tmp_path):
    """A model fit elsewhere (data root gone, no submission): figures from the model folder alone."""
    import shutil

    models = tmp_path / "m"
    shutil.copytree(run / "models" / "toy-logreg", models / "toy-logreg")
    page = build_report([models], tmp_path / "rep", data=tmp_path / "missing")
    assert (tmp_path / "rep" / "training_data.png").stat().st_size > 10_000
    assert "No soundscape found" in page.read_text()


def test_mel_filterbank_and_log_mel_find_a_tone():
    fb = mel_filterbank(32000, 2048, 64, 50.0, 16000.0)
    assert fb.shape == (64, 1025)
    np.testing.assert_allclose(fb.sum(1), 1.0, rtol=1e-5)
    t = np.arange(32000 * 2) / 32000
    lo, hi = (log_mel(np.sin(2 * np.pi * f * t).astype(np.float32), 32000, n_mels=64) for f in (500, 4000))
    assert lo.shape == (64, 201)
    band_lo, band_hi = int(lo.mean(1).argmax()), int(hi.mean(1).argmax())
    assert band_lo < band_hi
    centre = 700 * (
        10 ** (np.linspace(*(2595 * np.log10(1 + np.array([50, 16000]) / 700)), 66)[1:-1] / 2595) - 1
    )
    assert abs(centre[band_lo] - 500) < 60 and abs(centre[band_hi] - 4000) < 250



def test_names_from_the_file_system_are_escaped(run, tmp_path):
    """A model folder named like a tag (issue 13) shows as text: no element of the page carries a handler."""
    import html
    import shutil
    import urllib.parse
    from html.parser import HTMLParser

    evil = "<img src=x onerror=alert(1)>"
    models = tmp_path / "m"
    shutil.copytree(run / "models" / "toy-logreg", models / evil)
    facts = {"<b>note": "<script>x()</script>"}
    page = build_report([models], tmp_path / "rep", data=tmp_path / "missing", extra_facts=facts)
    text = page.read_text()
    tags: list[tuple[str, dict]] = []
    parser = HTMLParser()
    parser.handle_starttag = lambda tag, attrs: tags.append((tag, dict(attrs)))
    parser.feed(text)
    assert not [t for t in tags if "onerror" in t[1] or t[0] in ("script", "b")]
    imgs = [t[1] for t in tags if t[0] == "img"]
    assert imgs and all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    assert html.escape(evil) in text and evil not in text
    assert (tmp_path / "rep" / f"cv_{evil}.png").is_file()  # the link points at the figure's real name
    assert f'href="{html.escape(urllib.parse.quote(f"cv_{evil}.png"))}"' in text


def test_report_reads_every_truth_that_score_reads(run, tmp_path, capsys):
    """``truth.csv`` (wide, with a ``source`` column) and ``calls.csv`` (long) of ``embedkit compose``."""
    data = run / "data"
    tune = tmp_path / "tune"
    rc = cli_main(["compose", "--data", str(data), "--backgrounds", str(data / "test_soundscapes"),
                   "--out", str(tune), "--n", "2"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert "source" in pd.read_csv(tune / "truth.csv").columns
    for name in ("truth.csv", "calls.csv"):
        out = tmp_path / f"r-{name}"
        rc = cli_main(["report", "--models", str(run / "models" / "toy-logreg"), "--out", str(out),
                       "--data", str(data), "--submission", str(run / "submission.csv"),
                       "--truth", str(tune / name)])  # fmt: skip
        assert rc == 0, capsys.readouterr().err
        assert (out / "index.html").is_file()
    assert cli_main(["report", "--models", str(run / "models" / "toy-logreg"), "--out", str(tmp_path / "x"),
                     "--truth", str(tmp_path / "nosuch.csv")]) == 2  # fmt: skip
    assert "truth file not found" in capsys.readouterr().err

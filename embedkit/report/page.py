"""``embedkit report``: one self-contained HTML page (PNG figures inlined) about fitted models and a run.

Reads only what a run leaves behind: model folders (``model.json``, ``cv_per_class.csv``), the data root
recorded in ``model.json`` (``taxonomy.csv`` for taxon classes and names, ``test_truth.csv`` where it exists,
the soundscape audio) and a ``submission.csv``. Writes ``OUT/index.html`` plus each figure as a PNG:
``training_data.png``, ``cv_<model>.png``, ``cv_models.png``, ``soundscape.png``.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import re
import time
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from embedkit.audio import list_audio, load_mono
from embedkit.errors import UsageError
from embedkit.progress import bar
from embedkit.report import plots, spectrogram

VIEW_SR = 32000  # BirdCLEF's native rate; the spectrogram shows 0-16 kHz


def find_models(paths: list[str | Path]) -> list[Path]:
    """Model folders among ``paths``: each a model folder (has ``model.json``) or a folder of them.

    Hidden folders (a model's kept versions ``.NAME.prev-*``, temp folders) are not models of their own.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / "model.json").is_file():
            found.append(p)
        elif p.is_dir():
            found += sorted(q.parent for q in p.glob("*/model.json") if not q.parent.name.startswith("."))
        else:
            raise UsageError(f"--models {p}: no such folder; pass a model folder or fit.py's models root")
    if not found:
        raise UsageError(f"no model folders (with model.json) in {[str(p) for p in paths]}; run fit.py first")
    return found


def _meta(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "model.json").read_text())


def class_table(folder: Path, meta: dict, taxonomy: pd.DataFrame | None) -> pd.DataFrame:
    """Per-class table of a model: ``label, n_recordings, n_windows, roc_auc, ap, taxon, name``."""
    path = folder / "cv_per_class.csv"
    if path.is_file():
        t = pd.read_csv(path, dtype={"label": str})
    else:
        t = pd.DataFrame({"label": meta["labels"], "n_recordings": 0, "n_windows": 0})
        t["roc_auc"] = t["ap"] = np.nan
    tax = {} if taxonomy is None else _column(taxonomy, "class_name")
    t["taxon"] = [str(tax.get(x, "unknown")) for x in t["label"]]
    return t


def _taxonomy(data: Path | None) -> pd.DataFrame | None:
    if data is None or not (data / "taxonomy.csv").is_file():
        return None
    return pd.read_csv(data / "taxonomy.csv", dtype={"primary_label": str})


def _column(taxonomy: pd.DataFrame, col: str) -> dict[str, str]:
    """``primary_label`` → ``col`` of taxonomy.csv (empty when the column is missing)."""
    if col not in taxonomy.columns:
        return {}
    return dict(zip(taxonomy["primary_label"], taxonomy[col].astype(str), strict=True))


def _window_probs(sub: pd.DataFrame, stem: str) -> pd.DataFrame:
    """Rows ``<stem>_<end>`` of a submission → probabilities indexed by window start (end - 5 s)."""
    pat = re.compile(re.escape(stem) + r"_(\d+(?:\.\d+)?)$")
    ids = sub["row_id"].astype(str)
    ends = ids.str.extract(pat, expand=False)
    rows = sub[ends.notna()].copy()
    rows.index = ends[ends.notna()].astype(float).to_numpy() - 5.0
    return rows.drop(columns="row_id").sort_index()


def pick_soundscape(
    folders: list[Path], sub: pd.DataFrame | None, truth: pd.DataFrame | None, choice: str | None
) -> Path | None:
    """The soundscape to show: ``choice`` (a path or a stem), else the predicted file with most truth species.

    Without truth, the first file with submission rows; without a submission, the first audio file.
    """
    if choice and Path(choice).is_file():
        return Path(choice)
    files = [f for d in folders if d.is_dir() for f in list_audio(d)]
    by_stem = {f.stem: f for f in files}
    if choice:
        if choice not in by_stem:
            raise UsageError(f"--soundscape {choice}: not a file, nor a stem of a file in {folders[0]}")
        return by_stem[choice]
    if sub is not None:
        stems = sub["row_id"].astype(str).str.rsplit("_", n=1).str[0].unique()
        stems = [s for s in stems if s in by_stem]
        if stems and truth is not None:
            ts = truth.set_index("row_id")
            t_stem = ts.index.str.rsplit("_", n=1).str[0]
            count = {s: int((ts[t_stem == s].max(axis=0) > 0.5).sum()) for s in stems}
            return by_stem[max(stems, key=lambda s: (count[s], -stems.index(s)))]
        if stems:
            return by_stem[stems[0]]
    return files[0] if files else None


def _facts(models: list[Path], metas: list[dict], data: Path | None, extra: dict[str, Any]) -> dict:
    m = metas[0]
    prov = m.get("provenance", {})
    cfg = m.get("config", {})
    chunks = ""
    if "chunk_offsets" in prov:
        chunks = f"; chunks at {prov['chunk_offsets']} s, {prov.get('pool')}-pooled"
    facts: dict[str, Any] = {
        "backbone": prov.get("backbone"),
        "weights": prov.get("weights"),
        "sample rate / dim": f"{prov.get('sample_rate')} Hz / {prov.get('dim')}-D",
        "windows": f"{prov.get('window_s')} s, hop {prov.get('hop_s')} s" + chunks,
        "embeddings": f"{prov.get('source')} ({prov.get('dtype')}, {prov.get('precision')}), "
        f"made {prov.get('created')}",
        "data root": str(data) if data else cfg.get("data"),
        "classes": len(m.get("labels", [])),
        "training windows / recordings": f"{m.get('n_windows')} / {m.get('report', {}).get('files')}",
        "cross-validation": f"{cfg.get('folds')} folds by {cfg.get('group_by')}, seed {cfg.get('seed')}",
        "embedkit": m.get("embedkit_version"),
    }
    for folder, meta in zip(models, metas, strict=True):
        cv = meta.get("cv") or {}
        score = f"CV ROC-AUC {cv['roc_auc']:.4f}; " if "roc_auc" in cv else ""
        params = " ".join(f"{k}={v}" for k, v in sorted((meta.get("params") or {}).items()) if v is not None)
        fit_s = meta.get("fit_seconds", float("nan"))
        facts[f"model {folder.name}"] = (
            f"{meta.get('head')} ({params}); {score}fit in {fit_s:.1f} s, saved {meta.get('created')}"
        )
    facts.update(extra)
    return facts


def _img(path: Path, caption: str) -> str:
    """A figure; ``caption`` is plain text (it may hold a folder name) and is escaped, like every name."""
    b64 = base64.b64encode(path.read_bytes()).decode()
    esc, href = html.escape, html.escape(urllib.parse.quote(path.name))
    return (f'<figure><img alt="{esc(path.name)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{esc(caption)} <a href=\"{href}\">{esc(path.name)}</a>"
            "</figcaption></figure>")


CSS = ("body{font-family:system-ui,sans-serif;max-width:1500px;margin:1.5em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;"
       "text-align:left;vertical-align:top}th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}"
       "figcaption{color:#555;font-size:13px;margin:.3em 0 1.5em}h2{margin-top:1.6em}")


def build_report(
    models: list[str | Path],
    out: str | Path = "report",
    data: str | Path | None = None,
    submission: str | Path | None = None,
    soundscape: str | None = None,
    truth: str | Path | None = None,
    extra_facts: dict[str, Any] | None = None,
) -> Path:
    """Write the report (see the module docstring) and return the path of ``index.html``.

    Args:
        models: model folders or models roots.
        out: output folder (created).
        data: BirdCLEF data root (default: the one recorded in the first model's config).
        submission: submission CSV for the soundscape view (default: ``submission.csv`` beside the models
            root, then in the working folder).
        soundscape: audio file or stem to show (default: the predicted test file with most true species).
        truth: per-window truth CSV (default: ``DATA/test_truth.csv`` when present).
        extra_facts: more rows for the run-facts table (e.g. stage timings, a demo score).
    """
    t0 = time.monotonic()
    folders = find_models(list(models))
    metas = [_meta(f) for f in folders]
    data_p = Path(data) if data else Path(metas[0].get("config", {}).get("data", "."))
    data_p = data_p if data_p.is_dir() else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    taxonomy = _taxonomy(data_p)
    names = {} if taxonomy is None else _column(taxonomy, "common_name")
    steps = bar(3, "report", "figure")  # a rate line off a terminal when the figures take long
    sections = [_training_section(folders[0], metas[0], taxonomy, out)]
    steps.update()
    sections.append(_cv_section(folders, metas, taxonomy, out))
    steps.update()
    sub_p = _find_submission(submission, folders)
    sub = pd.read_csv(sub_p) if sub_p else None
    truth_p = Path(truth) if truth else (data_p / "test_truth.csv" if data_p else None)
    tru = _read_truth(truth_p if truth else (truth_p if truth_p and truth_p.is_file() else None), sub, metas)
    dirs = [data_p / "test_soundscapes", data_p / "train_soundscapes"] if data_p else []
    audio = pick_soundscape(dirs, sub, tru, soundscape)
    sections.append(_soundscape_section(audio, sub, sub_p, tru, names, out))
    steps.update()
    steps.close()
    facts = _facts(folders, metas, data_p, dict(extra_facts or {}))
    if sub is not None:
        facts["submission"] = f"{sub_p}: {len(sub)} rows x {sub.shape[1] - 1} classes"
    facts["report"] = f"written {time.strftime('%Y-%m-%d %H:%M:%S')} in {time.monotonic() - t0:.1f} s"
    sections.insert(0, ("Run facts", _facts_table(facts)))
    return _write_page(out / "index.html", [f.name for f in folders], sections)


def _read_truth(path: Path | None, sub: pd.DataFrame | None, metas: list[dict]) -> pd.DataFrame | None:
    """Any truth ``embedkit score`` reads (wide, or long like ``calls.csv``) → ``row_id`` + 0/1 label columns.

    Columns that are not labels (``source`` of ``embedkit compose``'s ``truth.csv``) are dropped.
    """
    if path is None:
        return None
    from embedkit.birdclef.truth import load_truth

    labels = [str(c) for c in sub.columns[1:]] if sub is not None else list(metas[0].get("labels") or [])
    wide = load_truth(path, labels)
    cols = [c for c in wide.columns if c in set(labels)] if labels else list(wide.columns)
    cols = [c for c in cols if pd.api.types.is_numeric_dtype(wide[c])]
    return wide[cols].reset_index()


def _training_section(folder: Path, meta: dict, taxonomy: pd.DataFrame | None, out: Path) -> tuple[str, str]:
    """("Training data", figure HTML): recordings and windows per class of the first model."""
    first = class_table(folder, meta, taxonomy)
    png = plots.plot_training_data(first, out / "training_data.png",
                                   f"Training data of {folder.name} (primary or secondary label)")
    cap = ("Recordings and 5 s windows in which each class is labelled (primary or secondary), log scale; "
           "the long tail is on the right.")
    return "Training data", _img(png, cap)


def _cv_section(folders: list[Path], metas: list[dict], taxonomy: pd.DataFrame | None,
                out: Path) -> tuple[str, str]:
    """("Cross-validation", HTML): the models' macro scores, then each model's per-class scores."""
    figs = []
    for folder, meta in zip(folders, metas, strict=True):
        cv = meta.get("cv") or {}
        if not cv:
            continue
        t = class_table(folder, meta, taxonomy)
        title = (f"{folder.name}: out-of-fold ROC-AUC {cv.get('roc_auc', np.nan):.4f}, "
                 f"macro AP {cv.get('macro_ap', np.nan):.4f}")
        png = plots.plot_cv_per_class(t, out / f"cv_{folder.name}.png", title)
        figs.append(_img(png, f"{folder.name}: per-class scores of out-of-fold predictions, with the class's "
                              "training recordings underneath (few recordings usually means lower scores)."))
    scores = {f.name: m["cv"] for f, m in zip(folders, metas, strict=True) if m.get("cv")}
    if scores:
        png = plots.plot_head_scores(scores, out / "cv_models.png")
        figs.insert(0, _img(png, "Macro scores of each model's out-of-fold predictions."))
    return "Cross-validation", "".join(figs) or "<p>No cross-validation (fit with --folds 0).</p>"


def _soundscape_section(audio: Path | None, sub: pd.DataFrame | None, sub_p: Path | None,
                        tru: pd.DataFrame | None, names: dict[str, str], out: Path) -> tuple[str, str]:
    """("Soundscape", HTML): the spectrogram of ``audio`` with its predicted (and true) species per window."""
    if audio is None:
        return "Soundscape", "<p>No soundscape found (pass --soundscape FILE).</p>"
    probs = _window_probs(sub, audio.stem) if sub is not None else None
    probs = probs if probs is not None and len(probs) else None
    tw = None
    if tru is not None and probs is not None:
        tw = _window_probs(tru, audio.stem).reindex(probs.index)
        tw = tw if tw.notna().all().all() else None
    note = f"; probabilities from {sub_p}" if probs is not None else "; no submission rows for this file"
    png = spectrogram.plot_soundscape(load_mono(audio, VIEW_SR), VIEW_SR, probs, tw, names,
                                      out / "soundscape.png", f"{audio.name}{note}")
    cap = ("Log-mel spectrogram (0-16 kHz) with, underneath, the probability of the most likely species "
           "in each 5 s window")
    cap += ", outlined where the species is truly present." if tw is not None else "."
    return "Soundscape", _img(png, cap)


def _facts_table(facts: dict[str, Any]) -> str:
    """The run-facts table; every key and value is escaped."""
    esc = html.escape
    rows = "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in facts.items())
    return f"<table>{rows}</table>"


def _write_page(page: Path, model_names: list[str], sections: list[tuple[str, str]]) -> Path:
    """Write ``index.html``: escaped model names and section titles, then each section's (safe) HTML."""
    esc = html.escape
    body = "".join(f"<h2>{esc(h)}</h2>{s}" for h, s in sections)
    head = f"<title>embedkit report</title><style>{CSS}</style>"
    h1 = f"embedkit report: {esc(', '.join(model_names))}"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'>{head}</head><body><h1>{h1}</h1>{body}"
                    "</body></html>", encoding="utf-8")
    return page


def _find_submission(given: str | Path | None, folders: list[Path]) -> Path | None:
    if given:
        if not Path(given).is_file():
            raise UsageError(f"--submission {given}: no such file")
        return Path(given)
    for cand in (folders[0].parent.parent / "submission.csv", Path("submission.csv")):
        if cand.is_file():
            return cand
    return None


def cmd_report(args: argparse.Namespace) -> int:
    """CLI body of ``embedkit report``: prints the path of the written page."""
    page = build_report(args.models, args.out, args.data, args.submission, args.soundscape, args.truth)
    print(f"report: {page}")
    return 0

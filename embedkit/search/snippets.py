"""Hits as sound and pictures: a WAV snippet per hit, and an HTML page with a spectrogram and a player each.

Snippets are cut from the original recordings at their own sample rate (mono), named
``<rank>_<file stem>_<start>-<end>.wav``. A hit whose recording cannot be read is skipped and its reason
printed and shown on the page; the spectrograms use :func:`embedkit.report.spectrogram.log_mel`, as
``embedkit report`` does.
"""

from __future__ import annotations

import html
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.errors import UsageError
from embedkit.progress import track


def read_segment(path: str | os.PathLike, start_s: float, end_s: float) -> tuple[np.ndarray, int]:
    """Mono float32 samples [n] of ``path`` between two times (seconds), at the file's rate; (x, rate).

    Raises:
        AudioError: the file is missing or cannot be decoded.
    """
    from embedkit.audio.decode import _open

    with _open(path) as f:
        sr = f.samplerate
        a = max(int(round(start_s * sr)), 0)
        f.seek(min(a, f.frames))
        x = f.read(max(int(round(end_s * sr)) - a, 0), dtype="float32", always_2d=True)
    return np.nan_to_num(x.mean(axis=1)), sr


def _write_wav(path: Path, x: np.ndarray, sr: int) -> None:
    from embedkit.audio.write import write_audio

    write_audio(path, np.clip(x, -1, 1), sr, "WAV", "PCM_16")  # block-wise, through a temp file


def snippet_name(row) -> str:
    """File name of a hit's snippet: ``<rank>_<stem>_<start>-<end>.wav``."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(str(row["file"])).stem)
    return f"{int(row['rank']):03d}_{stem}_{row['start_s']:g}-{row['end_s']:g}.wav"


def write_snippets(hits: pd.DataFrame, outdir: str | os.PathLike) -> pd.Series:
    """Write each hit's window as a WAV file into ``outdir``.

    Args:
        hits: hits table (``rank``, ``file``, ``start_s``, ``end_s``, ``audio``).
        outdir: folder (created).

    Returns:
        Per hit the snippet's file name in ``outdir``, or ``"skipped: <reason>"``.
    """
    from embedkit.audio import AudioError

    out = Path(outdir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create --audio folder {out}: {e.strerror or e}") from None
    names = []
    for _, row in track(hits.iterrows(), "snippets", "hit", total=len(hits)):
        try:
            x, sr = read_segment(row["audio"], float(row["start_s"]), float(row["end_s"]))
            name = snippet_name(row)
            _write_wav(out / name, x, sr)
        except AudioError as e:
            name = f"skipped: {e}"
            print(f"[search] hit {row['rank']} ({row['audio']}): {e}; no snippet", file=sys.stderr)
        names.append(name)
    return pd.Series(names, index=hits.index, name="snippet")


def _thumbnail(wav: Path, png: Path) -> None:
    """A small log-mel spectrogram of a snippet."""
    import soundfile as sf

    from embedkit.report.plots import _plt, _save
    from embedkit.report.spectrogram import log_mel

    x, sr = sf.read(str(wav), dtype="float32")
    db = log_mel(x, sr, hop=max(sr // 100, 1), n_mels=64) if len(x) else np.zeros((64, 1), np.float32)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.2, 1.1))
    vmax = float(db.max())
    ax.imshow(
        db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=vmax - 80,
        vmax=vmax,
        extent=(0, len(x) / sr, 0, db.shape[0]),
        interpolation="nearest",
    )
    ax.set_yticks([])
    ax.tick_params(labelsize=6)
    _save(fig, png)


CSS = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;"
    "font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:middle}"
    "th{background:#f3f3f3}img{height:90px}"
)


def write_html(
    hits: pd.DataFrame,
    snippets: pd.Series,
    audio_dir: str | os.PathLike,
    path: str | os.PathLike,
    title: str = "search hits",
) -> Path:
    """An HTML page: per hit its rank, score, window, a spectrogram thumbnail and an audio player.

    Args:
        hits: hits table.
        snippets: :func:`write_snippets`' result for ``hits``.
        audio_dir: folder of the snippets (thumbnails are written beside them).
        path: the page to write (links are relative to its folder).
        title: page heading.
    """
    page, adir = Path(path), Path(audio_dir)
    rel = Path(os.path.relpath(adir.resolve(), page.resolve().parent))
    e = html.escape
    rows = []
    for (_, h), snip in zip(hits.iterrows(), snippets, strict=True):
        cells = [
            str(int(h["rank"])),
            f"{float(h['score']):.4f}",
            e(str(h["file"])),
            f"{float(h['start_s']):g}–{float(h['end_s']):g} s",
            e(str(h["row_id"])),
        ]
        if str(snip).startswith("skipped:"):
            media = f"<td colspan=2>{e(str(snip))}</td>"
        else:
            png = Path(snip).with_suffix(".png").name
            _thumbnail(adir / snip, adir / png)
            media = (
                f'<td><img alt="spectrogram" src="{e((rel / png).as_posix())}"></td>'
                f'<td><audio controls preload="none" src="{e((rel / snip).as_posix())}"></audio></td>'
            )
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + media + "</tr>")
    head = "".join(
        f"<th>{c}</th>" for c in ("rank", "score", "file", "window", "row id", "spectrogram", "listen")
    )
    text = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{CSS}</style>"
        f"</head><body><h1>{e(title)}</h1><table><tr>{head}</tr>{''.join(rows)}</table></body></html>\n"
    )
    from embedkit.files import replace_atomically

    replace_atomically(page, lambda tmp: tmp.write_text(text, encoding="utf-8"), sync=False)
    return page

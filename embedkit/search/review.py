"""``hits.html`` for reviewing: the query, each hit with a spectrogram, a player and y / n buttons.

One page, no server and no network: styles and scripts are inline, the snippets and spectrograms sit in the
audio folder beside it and are linked by relative paths (move the page and its folder together). The query is
shown first (each query clip as a snippet, or the stored window, or the model and species of
``--rank-by-head``). Answers are kept in the browser (``localStorage``) while the page is open again and
again; **Save labels CSV** downloads ``<page stem>_labelled.csv``: the hits table with its ``label`` column
filled (``y`` / ``n``, blank where unanswered), which ``embedkit label --hits`` and ``fit.py --extra-labels``
read as they read a table labelled in the terminal.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import pandas as pd

from embedkit.search.snippets import CSS, _thumbnail, _write_wav, read_segment

#: the pure part of the page's script (tested with node): the labelled table as CSV text
LABELS_JS = r"""
function csvCell(v) {
  const s = v === null || v === undefined ? "" : String(v);
  return /[",\n\r]/.test(s) || s.trim() !== s ? '"' + s.replace(/"/g, '""') + '"' : s;
}
function labelledCsv(data, answers) {
  const li = data.columns.indexOf("label");
  const lines = [data.columns.map(csvCell).join(",")];
  data.rows.forEach(function (row, i) {
    const r = row.slice();
    r[li] = answers[i] || "";
    lines.push(r.map(csvCell).join(","));
  });
  return lines.join("\n") + "\n";
}
"""

_WIRING_JS = r"""
const data = JSON.parse(document.getElementById("hits-data").textContent);
const key = "embedkit-labels:" + location.pathname;
let answers = {};
try { answers = JSON.parse(localStorage.getItem(key) || "{}"); } catch (e) { answers = {}; }
function show() {
  document.querySelectorAll("button[data-i]").forEach(function (b) {
    b.classList.toggle("on", answers[b.dataset.i] === b.dataset.v);
  });
  document.getElementById("count").textContent = Object.keys(answers).length;
}
document.querySelectorAll("button[data-i]").forEach(function (b) {
  b.addEventListener("click", function () {
    const i = b.dataset.i;
    if (answers[i] === b.dataset.v) { delete answers[i]; } else { answers[i] = b.dataset.v; }
    try { localStorage.setItem(key, JSON.stringify(answers)); } catch (e) {}
    show();
  });
});
document.getElementById("save").addEventListener("click", function () {
  const blob = new Blob([labelledCsv(data, answers)], {type: "text/csv"});
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = data.save_as;
  document.body.appendChild(a); a.click(); a.remove();
});
show();
"""

_EXTRA_CSS = (
    "button{font-size:14px;padding:2px 10px;margin:0 2px;border:1px solid #888;border-radius:4px;"
    "background:#fff;cursor:pointer}button.on[data-v=y]{background:#2e7d32;color:#fff}"
    "button.on[data-v=n]{background:#c62828;color:#fff}section{margin:1em 0;padding:.5em 1em;"
    "background:#f7f7fb;border-radius:6px}#save{font-weight:bold}"
)


def query_snippets(queries: list[str], audio_dir: Path, max_s: float = 30.0) -> list[tuple[str, str]]:
    """Each query clip as a WAV snippet (and spectrogram) in ``audio_dir``: ``[(spec, name or reason)]``."""
    from embedkit.audio import AudioError, duration_s
    from embedkit.search.query import parse_clip

    out = []
    for i, spec in enumerate(queries, 1):
        path, start, end = parse_clip(spec)
        try:
            start = start or 0.0
            end = end if end is not None else min(duration_s(path), start + max_s)
            x, sr = read_segment(path, start, end)
            name = f"query_{i:02d}.wav"
            _write_wav(audio_dir / name, x, sr)
            _thumbnail(audio_dir / name, audio_dir / f"query_{i:02d}.png")
            out.append((spec, name))
        except AudioError as e:
            out.append((spec, f"skipped: {e}"))
    return out


def _media(rel: Path, name: str) -> tuple[str, str]:
    """(spectrogram ``<img>``, ``<audio>`` player) of a snippet, by paths relative to the page."""
    e = html.escape
    png = Path(name).with_suffix(".png").name
    return (
        f'<img alt="spectrogram" src="{e((rel / png).as_posix())}">',
        f'<audio controls preload="none" src="{e((rel / name).as_posix())}"></audio>',
    )


def write_review_html(hits: pd.DataFrame, snippets: pd.Series, audio_dir: str | os.PathLike,
                      path: str | os.PathLike, title: str, query_html: str) -> Path:  # fmt: skip
    """Write the review page (see the module docstring).

    Args:
        hits: hits table (:data:`~embedkit.search.query.HIT_COLUMNS`, plus any other columns).
        snippets: per hit its snippet's file name in ``audio_dir`` or ``"skipped: <reason>"``.
        audio_dir: folder of the snippets (spectrograms are written beside them).
        path: the page.
        title: heading.
        query_html: the query section's inner HTML (:func:`query_section`).
    """
    from embedkit.files import replace_atomically

    page, adir = Path(path), Path(audio_dir)
    rel = Path(os.path.relpath(adir.resolve(), page.resolve().parent))
    e = html.escape
    rows = []
    for i, ((_, h), snip) in enumerate(zip(hits.iterrows(), snippets, strict=True)):
        cells = [str(int(h["rank"])), f"{float(h['score']):.4f}", e(str(h["file"])),
                 f"{float(h['start_s']):g}–{float(h['end_s']):g} s"]  # fmt: skip
        if str(snip).startswith("skipped:"):
            media = f"<td colspan=2>{e(str(snip))}</td>"
        else:
            _thumbnail(adir / snip, adir / Path(snip).with_suffix(".png").name)
            img, audio = _media(rel, snip)
            media = f"<td>{img}</td><td>{audio}</td>"
        buttons = "".join(f'<button data-i="{i}" data-v="{v}">{v}</button>' for v in ("y", "n"))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + media + f"<td>{buttons}</td></tr>")
    head = "".join(
        f"<th>{c}</th>" for c in ("rank", "score", "file", "window", "spectrogram", "listen", "label")
    )
    table = hits.drop(columns=["snippet"], errors="ignore")
    data = {"columns": list(table.columns), "rows": json.loads(table.to_json(orient="values")),
            "save_as": f"{page.stem}_labelled.csv"}  # fmt: skip
    blob = json.dumps(data).replace("</", "<\\/")
    species = ", ".join(sorted({str(s) for s in hits.get("species", []) if str(s)})) or "the species"
    text = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
        f"<style>{CSS}{_EXTRA_CSS}</style></head><body><h1>{e(title)}</h1>"
        f"<section><h2>Query</h2>{query_html}</section>"
        f"<section>Is {e(species)} in the window? Answer <b>y</b> / <b>n</b> (again to undo; kept in this "
        f"browser), then <button id='save'>Save labels CSV</button> (<span id='count'>0</span> answered) "
        f"→ <code>{e(data['save_as'])}</code> for <code>python fit.py --extra-labels "
        f"{e(data['save_as'])}</code> or <code>embedkit label --hits {e(data['save_as'])}</code>.</section>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table>"
        f'<script type="application/json" id="hits-data">{blob}</script>'
        f"<script>{LABELS_JS}{_WIRING_JS}</script></body></html>\n"
    )
    replace_atomically(page, lambda tmp: tmp.write_text(text, encoding="utf-8"), sync=False)
    return page


def query_section(queries: list[str], audio_dir: Path, page: Path, row_id: str | None = None,
                  row_snippet: str | None = None, note: str = "") -> str:  # fmt: skip
    """The query's HTML: each clip (a snippet and spectrogram), the stored window, or a note."""
    e = html.escape
    rel = Path(os.path.relpath(Path(audio_dir).resolve(), Path(page).resolve().parent))
    parts = []
    for spec, name in query_snippets(queries, Path(audio_dir)):
        media = e(name) if name.startswith("skipped:") else "".join(_media(rel, name))
        parts.append(f"<div><code>{e(spec)}</code><br>{media}</div>")
    if row_id is not None:
        ok = row_snippet and not row_snippet.startswith("skipped:")
        media = "".join(_media(rel, row_snippet)) if ok else ""
        parts.append(f"<div>stored window <code>{e(row_id)}</code><br>{media}</div>")
    if note:
        parts.append(f"<p>{e(note)}</p>")
    return "".join(parts)


def review_page(cfg, hits: pd.DataFrame, snippets: pd.Series, audio_dir: Path, page: Path) -> Path:
    """The page of one ``embedkit search`` run (:class:`~embedkit.search.config.SearchConfig`)."""
    from embedkit.search.active import query_list

    queries = query_list(cfg.query)
    row_snip = None
    if cfg.row_id is not None:  # the stored window itself, cut like a hit
        from embedkit.search.index import load_index
        from embedkit.search.query import hits_table
        from embedkit.search.snippets import write_snippets

        index = load_index(cfg.index)
        at = index.rows.index[index.rows["row_id"] == cfg.row_id]
        if len(at):
            one = hits_table(index, at[:1].to_numpy(), pd.Series([1.0]).to_numpy(), None, cfg.data)
            one["rank"] = 0
            row_snip = str(write_snippets(one, audio_dir).iloc[0])
    note = ""
    if cfg.rank_by_head:
        how = f"nearest to {cfg.threshold:g} first" if cfg.uncertain else "highest first"
        note = f"windows ranked by {cfg.rank_by_head}'s score for {cfg.species} ({how})"
    elif len(queries) > 1:
        note = f"{len(queries)} queries, combined: {cfg.combine}"
    if cfg.exclude_source:
        note += ("; " if note else "") + "the query's own recording(s) left out"
    what = ", ".join(queries) or (
        f"row {cfg.row_id}" if cfg.row_id else f"{cfg.species} by {cfg.rank_by_head}"
    )
    section = query_section(queries, audio_dir, page, cfg.row_id, row_snip, note)
    return write_review_html(hits, snippets, audio_dir, page, f"hits for {what}", section)


__all__ = ["LABELS_JS", "query_section", "query_snippets", "review_page", "write_review_html"]

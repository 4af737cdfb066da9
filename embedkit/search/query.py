"""Queries: a clip embedded by the index's own backbone, or a stored window, → the k most similar windows.

A query clip ``CLIP.wav[:START-END]`` (seconds) is decoded at the backbone's rate. A clip shorter than the
index's window (5 s) is widened to one window centred on it, taking the surrounding audio of the file (zeros
past its ends), so it is embedded the way the stored windows were; a longer one is cut into windows (the last
zero-padded past the clip's end) whose unit-length embeddings are averaged. The backbone is rebuilt from the
index's provenance and must match it.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.errors import UsageError
from embedkit.progress import track
from embedkit.search import ann
from embedkit.search.index import SearchIndex, load_index, shard_vectors, unindexed_shards

HIT_COLUMNS = [
    "rank",
    "score",
    "file",
    "window",
    "start_s",
    "end_s",
    "row_id",
    "audio",
    "dataset",
    "species",
    "label",
]
_SPAN = re.compile(r"^(.*):(\d+(?:\.\d*)?)-(\d+(?:\.\d*)?)$")


def parse_clip(spec: str) -> tuple[Path, float | None, float | None]:
    """``"a.wav:1.5-4"`` → (path, 1.5, 4.0); ``"a.wav"`` → (path, None, None)."""
    m = _SPAN.match(spec)
    if m is None:
        return Path(spec), None, None
    start, end = float(m.group(2)), float(m.group(3))
    if not end > start:
        raise UsageError(f"--query {spec}: the end ({end:g} s) must come after the start ({start:g} s)")
    return Path(m.group(1)), start, end


def _backbone(prov: dict, weights: str | None, threads: int | None):
    """The backbone that made the index's embeddings, built from its provenance and checked against it."""
    from embedkit.backbones.build import build_backbone
    from embedkit.config import InferConfig
    from embedkit.store import check_provenance

    cfg = InferConfig(backbone_weights={prov["backbone"]: weights} if weights else {}, threads=threads)
    bb = build_backbone(prov, **cfg.backbone_run(prov["backbone"]))
    ident = bb.identity()
    check_provenance(
        {k: prov.get(k) for k in ident},
        ident,
        what="the query backbone's embeddings",
        where="this index (pass --weights of the model the index was built with)",
    )
    return bb


def clip_windows(spec: str, sample_rate: int, window_s: float) -> np.ndarray:
    """The windows a query clip is embedded as: float32 [W, window samples] (see the module docstring)."""
    from embedkit.audio import AudioError, load_mono

    path, start, end = parse_clip(spec)
    try:
        x = load_mono(path, sample_rate)
    except AudioError as e:
        raise UsageError(f"--query {path}: {e}") from None
    dur = len(x) / sample_rate
    start, end = (0.0, dur) if start is None else (start, min(end, dur))
    if start >= dur:
        raise UsageError(f"--query {spec}: starts at {start:g} s but the file is {dur:.2f} s long")
    win = int(round(window_s * sample_rate))
    a, b = int(round(start * sample_rate)), int(round(end * sample_rate))
    if b - a < win:  # widen to one window centred on the clip
        a = (a + b) // 2 - win // 2
        b = a + win
    n = max(1, int(np.ceil((b - a) / win - 1e-9)))
    out = np.zeros((n, win), np.float32)
    for i in range(n):
        lo, hi = a + i * win, a + (i + 1) * win
        seg = x[max(lo, 0) : max(min(hi, b, len(x)), 0)]  # nothing past the clip's end
        out[i, max(-lo, 0) : max(-lo, 0) + len(seg)] = seg
    return out


def query_backbone(index: SearchIndex, weights: str | None = None, threads: int | None = None):
    """The index's own backbone, to embed several clips with one model load (``search(..., backbone=)``)."""
    return _backbone(index.provenance, weights, threads)


def embed_clip(
    index: SearchIndex, spec: str, weights: str | None = None, threads: int | None = None, backbone=None
) -> np.ndarray:
    """Embed a query clip with the index's backbone: float32 [D] (mean of unit-length window embeddings).

    ``backbone`` (from :func:`query_backbone`) is used and left open; without it one is built and closed.
    """
    prov = index.provenance
    bb = backbone if backbone is not None else _backbone(prov, weights, threads)
    try:
        windows = clip_windows(spec, int(bb.sample_rate), float(prov.get("window_s", 5.0)))
        E = np.asarray(bb.embed(windows), np.float32)
    finally:
        if backbone is None:
            bb.close()
    if not np.isfinite(E).all():
        raise UsageError(f"--query {spec}: the backbone returned NaN/inf for this clip")
    return ann.normalise(E).mean(0)


def row_vector(index: SearchIndex, row_id: str) -> np.ndarray:
    """The stored vector float32 [D] of a window, by ``row_id`` (``<stem>_<end s>``) or ``FILE:WINDOW``."""
    rows = index.rows
    hit = rows.index[rows["row_id"] == row_id]
    if not len(hit) and ":" in row_id:
        f, _, w = row_id.rpartition(":")
        if w.isdigit():
            hit = rows.index[(rows["file"] == f) & (rows["window"] == int(w))]
    if len(hit) != 1:
        what = "no window" if not len(hit) else f"{len(hit)} windows (give FILE:WINDOW instead)"
        raise UsageError(f"--row-id {row_id}: {what} with that id in the index")
    r = int(hit[0])
    ids, X = shard_vectors(index, rows.at[r, "shard"])
    return X[int(np.flatnonzero(ids == r)[0])]


def exact_search(index: SearchIndex, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force cosine top-``k`` over every indexed shard, one shard in memory at a time.

    Returns:
        ``(rows int64 [Q, k], similarity float32 [Q, k])``, best first.
    """
    best = (np.zeros((len(q), 0), np.int64), np.zeros((len(q), 0), np.float32))
    for shard in track(list(dict.fromkeys(index.rows["shard"])), f"search ({len(q)} queries)", "shard"):
        ids, X = shard_vectors(index, shard)
        rows, sims = ann.exact_topk(X, q, k)
        best = ann.merge_topk(best, (ids[rows], sims), k)
    return best


def search(
    index: SearchIndex | str | os.PathLike,
    query: str | np.ndarray | None = None,
    row_id: str | None = None,
    k: int = 50,
    exact: bool = False,
    species: str | None = None,
    weights: str | None = None,
    threads: int | None = None,
    audio_root: str | os.PathLike | None = None,
    backbone=None,
    combine: str = "mean",
    exclude_source: bool = False,
    rank_by_head: str | None = None,
    uncertain: bool = False,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """The ``k`` windows most similar to a query (cosine similarity of embeddings).

    Args:
        index: a :class:`SearchIndex` or its folder (or the dataset folder holding ``index/``).
        query: a clip ``PATH[:START-END]`` (seconds), several clips, or a vector float32 [D].
        row_id: instead of ``query``: a stored window (``row_id`` or ``FILE:WINDOW``).
        k: number of hits.
        exact: brute-force search over the shards' own vectors instead of the ANN graph.
        species: label code written into the ``species`` column (what the hits are being checked for).
        weights: backbone weights file/folder, for backbones whose weights are not bundled.
        threads: CPU threads (backbone and graph search).
        audio_root: folder the windows' files are relative to (default: the extraction's source folder).
        backbone: an open backbone to reuse for clip queries (:func:`query_backbone`); default: build one.
        combine: several clips: ``mean`` (one query, their mean) or ``any`` (nearest to any of them).
        exclude_source: skip the windows of the query's own recording(s) (:mod:`embedkit.search.active`).
        rank_by_head: instead of a query, a model folder: windows ranked by its score for ``species``.
        uncertain: with ``rank_by_head``, rank by ``|score - threshold|`` (least sure first).
        threshold: the decision threshold of ``uncertain``.

    Returns:
        Hits table [k] with :data:`HIT_COLUMNS`, best first; ``label`` is empty (for ``embedkit label``).

    Raises:
        UsageError: neither or both of ``query`` and ``row_id``, a bad clip or row id, ``k < 1``.
    """
    from embedkit.search.active import head_hits, multi_search, query_list, source_files

    vector = query is not None and not isinstance(query, str | os.PathLike | list | tuple)
    specs = [] if vector else query_list(query)
    if sum([bool(specs) or vector, row_id is not None, rank_by_head is not None]) != 1:
        raise UsageError("give exactly one of --query CLIP[:START-END], --row-id ROW or --rank-by-head MODEL")
    if int(k) < 1:
        raise UsageError(f"--k must be at least 1, got {k}")
    index = index if isinstance(index, SearchIndex) else load_index(index)
    missing = unindexed_shards(index)
    if missing:
        print(
            f"[search] {len(missing)} shards are not indexed yet; run embedkit index to add them",
            file=sys.stderr,
        )
    if rank_by_head is not None:
        return head_hits(index, rank_by_head, species, k, uncertain, threshold, audio_root)
    if row_id is not None:
        q = row_vector(index, row_id)[None, :]
    elif specs:
        if len(specs) > 1 and backbone is None:  # one model load for every clip
            backbone = query_backbone(index, weights, threads)
            try:
                q = np.stack([embed_clip(index, c, weights, threads, backbone) for c in specs])
            finally:
                backbone.close()
        else:
            q = np.stack([embed_clip(index, c, weights, threads, backbone) for c in specs])
    else:
        q = np.asarray(query, np.float32).reshape(-1)
        if q.shape != (index.dim,):
            raise UsageError(f"query vector has {q.size} values but the index holds {index.dim}-D vectors")
        q = q[None, :]
    skip = None
    if exclude_source:
        own = source_files(index, specs, row_id, audio_root)
        skip = index.rows["file"].astype(str).isin(own).to_numpy()
    rows, sims = multi_search(index, q.astype(np.float32), int(k), combine, skip, exact, threads)
    return hits_table(index, rows, sims, species, audio_root)


def hits_table(
    index: SearchIndex, rows: np.ndarray, sims: np.ndarray, species: str | None, audio_root=None
) -> pd.DataFrame:
    """Hits [n] with :data:`HIT_COLUMNS` for index rows ``rows`` [n] and their similarities [n]."""
    src = Path(str(audio_root or index.provenance.get("source", "")))
    hits = index.rows.loc[rows, ["file", "window", "start_s", "end_s", "row_id"]].reset_index(drop=True)
    hits.insert(0, "score", np.round(sims.astype(np.float64), 6))
    hits.insert(0, "rank", np.arange(1, len(hits) + 1))
    hits["audio"] = [str(src / f) for f in hits["file"]]
    hits["dataset"] = str(index.dataset)
    hits["species"] = species or ""
    hits["label"] = ""
    return hits[HIT_COLUMNS]

"""CLI bodies of ``embedkit index`` and ``embedkit search`` (``embedkit label`` is in :mod:`.label`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from embedkit.search.config import IndexConfig, SearchConfig


def run_index(cfg: IndexConfig):
    """Build or update the index of ``cfg.embeddings``; the loaded :class:`~embedkit.search.SearchIndex`."""
    from embedkit.search.index_build import build_index

    return build_index(cfg.embeddings, cfg.out, rebuild=cfg.rebuild, threads=cfg.threads)


def run_search(cfg: SearchConfig) -> pd.DataFrame:
    """Search, write the hits table (and snippets / the HTML page when asked); the hits."""
    from embedkit.search.label import save_hits
    from embedkit.search.query import search

    hits = search(
        cfg.index,
        cfg.query,
        row_id=cfg.row_id,
        k=cfg.k,
        exact=cfg.exact,
        species=cfg.species,
        weights=cfg.weights,
        threads=cfg.threads,
        audio_root=cfg.data,
        combine=cfg.combine,
        exclude_source=cfg.exclude_source,
        rank_by_head=cfg.rank_by_head,
        uncertain=cfg.uncertain,
        threshold=cfg.threshold,
    )
    out = Path(cfg.out)
    if cfg.audio or cfg.html:
        from embedkit.search.snippets import write_snippets

        audio_dir = Path(cfg.audio) if cfg.audio else out.with_name(out.stem + "_audio")
        snippets = write_snippets(hits, audio_dir)
        hits["snippet"] = [str(audio_dir / s) if not s.startswith("skipped:") else "" for s in snippets]
        if cfg.html:  # the query, and y / n buttons saving a labels CSV (search/review.py)
            from embedkit.search.review import review_page

            page = review_page(cfg, hits, snippets, audio_dir, out.with_suffix(".html"))
            print(f"[search] page: {page}", file=sys.stderr)
    save_hits(hits, out)
    if cfg.raven:  # one Raven selection table per recording, for review in Raven (search/raven.py)
        from embedkit.search.raven import write_hit_tables

        n = len(write_hit_tables(hits, cfg.raven))
        print(f"[search] {n} Raven table(s) -> {cfg.raven}", file=sys.stderr)
    top = hits.head(5)
    for _, h in top.iterrows():
        print(f"{h['rank']:>4}  {h['score']:.4f}  {h['file']}  {h['start_s']:g}-{h['end_s']:g} s")
    print(f"[search] {len(hits)} hits -> {out}", file=sys.stderr)
    return hits


def index_main(cfg: IndexConfig) -> int:
    """CLI body of ``index``."""
    run_index(cfg)
    return 0


def search_main(cfg: SearchConfig) -> int:
    """CLI body of ``search``."""
    run_search(cfg)
    return 0

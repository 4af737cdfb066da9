"""Options of ``embedkit index``, ``search`` and ``label`` (their flags are generated from these fields)."""

from __future__ import annotations

from dataclasses import dataclass

from embedkit.config import opt


@dataclass
class IndexConfig:
    """Options of ``embedkit index``: a shard dataset → a nearest-neighbour index beside it."""

    embeddings: str = opt("embeddings/birdnet/train_audio", "shard dataset folder (holds part-*.parquet)")
    out: str | None = opt(None, "index folder (default: EMBEDDINGS/index)")
    rebuild: bool = opt(False, "build from scratch instead of adding the shards that are new")
    threads: int | None = opt(None, "threads for building (default: all cores)")


@dataclass
class SearchConfig:
    """Options of ``embedkit search``: a query clip or stored window → the most similar windows."""

    index: str = opt("embeddings/birdnet/train_audio", "index folder, or the dataset folder holding index/")
    query: list[str] = opt(
        [], "query clip(s): AUDIO_FILE or AUDIO_FILE:START-END (seconds); repeat or list several", repeat=True
    )
    combine: str = opt(
        "mean", "several queries: mean = search with the mean of their embeddings | any = nearest to any",
        choices=["mean", "any"],
    )
    exclude_source: bool = opt(False, "skip the windows of the query's own recording(s)")
    rank_by_head: str | None = opt(
        None, "instead of a query: rank the index's windows by this model's score for --species"
    )
    uncertain: bool = opt(False, "--rank-by-head: the windows nearest --threshold first (active learning)")
    threshold: float = opt(0.5, "--rank-by-head --uncertain: the decision threshold")
    row_id: str | None = opt(None, "query by a stored window: its row_id (<stem>_<end s>) or FILE:WINDOW")
    k: int = opt(50, "number of hits")
    out: str = opt("hits.csv", "hits table (CSV; its empty label column is for embedkit label)")
    exact: bool = opt(False, "brute-force search over the shards' vectors instead of the ANN index")
    species: str | None = opt(None, "label code written into the hits' species column")
    audio: str | None = opt(None, "also write each hit as a WAV snippet into this folder")
    html: bool = opt(
        False, "also write OUT.html: spectrogram + audio player per hit (snippets: --audio, or OUT_audio/)"
    )
    data: str | None = opt(
        None, "audio folder the files are relative to (default: the one used at extraction)"
    )
    weights: str | None = opt(None, "backbone weights, for backbones whose weights are not bundled")
    threads: int | None = opt(None, "CPU threads (backbone, search)")
    raven: str | None = opt(None, "also write the hits as Raven selection tables (one per recording) here")


@dataclass
class LabelConfig:
    """Options of ``embedkit label``: mark hits y / n / skip (terminal loop), write the labelled table."""

    hits: str = opt(
        "hits.csv", "hits table of embedkit search, or its Raven tables (--raven; labels typed in Raven kept)"
    )
    out: str = opt("labelled.csv", "labelled table, for fit.py --extra-labels (rewritten after each answer)")
    species: str | None = opt(None, "label code for hits whose species column is empty")
    loop: bool = opt(True, "ask for each unlabelled hit in the terminal (--no-loop: only check and write)")
    player: str | None = opt(
        None, "command that plays a WAV file (default: ffplay, afplay, aplay, paplay or play)"
    )
    raven: str | None = opt(
        None, "also write labelled hits as Raven tables here (y: species, n: negative), for fit --annotations"
    )

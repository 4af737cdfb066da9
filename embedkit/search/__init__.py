"""Search the windows: nearest-neighbour retrieval over shard datasets, and labelling for ``fit.py``."""

from embedkit.search.index import SearchIndex, build_index, load_index
from embedkit.search.labels import load_labels
from embedkit.search.query import query_backbone, search

__all__ = ["SearchIndex", "build_index", "load_index", "load_labels", "query_backbone", "search"]

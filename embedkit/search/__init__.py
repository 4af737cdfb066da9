"""Search the windows: nearest-neighbour retrieval over shard datasets, and labelling for ``fit.py``.

Three verbs, as in the CLI (``embedkit index`` / ``search`` / ``label``):

* :func:`build_index` (``index_build.py``; :func:`load_index` in ``index.py``): an ANN index of a shard
  dataset, stored beside it (``DATASET/index/``) with the shards' provenance and the shard list; adding
  shards updates it without a rebuild.
* :func:`search` (``query.py``): a clip ``PATH[:START-END]`` embedded by the index's own backbone, a stored
  window (``row_id``) or a vector → the k most similar windows (cosine), by the ANN graph or exactly.
* :func:`load_labels` (:mod:`embedkit.train.extra`): a hits table whose ``label`` column was filled (in an
  editor or by the terminal loop of ``label.py``) → labelled windows, which ``fit.py --extra-labels`` adds
  to training.

``snippets.py`` writes hits as WAV snippets and an HTML page (spectrogram + player per hit).

Why usearch (HNSW) and not faiss-cpu: measured with ``benchmarks/bench_search.py`` on this machine (2 shared
cores), both HNSW with the same graph degree and candidate lists, 100k x 1024 clustered vectors: usearch built
in 308 s (on a loaded CPU) vs faiss's 591 s, its file is half the size (220 vs 424 MB: it stores the vectors
as float16, which is what the shards hold, while faiss's HNSWFlat keeps float32), recall@10 0.9995 vs 1.000,
one query 0.83 vs 0.57 ms (both ~150x faster than brute force). On the real BirdNET windows both reach 0.997.
usearch also takes explicit keys (row numbers), adds to a loaded graph in place, and saves/loads its own
binary format (no pickle), and it is what perch-hoplite uses for the same job. faiss's one edge, slightly
faster queries, does not matter at under a millisecond per query. At 1M windows the default (128 search
candidates) answers in 1.4 ms on one core, 156x faster than brute force, recall@10 0.96.
"""

from embedkit.search.index import SearchIndex, load_index
from embedkit.search.index_build import build_index
from embedkit.search.query import query_backbone, search
from embedkit.train.extra import load_labels

__all__ = ["SearchIndex", "build_index", "load_index", "load_labels", "query_backbone", "search"]

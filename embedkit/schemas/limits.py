"""Bounds that every loaded value must fit before any allocation or native code sees it.

They are far above any real use (BirdCLEF: 206 classes, 1024-D embeddings, 2-64 cores) and far below what
exhausts a machine: a head's parameters, a table's numbers and a file's nesting are checked against them on
load (:mod:`embedkit.schemas`), so a hostile or corrupt file is one line and exit 2, never an 8 GB allocation.
"""

from __future__ import annotations

#: largest JSON / TOML file read as metadata (model.json, head.json, index.json, kit.json, configs)
MAX_META_BYTES = 64 << 20
#: deepest nesting of lists/objects in a metadata file (embedkit writes at most 5 levels)
MAX_DEPTH = 32
#: integers in metadata files fit a signed 64-bit integer
MAX_INT = 2**63 - 1
#: threads, workers, ``n_jobs``, LightGBM ``num_threads``
MAX_THREADS = 1024
#: embedding dimension D
MAX_DIM = 65_536
#: classes C (labels of a model, LightGBM ``num_class``)
MAX_CLASSES = 100_000
#: hidden units of the mlp / mil heads
MAX_HIDDEN = 65_536
#: weights of one torch head, ``hidden * (D + C)``: 2^28 float32 = 1 GiB
MAX_HEAD_WEIGHTS = 1 << 28
#: boosting rounds / trees per class, epochs, iterations
MAX_ROUNDS = 100_000
#: LightGBM leaves per tree and histogram bins
MAX_LEAVES = 131_072
MAX_BIN = 65_535
#: rows per batch / step
MAX_BATCH = 1 << 20
#: rows of an index or a table (2^40)
MAX_ROWS = 1 << 40
#: seconds: window starts and ends in a table (115 days), window and hop lengths, TTA shifts
MAX_SECONDS = 1e7
MAX_WINDOW_S = 3600.0
#: CUDA device indices accepted in a ``device`` string (also checked against the devices present)
MAX_DEVICE_INDEX = 64

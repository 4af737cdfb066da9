"""Schemas at the door: every file embedkit loads is checked against one typed schema before use.

pydantic v2 models (strict types, finite numbers, ranges from :mod:`embedkit.schemas.limits`) for
``model.json``, ``head/head.json`` (per head), ``index.json``, ``kit.json`` and shard provenance; bounded
parsers for JSON and TOML (size, depth, integers, no TOML dates); column checks for tables; and names read
from files resolved inside their folder. A violation is a :class:`SchemaError` (an ``EmbedkitError``): one
line naming the file, the field and what is allowed; the CLI exits 2. This is a bottom layer: it imports
only :mod:`embedkit.errors` (and pydantic, numpy, pandas).
"""

from embedkit.schemas import limits
from embedkit.schemas.base import (
    SchemaError,
    check_tree,
    finite,
    loads_json,
    loads_toml,
    read_json,
    read_toml,
)
from embedkit.schemas.files import index_meta, kit_meta, model_meta, provenance
from embedkit.schemas.heads import check_arrays, check_head_meta, check_params
from embedkit.schemas.paths import check_relative, inside
from embedkit.schemas.tables import HITS, INDEX_ROWS, check_table

__all__ = [
    "HITS",
    "INDEX_ROWS",
    "SchemaError",
    "check_arrays",
    "check_head_meta",
    "check_params",
    "check_relative",
    "check_table",
    "check_tree",
    "finite",
    "index_meta",
    "inside",
    "kit_meta",
    "limits",
    "loads_json",
    "loads_toml",
    "model_meta",
    "provenance",
    "read_json",
    "read_toml",
]

"""One pydantic model per metadata file kind: ``model.json``, shard provenance, ``index.json``, ``kit.json``.

Strict types (a string is not a number, a float is not an integer), finite numbers, and ranges from
:mod:`embedkit.schemas.limits`. Unknown keys are allowed (informational: CV scores, reports, tuning grids),
known keys must fit. Cross-field checks (priors against labels, files that stay in their folder) are model
validators. Heads' ``head.json`` is in :mod:`embedkit.schemas.heads`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from embedkit.schemas import limits as L
from embedkit.schemas.paths import check_relative


class Open(BaseModel):
    """Strict, finite, extra keys allowed (and kept)."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)


Finite = Annotated[float, Field(allow_inf_nan=False)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Dim = Annotated[int, Field(ge=1, le=L.MAX_DIM)]
Seconds = Annotated[float, Field(gt=0.0, le=L.MAX_WINDOW_S)]
Rows = Annotated[int, Field(ge=0, le=L.MAX_ROWS)]


class Provenance(Open):
    """Shard / model provenance: what made the embeddings (``store/provenance.py``)."""

    backbone: str | None = None
    dim: Dim | None = None
    sample_rate: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    window_s: Seconds | None = None
    hop_s: Seconds | None = None
    dtype: Literal["float16", "float32"] | None = None
    chunk_offsets: Annotated[list[Finite], Field(max_length=64)] | None = None


class ZeroShot(Open):
    """``model.json`` ``zero_shot``: the backbone's own logits as a prior or features."""

    mode: Literal["off", "prior", "features", "both"] = "off"
    index: Annotated[list[Annotated[int, Field(ge=-1, le=L.MAX_CLASSES)]], Field(max_length=L.MAX_CLASSES)]
    weights: list[Finite] | None = None
    offset: list[Finite] | None = None


class FusionPart(Open):
    """One backbone of a fused model."""

    dim: Dim
    provenance: Provenance


class ModelMeta(Open):
    """``model.json`` of a model folder (``predict/model.py``)."""

    format: Literal[1, 2]
    head: str
    labels: Annotated[list[str], Field(min_length=1, max_length=L.MAX_CLASSES)]
    provenance: Provenance = Provenance()
    priors: Annotated[list[Unit], Field(max_length=L.MAX_CLASSES)] | None = None
    smooth: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    input_dim: Dim | None = None
    needs_logits: bool = False
    zero_shot: ZeroShot | None = None
    fusion: Annotated[list[FusionPart], Field(min_length=1, max_length=16)] | None = None
    files: dict[str, Sha256] | None = None
    embedkit_version: str | None = None

    @model_validator(mode="after")
    def _fits(self):
        n = len(self.labels)
        if len(set(self.labels)) != n:
            raise ValueError("labels repeat a code")
        if self.priors is not None and len(self.priors) not in (0, n):
            raise ValueError(f"priors has {len(self.priors)} values for {n} labels")
        zs = self.zero_shot
        if zs is not None:
            if len(zs.index) != n:
                raise ValueError(f"zero_shot.index has {len(zs.index)} entries for {n} labels")
            for k in ("weights", "offset"):
                v = getattr(zs, k)
                if v is not None and len(v) not in (1, n):
                    raise ValueError(f"zero_shot.{k} has {len(v)} values for {n} labels")
        for name in self.files or {}:
            check_relative(name, "files")
        return self


class _IndexFile(Open):
    name: str
    sha256: Sha256


class _IndexFiles(Open):
    graph: _IndexFile
    rows: _IndexFile

    @model_validator(mode="after")
    def _names(self):
        import re

        names = {"graph": r"vectors-[0-9a-f]{16}\.usearch", "rows": r"rows-[0-9a-f]{16}\.parquet"}
        for key, pattern in names.items():
            if not re.fullmatch(pattern, getattr(self, key).name):
                raise ValueError(f"files.{key}.name must be a plain file name matching {pattern}")
        return self


class _Shard(Open):
    name: Annotated[str, Field(pattern=r"^part-[A-Za-z0-9@._-]+\.parquet$")]
    bytes: Rows
    rows: Rows


class _AnnParams(Open):
    connectivity: Annotated[int, Field(ge=2, le=1024)] = 16
    expansion_add: Annotated[int, Field(ge=1, le=65_536)] = 64
    expansion_search: Annotated[int, Field(ge=1, le=65_536)] = 128

    model_config = ConfigDict(extra="forbid", strict=True)


class IndexMeta(Open):
    """``index.json`` of a search index (``search/index.py``)."""

    format: Literal["embedkit-search-index"]
    version: Literal[1]
    metric: Literal["cos"] = "cos"
    params: _AnnParams
    dim: Dim
    n: Rows
    dataset: Annotated[str, Field(min_length=1, max_length=4096)]
    provenance: Provenance
    shards: Annotated[list[_Shard], Field(max_length=1_000_000)]
    files: _IndexFiles


class KitMeta(Open):
    """``kit.json`` of a Kaggle kit (``kaggle_kit.py``; ``kaggle_infer.py`` checks the same with stdlib)."""

    embedkit: str
    python_version: str
    models: Annotated[list[str], Field(min_length=1)]
    wheels: dict[str, Rows]
    sha256: dict[str, Sha256]

    @model_validator(mode="after")
    def _paths(self):
        for rel in self.sha256:
            check_relative(rel, "sha256")
            if not rel.startswith(("wheels/", "models/")):
                raise ValueError(f"sha256 key {rel!r} is neither under wheels/ nor models/")
        return self


def model_meta(doc: Any, file: str) -> dict:
    """Check a parsed ``model.json``; returns it unchanged (a dict)."""
    from embedkit.schemas.base import validate

    validate(ModelMeta, doc, file)
    return doc


def provenance(doc: Any, file: str) -> dict:
    """Check a parsed provenance (a shard's ``embedkit`` metadata); returns it unchanged."""
    from embedkit.schemas.base import validate

    validate(Provenance, doc, file)
    return doc


def index_meta(doc: Any, file: str) -> dict:
    """Check a parsed ``index.json``; returns it unchanged."""
    from embedkit.schemas.base import validate

    validate(IndexMeta, doc, file)
    return doc


def kit_meta(doc: Any, file: str) -> dict:
    """Check a parsed ``kit.json``; returns it unchanged."""
    from embedkit.schemas.base import validate

    validate(KitMeta, doc, file)
    return doc

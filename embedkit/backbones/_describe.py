"""A model description: what embedkit must know to run an ONNX or TFLite audio model it has never seen.

The description (:class:`ModelSpec`) is a small TOML table or a dict of the same keys, e.g.::

    sample_rate = 32000        # Hz of the model's input
    window_s = 5.0             # seconds per input row (samples = round(window_s * sample_rate))
    input = "inputs"           # input name ("" or absent: the model's only input)
    layout = "B,S"             # "B,S" = [batch, samples] or "B,1,S" = [batch, 1, samples]
    embedding = "embedding"    # output (or, for TFLite, any inner tensor) holding [B, D] or [B, T, D]
    pool = "mean"              # how [B, T, D] becomes [B, D]: mean | max
    logits = "label"           # optional: output with the model's class logits [B, K] (or [B, T, K])
    labels = "labels.csv"      # optional: the class list of those logits (see read_class_list)
    label_codes = "codes.csv"  # optional: a second list, one eBird code per class (Perch's)
    normalize = 0.25           # optional: per window, remove the mean and scale the peak to this value

The class list (:class:`ClassList`) is what zero-shot mapping needs: scientific names, eBird codes and
iNaturalist taxon ids, whichever the file has.
"""

from __future__ import annotations

import csv
import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedkit.backbones.base import BackboneError

LAYOUTS = ("B,S", "B,1,S")
POOLS = ("mean", "max")
#: description keys that name files (left out of the identity: the file contents are what counts)
FILE_KEYS = ("labels", "label_codes")


@dataclass
class ModelSpec:
    """How to feed a model and which of its outputs to read (keys as in the module docstring)."""

    sample_rate: int = 32000
    window_s: float = 5.0
    input: str = ""
    layout: str = "B,S"
    embedding: str = ""
    pool: str = "mean"
    logits: str = ""
    labels: str = ""
    label_codes: str = ""
    normalize: float = 0.0

    @property
    def samples(self) -> int:
        """Samples per input row."""
        return round(self.window_s * self.sample_rate)

    def identity(self) -> dict[str, Any]:
        """The keys that change the embedding values (file paths left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in FILE_KEYS}


def _check(spec: ModelSpec, who: str) -> ModelSpec:
    """Validate value ranges; one-line :class:`BackboneError` naming the key."""
    if spec.sample_rate <= 0 or not spec.window_s > 0:
        raise BackboneError(
            f"{who}: sample_rate and window_s must be > 0, got {spec.sample_rate}, {spec.window_s}"
        )
    if spec.layout not in LAYOUTS:
        raise BackboneError(f"{who}: layout must be one of {', '.join(LAYOUTS)}, got {spec.layout!r}")
    if spec.pool not in POOLS:
        raise BackboneError(f"{who}: pool must be one of {', '.join(POOLS)}, got {spec.pool!r}")
    if spec.normalize < 0:
        raise BackboneError(f"{who}: normalize (peak level) must be >= 0, got {spec.normalize}")
    if spec.labels and not spec.logits:
        raise BackboneError(f'{who}: labels given but no logits output named (set logits = "<output name>")')
    return spec


def load_spec(
    who: str,
    preset: dict[str, Any] | None = None,
    config_file: str | None = None,
    values: dict[str, Any] | None = None,
) -> ModelSpec:
    """Build a description: ``preset``, then the TOML ``config_file``, then ``values`` (later keys win).

    Relative ``labels`` / ``label_codes`` paths in the TOML file are taken from the file's folder.

    Raises:
        BackboneError: unreadable file, unknown key, wrong type or value (one line naming it).
    """
    merged: dict[str, Any] = dict(preset or {})
    if config_file:
        path = Path(config_file).expanduser()
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise BackboneError(f"{who}: cannot read the model description {path}: {e}") from None
        table = table.get("model", table)  # a [model] table, or the keys at top level
        for k in FILE_KEYS:
            if table.get(k) and not Path(table[k]).expanduser().is_absolute():
                table[k] = str(path.parent / table[k])
        merged.update(table)
    merged.update({k: v for k, v in (values or {}).items() if v is not None})
    fields = {f.name: f.type for f in dataclasses.fields(ModelSpec)}
    unknown = sorted(set(merged) - set(fields))
    if unknown:
        raise BackboneError(f"{who}: unknown model description key(s) {unknown}; known: {sorted(fields)}")
    kw = {k: _coerce(who, k, v) for k, v in merged.items()}
    return _check(ModelSpec(**kw), who)


def _coerce(who: str, key: str, value: Any) -> Any:
    """Type-check one description value against :class:`ModelSpec`'s field type."""
    want = type(getattr(ModelSpec(), key))
    if want is float and isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    elif want is int and isinstance(value, int | str) and not isinstance(value, bool):
        try:
            return int(value)
        except ValueError:
            pass
    elif want is str and isinstance(value, str):
        return value
    raise BackboneError(f"{who}: model description key {key!r} must be {want.__name__}, got {value!r}")


@dataclass
class ClassList:
    """The classes of a backbone's own classifier, in logit order (K entries each; ``""`` = unknown).

    Attributes:
        names: display label of each class.
        scientific: scientific name.
        ebird: eBird species code.
        inat: iNaturalist taxon id (as a string).
    """

    names: list[str]
    scientific: list[str] = field(default_factory=list)
    ebird: list[str] = field(default_factory=list)
    inat: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def keys(self) -> dict[str, list[str]]:
        """The non-empty id columns: ``{"scientific": [...], "ebird": [...], "inat": [...]}``."""
        cols = {"scientific": self.scientific, "ebird": self.ebird, "inat": self.inat}
        return {k: v for k, v in cols.items() if any(v)}


#: column names understood in a CSV class list (lower case), per id kind
_COLUMNS = {
    "scientific": ("scientific_name", "scientific", "sci_name", "species"),
    "ebird": ("ebird_code", "ebird", "species_code", "primary_label", "code"),
    "inat": ("inat_taxon_id", "taxon_id", "inat_id"),
    "names": ("common_name", "label", "name", "class"),
}
_NO_CODE = {"", "no_ebird_code", "none", "nan"}


def read_class_list(path: str | Path, codes: str | Path | None = None) -> ClassList:
    """Read a class list file (and optionally a parallel file of eBird codes).

    Formats: a ``.txt`` with one class per line (``"Scientific name_Common name"`` as BirdNET's, or a bare
    name); a ``.csv`` with a header: known columns (``scientific_name``, ``ebird_code``/``primary_label``,
    ``inat_taxon_id``, ``common_name``) are used, and a one-column CSV (Perch v2's ``labels.csv``, header
    ``inat2024_fsd50k``) holds scientific names. ``codes`` is a one-column CSV with a header and one eBird
    code per class (Perch v2's ``perch_v2_ebird_classes.csv``; ``no_ebird_code`` = none).

    Raises:
        BackboneError: unreadable file, or ``codes`` of another length.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise BackboneError(f"cannot read the class list {p}: {e}") from None
    if p.suffix.lower() == ".csv":
        out = _csv_classes(list(csv.reader(text.splitlines())))
    else:
        lines = [s.strip() for s in text.splitlines() if s.strip()]
        sci = [s.split("_", 1)[0].strip() for s in lines]
        out = ClassList(names=lines, scientific=sci, ebird=[""] * len(lines), inat=[""] * len(lines))
    if codes:
        rows = _one_column(Path(codes))
        if len(rows) != len(out):
            raise BackboneError(f"{codes}: {len(rows)} codes for the {len(out)} classes of {p}")
        out.ebird = ["" if c.strip().lower() in _NO_CODE else c.strip() for c in rows]
    return out


def _csv_classes(rows: list[list[str]]) -> ClassList:
    """A :class:`ClassList` from CSV rows (header first)."""
    if not rows:
        return ClassList(names=[])
    header, body = [h.strip().lower() for h in rows[0]], [r for r in rows[1:] if any(c.strip() for c in r)]
    if len(header) == 1:  # one column: a namespace line, then scientific names
        sci = [r[0].strip() for r in body]
        return ClassList(names=sci, scientific=sci, ebird=[""] * len(sci), inat=[""] * len(sci))
    cols: dict[str, list[str]] = {}
    for kind, names in _COLUMNS.items():
        j = next((header.index(n) for n in names if n in header), None)
        cols[kind] = [r[j].strip() if j < len(r) else "" for r in body] if j is not None else [""] * len(body)
    names = [n or s or e for n, s, e in zip(cols["names"], cols["scientific"], cols["ebird"], strict=True)]
    return ClassList(names=names, scientific=cols["scientific"], ebird=cols["ebird"], inat=cols["inat"])


def _one_column(path: Path) -> list[str]:
    """The first column of a CSV with a header line."""
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as e:
        raise BackboneError(f"cannot read {path}: {e}") from None
    return [r[0] if r else "" for r in rows[1:]]

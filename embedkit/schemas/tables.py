"""Tables read from files (an index's rows, hits / labelled tables): column types, finite bounded numbers.

A column is checked as a whole (vectorised); the first bad row is named with its line in the file
(header = line 1) or its row number, the column and what is allowed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from embedkit.schemas import limits as L
from embedkit.schemas.base import SchemaError
from embedkit.schemas.paths import check_relative

#: the columns of a hits table (``embedkit search``) and of an index's rows: what each must hold
HITS = {"file": "relpath", "window": "count", "start_s": "seconds", "end_s": "seconds"}
INDEX_ROWS = {
    "shard": "str",
    "file": "relpath",
    "window": "count",
    "start_s": "seconds",
    "end_s": "seconds",
    "row_id": "str",
}
_ALLOWED = {
    "count": f"an integer 0..{L.MAX_ROWS}",
    "seconds": f"a finite number of seconds in [0, {L.MAX_SECONDS:g}]",
    "str": "text",
    "relpath": "a relative path without '..'",
}


def check_table(df: pd.DataFrame, spec: dict[str, str], file: str, line_offset: int = 2) -> None:
    """Check the columns ``spec`` names (those present; a missing one is the caller's message).

    Args:
        df: the table.
        spec: column → ``count`` | ``seconds`` | ``str`` | ``relpath``.
        file: named in the message.
        line_offset: line in the file of row 0 (2 for a CSV with a header; 0 for a parquet row number).
    """
    for col, kind in spec.items():
        if col not in df.columns:
            continue
        s = df[col]
        if kind in ("count", "seconds"):
            v = pd.to_numeric(s, errors="coerce").to_numpy(np.float64)
            bad = ~np.isfinite(v)
            if kind == "count":
                bad |= (v < 0) | (v > L.MAX_ROWS) | (np.floor(np.where(bad, 0, v)) != np.where(bad, 0, v))
            else:
                bad |= (v < 0) | (v > L.MAX_SECONDS)
        else:
            bad = _text_bad(s, relpath=kind == "relpath")
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = f"line {i + line_offset}" if line_offset else f"row {i}"
            raise SchemaError(
                f"{file}: {where}: {col} = {str(s.iloc[i])[:40]!r}; allowed: {_ALLOWED[kind]}"
                + (f" ({int(bad.sum())} bad rows)" if bad.sum() > 1 else "")
            )


#: a name that is absolute, goes up, holds a backslash or NUL, or starts at ``~`` (:func:`check_relative`)
_UNSAFE = r"^/|^~|(^|/)\.\.(/|$)|\\|\x00"


def _text_bad(s: pd.Series, relpath: bool) -> np.ndarray:
    """Bool [N]: cells that are not text (or, with ``relpath``, not a safe relative path); vectorised."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.array(s, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # numbers among the text: the slow, exact way
        ok = s.map(lambda x: isinstance(x, str) and (not relpath or _safe(x)))
        return ~ok.to_numpy(bool)
    bad = arr.is_null()
    if relpath:
        bad = pc.or_(bad, pc.or_(pc.equal(pc.utf8_length(arr), 0), pc.match_substring_regex(arr, _UNSAFE)))
    return pc.fill_null(bad, True).to_numpy(zero_copy_only=False)


def _safe(x: str) -> bool:
    try:
        check_relative(x, "file")
    except ValueError:
        return False
    return True

"""What ``infer`` writes: the checked submission file and, with ``--save-embeddings``, the test shards.

A submission is written under a temporary name, checked like ``embedkit validate`` does, then named for what
it is: ``--out`` when valid, :func:`invalid_path` (``submission.invalid.csv``) when not, so nothing invalid
is ever submitted by mistake. Temp files left by killed runs are removed by the next run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embedkit.audio import row_id
from embedkit.birdclef import validate_submission, write_submission


def invalid_path(out: str | Path) -> Path:
    """Where an invalid submission is written instead: ``submission.csv`` → ``submission.invalid.csv``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.invalid{out.suffix}")


def clean_stale_checks(out: Path) -> None:
    """Remove check temps of ``out`` left by killed runs (dead pid on this host; another's after an hour)."""
    import glob

    from embedkit.store.write import clean_stale_temps

    stale = f".tmp-[0-9]*-{glob.escape(out.name)}"
    clean_stale_temps(out.parent, pattern=stale)  # of killed runs (dead pid on this host)


def write_checked(
    out: Path, row_ids: list[str], P: np.ndarray, labels: list[str], expected: list[str]
) -> tuple[Path, list[str]]:
    """Write to a temporary name, run the ``validate`` checks on the file, then name it for what it is.

    A valid submission replaces ``out`` (and removes a stale ``*.invalid.csv``); an invalid one goes to
    :func:`invalid_path` and ``out`` is not touched. Temp files of this name left by killed runs are removed
    first (:func:`clean_stale_checks`).

    Args:
        out: the submission path (``--out``).
        row_ids: N row ids.
        P: float [N, C] probabilities.
        labels: C column names.
        expected: the row ids the soundscape folder calls for.

    Returns:
        (path written, problems; empty when valid).
    """
    from embedkit.store.write import _host

    clean_stale_checks(out)
    check = out.with_name(f".tmp-{os.getpid()}@{_host()}-check-{out.name}")
    tmp = write_submission(check, row_ids, P, labels)
    try:
        problems = validate_submission(tmp, labels, expected)
        final = invalid_path(out) if problems else out
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    if not problems:
        invalid_path(out).unlink(missing_ok=True)
    return final, problems


def embedding_saver(save_embeddings: str | None, bb, prov: dict, folder: Path):
    """A callable writing one file's test embeddings as a shard, or ``None`` when not asked to.

    Args:
        save_embeddings: the ``--save-embeddings`` root (falsy: do not save).
        bb: the backbone (its name names the shard folder).
        prov: the live provenance recorded in the shards (``window_s`` and ``hop_s`` give the row times).
        folder: the soundscape folder (its name is the split).

    Returns:
        ``save(path, emb)`` with emb float32 [W, D], or ``None``.
    """
    if not save_embeddings:
        return None
    import pandas as pd

    from embedkit.store import ShardWriter

    writer = ShardWriter(Path(save_embeddings) / bb.name / folder.name, {**prov, "split": folder.name})

    def save(path: Path, emb: np.ndarray) -> None:
        ends = prov["window_s"] + np.arange(len(emb)) * prov["hop_s"]
        keys = pd.DataFrame(
            {
                "file": path.name,
                "window": np.arange(len(emb)),
                "start_s": ends - prov["window_s"],
                "end_s": ends,
                "row_id": [row_id(path.stem, e) for e in ends],
            }
        )
        writer.write(keys, emb)

    return save

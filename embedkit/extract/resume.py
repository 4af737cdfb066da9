"""Resuming into a folder that already holds shards: the run's settings must match the shards', or be added.

A rerun skips the files already in shards, so a setting that changes the data would otherwise be dropped for
them in silence. :func:`check_resume` compares this run with the shards before any work:

* a setting recorded in the provenance (window, hop, dtype, pooling, backbone options, augmentation) that
  differs → one-line :class:`UsageError` naming the flag, the shards' value and the two fixes;
* ``--save-logits`` on shards without logits → those shards get logits: :func:`add_logits` embeds their
  files again with logits and rewrites each shard in place, atomically (same rows and embeddings, plus the
  ``logits`` column; a kill leaves the old or the new shard, never both);
* no ``--save-logits`` on shards with logits → the run stores logits too (said on stderr), so the dataset
  never mixes shards with and without them.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from embedkit.config import ExtractConfig
from embedkit.errors import UsageError
from embedkit.store import ShardWriter, provenance_diff, read_embeddings, read_meta, shard_paths

#: provenance field → the extract flag that sets it
_FLAGS = {
    "dtype": "--dtype",
    "window_s": "--window-s",
    "hop_s": "--hop-s",
    "pool": "--pool",
    "logit_pool": "--logit-pool",
    "time_pool": "--time-pool",
    "chunk_offsets": "--chunk-offsets",
    "layer": "--layer",
    "augment": "--augment-background/--variants/--snr-db/--gain-db/--shift-s/--augment-seed/--augment-pool",
    "weights": "--weights",
    "backbone": "--backbone",
    "dim": "--backbone/--model",
}


def _show(k: str, v) -> str:
    if v is None:
        return {"logit_pool": "the pool's", "time_pool": "mean", "augment": "off"}.get(k, "unset")
    return str(v)


def check_resume(out: Path, prov: dict, cfg: ExtractConfig) -> tuple[ExtractConfig, list[Path]]:
    """Compare this run with the shards already in ``out`` (see the module docstring).

    Args:
        out: the dataset folder.
        prov: this run's provenance (without ``dtype``).
        cfg: this run's options.

    Returns:
        ``(cfg, shards)``: the options to run with (``save_logits`` on when the shards hold logits) and the
        shards that lack logits this run must add.

    Raises:
        UsageError: a data-changing setting differs from the shards'.
    """
    paths = shard_paths(out)
    if not paths:
        return cfg, []
    have = read_meta(paths[0])
    mine = {**prov, "dtype": cfg.dtype}
    diff = provenance_diff(have, mine) + (["augment"] if have.get("augment") != prov.get("augment") else [])
    diff.sort(key=lambda k: list(_FLAGS).index(k) if k in _FLAGS else len(_FLAGS))  # a flag a user sets first
    if diff:
        k = diff[0]
        flag = _FLAGS.get(k, k)
        raise UsageError(
            f"{flag}: this run has {k}={_show(k, mine.get(k))} but the shards already in {out} have "
            f"{k}={_show(k, have.get(k))}"
            + (f" (also differ: {', '.join(diff[1:])})" if len(diff) > 1 else "")
            + "; rerun with the shards' settings to continue them, or write elsewhere with --out/--name"
        )
    import pyarrow.parquet as pq

    with_logits = {p for p in paths if "logits" in pq.read_schema(p).names}
    if cfg.save_logits:
        return cfg, [p for p in paths if p not in with_logits]
    if with_logits:
        print(f"the shards in {out} hold logits: storing them for this run's files too (as --save-logits)",
              file=sys.stderr)  # fmt: skip
        return replace(cfg, save_logits=True), [p for p in paths if p not in with_logits]
    return cfg, []


def add_logits(backbone, cfg: ExtractConfig, shards: list[Path], sources: dict[str, Path], w) -> int:
    """Give ``shards`` a ``logits`` column: embed their files again, rewrite each shard atomically in place.

    Args:
        backbone: the run's backbone (with ``embed_with_logits``).
        cfg: the run's options.
        shards: shards without logits.
        sources: relative file name → audio path of the run's inputs.
        w: the run's :class:`~embedkit.audio.Windowing`.

    Returns:
        The number of files that got logits.

    Raises:
        UsageError: an augmented dataset, or a done file that is no longer among the inputs or decodes to
            other windows than its shard holds.
    """
    from embedkit.audio.stream import embed_files

    n_files = 0
    for sp in shards:
        meta = {k: v for k, v in read_meta(sp).items() if k not in ("layout", "embedkit_version")}
        if meta.get("augment") is not None:
            raise UsageError(
                f"--save-logits: {sp.parent} is an augmented dataset without logits; extract with "
                f"--save-logits into another --out/--name"
            )
        keys, X = read_embeddings(sp)
        files = list(dict.fromkeys(keys["file"].astype(str)))
        missing = [f for f in files if f not in sources]
        if missing:
            raise UsageError(
                f"--save-logits: {missing[0]} (in {sp.name}) is not among this run's inputs, so its logits "
                f"cannot be added; extract with --save-logits into another --out/--name"
            )
        got: dict[str, np.ndarray] = {}
        for fe in embed_files(backbone, [sources[f] for f in files], w, batch_size=cfg.batch_size,
                              decode_workers=cfg.decode_workers, logits=True, progress=cfg.progress,
                              desc=f"adding logits {sp.name}"):  # fmt: skip
            if fe.error is not None:
                raise UsageError(f"--save-logits: cannot add logits for {files[fe.index]}: {fe.error}")
            got[files[fe.index]] = fe.logits
        win = keys["window"].to_numpy()
        rows = []
        for f, k in zip(keys["file"].astype(str), win, strict=True):
            lg = got[f]
            if k >= len(lg):
                raise UsageError(
                    f"--save-logits: {f} now gives {len(lg)} windows but its shard holds window {k}; "
                    f"extract with --save-logits into another --out/--name"
                )
            rows.append(lg[k])
        dtype = meta.pop("dtype", cfg.dtype)
        writer = _InPlace(sp.parent, meta, dtype, row_group_size=cfg.shard_rows)
        writer.target = sp
        writer.write(keys, X, np.stack(rows).astype(np.float32))
        n_files += len(files)
    return n_files


class _InPlace(ShardWriter):
    """A writer whose next shard replaces ``target`` (one atomic rename)."""

    target: Path | None = None

    def _name(self, prefix: str) -> Path:
        return self.target if prefix == "part" and self.target is not None else super()._name(prefix)

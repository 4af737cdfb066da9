"""``load_index`` while ``embedkit index`` adds shards: the old or the new index whole, never a missing file.

Issue 24.5: ``load_index`` raised a raw ``FileNotFoundError: vectors-….usearch`` (9 in ~16k loads) because an
add replaces ``index.json`` and then removes the files the old one named.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time

import numpy as np
import pandas as pd

from embedkit.search import build_index, load_index
from embedkit.search import index as ix_mod
from embedkit.store import ShardWriter

PROV = {"backbone": "toy", "dim": 8, "sample_rate": 16000, "weights": "toy", "window_s": 5.0, "hop_s": 5.0}
ROWS = 20


def add_shard(writer: ShardWriter, i: int) -> None:
    """Shard ``i``: one file of ``ROWS`` windows, seeded vectors."""
    keys = pd.DataFrame(
        {
            "file": [f"f{i}.ogg"] * ROWS,
            "window": np.arange(ROWS),
            "start_s": 5.0 * np.arange(ROWS),
            "end_s": 5.0 * np.arange(1, ROWS + 1),
            "row_id": [f"f{i}_{5 * (w + 1)}" for w in range(ROWS)],
        }
    )
    writer.write(keys, np.random.default_rng(i).normal(size=(ROWS, 8)).astype(np.float32))


def test_a_load_racing_an_add_reads_the_new_index(tmp_path, monkeypatch, capsys):
    """Scripted timing: ``index.json`` is read, an add publishes and removes the old files, then the files
    are read. Before: ``FileNotFoundError`` (a traceback); now the load is retried on the new index."""
    writer = ShardWriter(tmp_path / "ds", PROV)
    add_shard(writer, 0)
    build_index(writer.folder)
    real, calls = ix_mod.sha256_file, []

    def racing(path):
        if not calls:
            calls.append(path)
            add_shard(writer, 1)
            build_index(writer.folder)  # replaces index.json, removes the old vectors/rows files
        return real(path)

    monkeypatch.setattr(ix_mod, "sha256_file", racing)
    assert len(load_index(writer.folder)) == 2 * ROWS
    assert not calls[0].exists()  # the file the first attempt was about to read is gone


def _adder(folder, n: int, log) -> None:
    with open(log, "w") as sys.stderr:
        writer = ShardWriter(folder, PROV)
        for i in range(1, n + 1):
            add_shard(writer, i)
            build_index(folder)
    os._exit(0)


def test_loads_while_an_index_grows_shard_by_shard_never_fail(tmp_path):
    writer = ShardWriter(tmp_path / "ds", PROV)
    add_shard(writer, 0)
    build_index(writer.folder)
    adder = multiprocessing.get_context("fork").Process(
        target=_adder, args=(writer.folder, 12, tmp_path / "log")
    )
    adder.start()
    sizes = []
    t0 = time.monotonic()
    while adder.is_alive() and time.monotonic() - t0 < 60:
        sizes.append(len(load_index(writer.folder)))
    adder.join()
    assert adder.exitcode == 0, (tmp_path / "log").read_text()[-2000:]
    assert len(sizes) > 5 and sizes == sorted(sizes) and set(sizes) <= {ROWS * k for k in range(1, 14)}
    assert len(load_index(writer.folder)) == 13 * ROWS

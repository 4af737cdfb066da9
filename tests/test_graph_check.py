"""A search graph from elsewhere is opened in a child process first (usearch SIGSEGV on crafted bytes)."""

from __future__ import annotations

import json
import os

import pytest
from test_index_race import PROV, add_shard

from embedkit.files import sha256_file
from embedkit.search import build_index, graph_check, load_index
from embedkit.store import ShardWriter, StoreError


@pytest.fixture()
def index(tmp_path, monkeypatch):
    """A 3-shard index built here, with the trusted-graph list in tmp_path."""
    monkeypatch.setenv("EMBEDKIT_TRUSTED_GRAPHS", str(tmp_path / "trusted.txt"))
    writer = ShardWriter(tmp_path / "ds", PROV)
    for i in range(3):
        add_shard(writer, i)
    build_index(writer.folder)
    return writer.folder / "index"


def _graph(folder):
    meta = json.loads((folder / "index.json").read_text())
    return folder / meta["files"]["graph"]["name"], meta


def _rehash(folder, graph):
    """What an attacker does after changing the graph: index.json names the new bytes."""
    meta = json.loads((folder / "index.json").read_text())
    meta["files"]["graph"]["sha256"] = sha256_file(graph)
    (folder / "index.json").write_text(json.dumps(meta))


def test_graphs_built_here_load_without_a_check_process(index, monkeypatch):
    graph, meta = _graph(index)
    assert graph_check.is_trusted(meta["files"]["graph"]["sha256"])
    monkeypatch.setattr(graph_check.subprocess, "run", lambda *a, **k: pytest.fail("checked a trusted graph"))
    assert len(load_index(index).rows) == 60


def test_a_graph_from_elsewhere_is_checked_once_then_trusted(index, tmp_path):
    os.remove(tmp_path / "trusted.txt")  # as if the index came from another machine
    graph, meta = _graph(index)
    assert not graph_check.is_trusted(meta["files"]["graph"]["sha256"])
    assert len(load_index(index).rows) == 60
    assert graph_check.is_trusted(meta["files"]["graph"]["sha256"])


@pytest.mark.parametrize("damage", ["truncate", "zero-tail"])
def test_a_damaged_graph_with_recomputed_hashes_is_refused_in_one_line(index, damage):
    graph, _ = _graph(index)
    data = graph.read_bytes()
    graph.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:64] + bytes(len(data) - 64))
    _rehash(index, graph)
    with pytest.raises(StoreError) as e:
        load_index(index)
    msg = str(e.value)
    assert "\n" not in msg and "--rebuild" in msg and graph.name in msg


def test_a_check_process_killed_by_a_signal_is_one_line(index, tmp_path, monkeypatch):
    """The path a crafted graph takes when usearch reads out of bounds in the child (SIGSEGV)."""
    os.remove(tmp_path / "trusted.txt")
    monkeypatch.setattr(graph_check, "_CHILD", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(StoreError, match=r"crashed its check process \(signal 11\)"):
        load_index(index)

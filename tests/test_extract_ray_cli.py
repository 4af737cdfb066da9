"""``python extract.py --engine ray --part auto`` from the command line, on a real two-node local Ray cluster.

No injected factory: the CLI builds the registered ``toy`` backbone in every actor by name
(``EMBEDKIT_PLUGINS=ray_backbones`` registers it in each process, as a user's own backbone module would).
One worker node is removed while the first run is embedding; a rerun completes the work, and the shards in
the one shared folder hold every (file, window) exactly once, equal to the local engine's.
"""

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import lose_a_node_then_rerun, write_audio

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'embedkit[ray]')")

from embedkit.cli import main as cli_main  # noqa: E402
from embedkit.store import read_embeddings, shard_paths  # noqa: E402

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def extract_cmd(root: Path, out: Path) -> list[str]:
    return [sys.executable, str(REPO / "extract.py"), "--engine", "ray", "--part", "auto",
            "--backbone", "toy", "--data", str(root), "--out", str(out),
            "--batch-size", "2", "--shard-rows", "24", "--no-progress"]


def test_cli_ray_two_nodes_worker_killed_rerun_exactly_once_equals_local(toy_split, tmp_path, two_nodes):
    cluster, worker = two_nodes
    for j in range(6):  # 15 files in all: a run long enough to lose a node in the middle
        write_audio(toy_split / "train_audio" / "ddd" / f"XC9{j}.ogg", 8.0, freq=3000, seed=90 + j)
    out = tmp_path / "ray"
    env = {**os.environ, "EMBEDKIT_PART_INDEX": "0", "EMBEDKIT_PART_COUNT": "1",
           "RAY_ADDRESS": cluster.address}
    cmd = extract_cmd(toy_split, out)
    dataset = out / "toy" / "train_audio"
    again = lose_a_node_then_rerun(cluster, worker, cmd, env, lambda: shard_paths(dataset))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "part 0/1" in again.stderr and "files embedded" in again.stderr
    import pyarrow.parquet as pq

    raw = pd.concat([pq.read_table(p, columns=["file", "window"]).to_pandas() for p in shard_paths(dataset)])
    assert not raw.duplicated().any()  # every (file, window) in exactly one shard
    assert raw["file"].nunique() == 15
    assert cli_main(["extract", "--backbone", "toy", "--data", str(toy_split), "--out", str(tmp_path / "loc"),
                     "--no-progress"]) == 0
    k_loc, X_loc = read_embeddings(tmp_path / "loc" / "toy" / "train_audio")
    k_ray, X_ray = read_embeddings(dataset)
    pd.testing.assert_frame_equal(k_ray, k_loc)
    np.testing.assert_array_equal(X_ray, X_loc)

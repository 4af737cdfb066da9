"""``python -m embedkit analyze --engine ray`` as a command, on a real two-node local Ray cluster.

No injected code: the CLI builds the model's ``toy`` backbone in every actor by name
(``EMBEDKIT_PLUGINS=ray_backbones`` registers it in each process, as a user's own backbone module would).
One worker node is removed while the first run is analysing; a rerun completes the work, and the one
shared output folder holds each recording's table once, complete, equal to the local engine's.
"""

import os
import sys

import pytest
from conftest import lose_a_node_then_rerun
from test_analyze import _recording, make_env
from test_analyze_ray import assert_same_analysis

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'embedkit[ray]')")

from embedkit.cli import main as cli_main  # noqa: E402

pytestmark = pytest.mark.slow


def test_cli_ray_two_nodes_worker_removed_rerun_equals_local(tmp_path, two_nodes):
    cluster, worker = two_nodes
    env = make_env(tmp_path)
    for j in range(9):  # 12 recordings in all: a run long enough to lose a node in the middle
        parts = ["aaa", None, "bbb", "ccc"][j % 4 :]
        _recording(env["rec"] / f"site{j % 3}" / f"2024050{j}_060000.ogg", parts)
    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "embedkit", "analyze", "--engine", "ray", "--ray-actors", "3",
           "--models", str(env["model"]), "--audio", str(env["rec"]), "--recursive", "--out", str(out),
           "--batch-size", "1", "--no-progress"]  # fmt: skip
    run_env = {**os.environ, "RAY_ADDRESS": cluster.address}
    again = lose_a_node_then_rerun(cluster, worker, cmd, run_env, lambda: list(out.rglob("*.selections.txt")))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "(detections.csv: 12 recordings)" in again.stderr
    for p in out.rglob(".tmp-*"):  # a write cut by the node's death (SIGKILL) may leave its hidden temp file
        p.unlink()
    loc = tmp_path / "local"
    args = ["analyze", "--models", str(env["model"]), "--audio", str(env["rec"]), "--recursive"]
    assert cli_main([*args, "--out", str(loc), "--no-progress"]) == 0
    assert_same_analysis(out, loc)

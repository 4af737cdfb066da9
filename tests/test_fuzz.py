"""Property-based fuzzing of everything embedkit loads (issue 24, item 8); bounded and derandomised for CI.

Real model folders (logreg, mlp, lgbm, mil from a tiny fit), a search index, a Kaggle kit, the TOML configs
and the tables are mutated by hypothesis (``fuzz_mutate``), their hashes recomputed (``fuzz_tamper``), and
loaded in a worker process with a timeout and a memory cap (``fuzz_harness``). The property: success, or one
line (an ``EmbedkitError``) and nothing else on stderr; never a signal, a hang, a traceback, or an allocation
over the cap. Which targets run here: ``fuzz_targets.CI_TARGETS`` (``EMBEDKIT_FUZZ_TARGETS`` overrides);
examples per target: ``EMBEDKIT_FUZZ_EXAMPLES`` (default 30: 27 targets in about 2 min on 2 cores).
The long run: ``make fuzz``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz_booster import fix_tree_sizes, set_token, split_tree
from fuzz_corpus import build_corpus
from fuzz_harness import Worker, new_scratch, run_case, verdict
from fuzz_mutate import mutations
from fuzz_tamper import copy_real, rehash_model
from fuzz_targets import CI_TARGETS, needed_heads, selected
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("EMBEDKIT_FUZZ_EXAMPLES", "30"))
TESTS = Path(__file__).resolve().parent


TARGETS = selected(CI_TARGETS)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("fuzz"), heads=needed_heads(TARGETS))


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.stop()


def corpus_dim(corpus) -> int:
    return int(json.loads((corpus["model-lgbm"] / "model.json").read_text())["provenance"]["dim"])


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_fuzz_target(corpus, worker, target):
    dim, scratch = corpus_dim(corpus), new_scratch()

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(data=st.data())
    def prop(data):
        choice = data.draw(st.integers(0, 7), label="file")
        ops = data.draw(mutations(target.files[choice % len(target.files)][1]), label="mutations")
        res = run_case(worker, target, corpus, ops, choice, dim, scratch)
        what = f"{target.name}: {res['failure']} on {res['file']}"
        assert res["failure"] is None, f"{what}: {res['message'][-1500:]} | {res['stderr'][-500:]}"

    try:
        prop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_crafted_booster_through_infer_is_one_line_and_exit_2(corpus, tmp_path):
    """The user path: ``embedkit infer`` with a booster whose child link points outside its tree."""
    m = copy_real(corpus["model-lgbm"], tmp_path / "m")
    booster = m / "head" / "booster.txt"
    text = booster.read_text()
    booster.write_text(fix_tree_sizes(set_token(text, "left_child", 0, "1000", split_tree(text))))
    rehash_model(m)
    res = subprocess.run(
        [sys.executable, str(TESTS / "fault_worker.py"), "infer", "--data", str(corpus["data"]),
         "--soundscapes", str(corpus["scapes"]), "--out", str(tmp_path / "sub.csv"), "--no-progress",
         "--models", str(m)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(TESTS.parent)},
    )  # fmt: skip
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "booster.txt" in lines[0] and "left_child" in lines[0], res.stderr[-2000:]
    assert not (tmp_path / "sub.csv").exists()


def test_the_harness_sees_every_kind_of_failure(tmp_path):
    """A signal, a hang, an allocation over the cap, a traceback and an extra stderr line are each caught
    (and the worker restarted after the first two); a one-line error and a success pass."""
    w = Worker(timeout_s=5, preload=False)
    try:
        got = {k: verdict(w.run({"loader": "selftest", "path": str(tmp_path / k)}))
               for k in ("segv", "ok", "hang", "alloc", "traceback", "noise", "error")}  # fmt: skip
    finally:
        w.stop()
    assert got == {"segv": "signal", "ok": None, "hang": "hang", "alloc": "memory", "traceback": "traceback",
                   "noise": "stderr", "error": None}, got  # fmt: skip
    assert w.starts == 3

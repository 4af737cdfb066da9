"""Shared fixtures: seeded audio written to tmp_path, a cheap deterministic test backbone, the shared data."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from embedkit.backbones import Backbone, register

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``; skipped when absent, a failure when ``EMBEDKIT_REQUIRE_SHARED=1`` (CI)."""
    if not (SHARED / "xc-pr-birds").is_dir():
        if os.environ.get("EMBEDKIT_REQUIRE_SHARED") == "1":
            pytest.fail(f"EMBEDKIT_REQUIRE_SHARED=1 but {SHARED} is missing")
        pytest.skip(f"{SHARED} not present")
    return SHARED


def tone(
    duration_s: float,
    sr: int = 32000,
    freq: float = 1000.0,
    seed: int = 0,
    channels: int = 1,
    level: float = 0.3,
) -> np.ndarray:
    """A seeded test signal: a tone plus noise; float32 [n] or [n, channels]."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sr))
    t = np.arange(n) / sr
    x = level * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(n)
    x = x.astype(np.float32)
    if channels > 1:
        x = np.stack([x * (0.5 + 0.5 * c / channels) for c in range(channels)], axis=1)
    return x


def write_audio(
    path: Path,
    duration_s: float,
    sr: int = 32000,
    freq: float = 1000.0,
    seed: int = 0,
    channels: int = 1,
    fmt: str = "OGG",
    subtype: str | None = "VORBIS",
) -> Path:
    """Write a seeded test file (OGG Vorbis by default) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(duration_s, sr, freq, seed, channels), sr, format=fmt, subtype=subtype)
    return path


@register("toy")
class ToyBackbone(Backbone):
    """Deterministic, cheap test backbone: log energy in ``dim`` equal FFT bands of a 16 kHz window.

    ``$EMBEDKIT_TOY_DELAY_S`` (seconds, default 0) adds a sleep to every ``embed`` call.
    """

    sample_rate = 16000

    def __init__(
        self, dim: int = 8, window_s: float = 5.0, batch_size: int = 32, fail_after: int | None = None
    ):
        self.dim = dim
        self.window_s = window_s
        self.calls = 0
        self.fail_after = fail_after

    def embed(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        delay = float(os.environ.get("EMBEDKIT_TOY_DELAY_S") or 0)
        if delay > 0:  # spreads a subprocess run over time, so fault-injection kills land everywhere
            time.sleep(delay)
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt  # simulates Ctrl-C in the middle of a run
        spec = np.abs(np.fft.rfft(batch.astype(np.float64), axis=1)) ** 2
        bands = np.array_split(spec, self.dim, axis=1)
        return np.log1p(np.stack([b.sum(1) for b in bands], axis=1)).astype(np.float32)

    def identity(self):
        return {**super().identity(), "window_s": self.window_s}

    def weights_id(self) -> str:
        return "toy"


@register("toy-logits")
class ToyLogits(ToyBackbone):
    """:class:`ToyBackbone` with class logits (``K = 4``): the negated first 4 embedding values."""

    logits_dim = 4

    def embed_with_logits(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = self.embed(batch)
        return e, -e[:, : self.logits_dim].copy()


def toy_training_set(
    root: Path,
    emb: Path | None,
    freq: dict[str, float],
    durations: tuple[float, ...] = (6.0, 8.0, 10.0),
    seed0: int = 0,
    labels: list[str] | None = None,
    sample_labels: list[str] | None = None,
) -> Path:
    """A toy BirdCLEF root of tone recordings, embedded with the ``toy`` backbone through the CLI.

    Writes ``root/train_audio/<label>/XC<i><j>.ogg`` for each of ``labels`` (default: all of ``freq``; ``i``
    its index in ``sorted(freq)``): one recording per entry of ``durations`` (seconds), tone ``freq[label]``,
    seed ``seed0 + 10 i + j``; ``train.csv``; ``sample_submission.csv`` with ``sample_labels`` (default
    ``labels``) in that order. Then runs ``extract`` into ``emb`` unless it is None.

    Returns:
        ``root``.
    """
    import pandas as pd

    from embedkit.cli import main as cli_main

    order = sorted(freq)
    labels = order if labels is None else labels
    rows = []
    for label in labels:
        li = order.index(label)
        for j, dur in enumerate(durations):
            fn = f"{label}/XC{li}{j}.ogg"
            write_audio(root / "train_audio" / fn, dur, freq=freq[label], seed=seed0 + 10 * li + j)
            rows.append((label, "[]", fn))
    pd.DataFrame(rows, columns=["primary_label", "secondary_labels", "filename"]).to_csv(
        root / "train.csv", index=False
    )
    (root / "sample_submission.csv").write_text(",".join(["row_id", *(sample_labels or labels)]) + "\n")
    if emb is not None:
        extract = ["extract", "--backbone", "toy", "--data", str(root), "--out", str(emb), "--no-progress"]
        assert cli_main(extract) == 0
    return root


@pytest.fixture
def toy_split(tmp_path) -> Path:
    """A data root with ``train_audio/<label>/*.ogg``: 3 labels x 3 files of 3-12 s, a tone per label."""
    root = tmp_path / "data"
    for li, label in enumerate(["aaa", "bbb", "ccc"]):
        for j in range(3):
            write_audio(
                root / "train_audio" / label / f"XC{li}{j}.ogg",
                3 + 4.5 * j,
                freq=500 + 1500 * li,
                seed=10 * li + j,
            )
    return root


def write_wav(path: Path, x: np.ndarray, sr: int = 16000, subtype: str = "FLOAT", fmt: str = "WAV") -> Path:
    """Write ``x`` to ``path`` with soundfile (any format/subtype, e.g. a WAV named .ogg)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, format=fmt, subtype=subtype)
    return path


def with_nan_inf(x: np.ndarray) -> np.ndarray:
    """A copy of ``x`` with runs of NaN, +inf and -inf samples."""
    y = x.copy()
    y[1000:1500] = np.nan
    y[40000:40010] = np.inf
    y[90000:90010] = -np.inf
    return y


class NaNOnSilence(ToyBackbone):
    """A backbone that breaks on silence (as a model with an unguarded normalisation would)."""

    def embed(self, batch: np.ndarray) -> np.ndarray:
        e = super().embed(batch)
        e[np.abs(batch).max(axis=1) == 0] = np.nan
        return e


def write_sample(root: Path, labels: list[str], first: str = "row_id") -> Path:
    """A one-row ``sample_submission.csv`` in ``root`` with ``first`` and then ``labels`` as columns."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "sample_submission.csv"
    path.write_text(",".join([first, *labels]) + "\n" + ",".join(["x_5"] + ["0.5"] * len(labels)) + "\n")
    return path


@pytest.fixture
def two_nodes(monkeypatch):
    """A head node (1 CPU) and a worker node (2 CPUs) of one local Ray cluster; yields (cluster, worker).

    Its workers import ``tests/`` and the repository, and register the toy backbones (``ray_backbones``).
    """
    from ray.cluster_utils import Cluster

    tests = Path(__file__).resolve().parent
    path = os.pathsep.join([str(tests), str(tests.parent), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)  # the nodes' workers inherit this environment
    monkeypatch.setenv("EMBEDKIT_PLUGINS", "ray_backbones")
    monkeypatch.setenv("EMBEDKIT_TOY_DELAY_S", "0.3")
    mem = 80 * 1024**2
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": mem})
    worker = cluster.add_node(num_cpus=2, object_store_memory=mem)
    cluster.wait_for_nodes()
    yield cluster, worker
    cluster.shutdown()


def lose_a_node_then_rerun(cluster, worker, cmd: list[str], env: dict, started):
    """Run ``cmd``; once ``started()`` (its first output exists), remove ``worker``; then run it again.

    Returns the rerun's ``subprocess.CompletedProcess`` (its output captured). Fails when the first run ended
    before the node could be removed.
    """
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not started() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    mid_run = first.poll() is None
    cluster.remove_node(worker)  # one worker node dies mid-run
    try:
        first.communicate(timeout=90)
    except subprocess.TimeoutExpired:  # Ray may wait for the lost node; the rerun finishes the work
        first.kill()
        first.communicate()
    assert mid_run, "the first run ended before a node could be removed"
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)

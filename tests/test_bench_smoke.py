"""Smoke runs of the scale benchmark and of the GPU check script at tiny size (benchmarks, not timed)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_bench_scale_tiny_measures_every_head(tmp_path):
    out = tmp_path / "rows.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_scale.py"), "--tiny", "--heads",
                        "logreg", "mil", "--json-out", str(out)], capture_output=True, text=True,
                       timeout=1500)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [(x["n"], x["head"]) for x in rows] == [(1500, "logreg"), (1500, "mil"), (3000, "logreg"),
                                                     (3000, "mil")]
    assert all(x["fit_s"] > 0 and x["rss_peak_gb"] >= x["rss_read_gb"] > 0 for x in rows)
    assert all(0 <= x["auc"] <= 1 for x in rows)
    assert "Growth exponents" in r.stdout and "ratio: mil at 3000 windows" in r.stdout


def test_gpu_check_parses_and_its_python_runs_on_cpu(tmp_path):
    sh = REPO / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(sh)]).returncode == 0
    out = tmp_path / "gpu.md"
    r = subprocess.run(["bash", str(sh), "--cpu-dry-run", "--out", str(out)], capture_output=True, text=True,
                       timeout=900, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    text = out.read_text()
    assert text.startswith("<!-- gpu-check:start -->") and text.rstrip().endswith("<!-- gpu-check:end -->")
    for row in ("panns fp32", "panns bf16", "panns fp16", "wav2vec2 tiny", "| mlp |", "| mil |"):
        assert row in text
    assert "onnx" in text  # measured, or a line saying why it was skipped


def test_perch_budget_standin_has_perch_shapes_through_the_perch_backbone(tmp_path):
    """The benchmark's Perch v2 stand-in loads through ``--backbone perch`` with Perch v2's shapes."""
    import numpy as np

    sys.path.insert(0, str(REPO / "benchmarks"))
    import _perch_b3

    from embedkit.backbones import get_backbone

    _perch_b3.export_onnx(tmp_path / "perch_v2.onnx", n_classes=20)
    (tmp_path / "labels.csv").write_text("inat2024_fsd50k\n" + "".join(f"Species {i}\n" for i in range(20)))
    bb = get_backbone("perch", weights=str(tmp_path / "perch_v2.onnx"), threads=1)
    x = np.random.default_rng(0).normal(0, 0.1, (2, _perch_b3.SAMPLES)).astype(np.float32)
    emb, logits = bb.embed_with_logits(x)
    assert emb.shape == (2, 1536) and logits.shape == (2, 20) and np.isfinite(emb).all()
    assert len(bb.classes().names) == 20

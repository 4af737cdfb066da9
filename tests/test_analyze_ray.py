"""``embedkit analyze --engine ray`` through the CLI on a local 2-CPU Ray: the local engine's tables.

The toy model's backbone is built in every actor by name (``EMBEDKIT_PLUGINS=ray_backbones`` registers it in
each worker, as a user's own backbone module would). Recordings: a nested folder with two same-named files in
two site folders, and an unreadable file.
"""

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_analyze import make_env

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'embedkit[ray]')")

from embedkit.cli import main as cli_main  # noqa: E402
from embedkit.tables.detections import read_detections  # noqa: E402

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent
SAME_NAMED = ["siteA/20240501_060000.selections.txt", "siteB/20240501_060000.selections.txt"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = make_env(tmp_path_factory.mktemp("analyze-ray"))
    (e["rec"] / "siteB" / "broken.ogg").write_bytes(b"not audio at all" * 100)
    return e


@pytest.fixture(scope="module")
def local_ray():
    path = os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "EMBEDKIT_PLUGINS": "ray_backbones"}})
    yield
    ray.shutdown()


def analyze(env, out, *extra):
    args = ["analyze", "--models", str(env["model"]), "--audio", str(env["rec"]), "--recursive"]
    return cli_main([*args, "--out", str(out), "--no-progress", *extra])


def outputs(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def assert_same_analysis(got: Path, want: Path) -> None:
    """Same files; same tables (scores within float tolerance); same settings."""
    assert outputs(got) == outputs(want)
    for t in outputs(want):
        if t.endswith(".selections.txt"):
            rel = t.replace(".selections.txt", ".ogg")
            pd.testing.assert_frame_equal(read_detections(got / t, "raven", rel),
                                          read_detections(want / t, "raven", rel), atol=1e-5)  # fmt: skip
    for t in ("detections.csv", "summary.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(got / t), pd.read_csv(want / t), atol=1e-5)
    assert json.loads((got / "analysis.json").read_text()) == json.loads((want / "analysis.json").read_text())


def test_ray_tables_equal_the_local_engine_bad_file_named_and_rerun_skips(env, tmp_path, local_ray, capsys):
    loc, out = tmp_path / "local", tmp_path / "ray"
    assert analyze(env, loc) == 1  # the unreadable recording fails; the others get their tables
    capsys.readouterr()
    assert analyze(env, out, "--engine", "ray") == 1
    err = capsys.readouterr().err
    assert "3 recordings analysed" in err and "1 failed" in err
    assert "could not analyse siteB/broken.ogg" in err and "Traceback" not in err
    assert set(SAME_NAMED) <= set(outputs(out)) and not (out / "siteB" / "broken.selections.txt").exists()
    assert_same_analysis(out, loc)
    det = pd.read_csv(out / "detections.csv")
    assert set(det["file"]) == {"siteA/20240501_060000.ogg", "siteB/20240501_060000.ogg", "top.ogg"}
    tables = [out / t for t in outputs(out) if t.endswith(".selections.txt")]
    stamp = {t: t.stat().st_mtime_ns for t in tables}
    assert analyze(env, out, "--engine", "ray") == 1  # resume: the done ones skipped, the bad one retried
    err = capsys.readouterr().err
    assert "0 recordings analysed" in err and "3 skipped" in err and "1 failed" in err
    assert {t: t.stat().st_mtime_ns for t in tables} == stamp
    assert_same_analysis(out, loc)


def test_ray_finishes_a_local_part_run_and_the_combined_tables_cover_both(env, tmp_path, local_ray, capsys):
    rec = tmp_path / "rec"
    shutil.copytree(env["rec"], rec, ignore=shutil.ignore_patterns("broken.ogg"))
    env = {**env, "rec": rec}
    out, full = tmp_path / "out", tmp_path / "full"
    assert analyze(env, out, "--part", "0/2") == 0
    n0 = len(list(out.rglob("*.selections.txt")))
    assert 0 < n0 < 3
    capsys.readouterr()
    assert analyze(env, out, "--engine", "ray", "--ray-actors", "2") == 0
    err = capsys.readouterr().err
    assert f"{3 - n0} recordings analysed" in err and f"{n0} skipped" in err and "(detections.csv: 3 " in err
    assert analyze(env, full) == 0
    assert_same_analysis(out, full)


def test_ray_refuses_settings_of_another_run_in_one_line(env, tmp_path, local_ray, capsys):
    out = tmp_path / "out"
    shutil.copytree(env["rec"], tmp_path / "rec", ignore=shutil.ignore_patterns("broken.ogg", "site*"))
    env = {**env, "rec": tmp_path / "rec"}
    assert analyze(env, out) == 0
    capsys.readouterr()
    assert analyze(env, out, "--engine", "ray", "--min-score", "0.9") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "min_score" in err[0] and "--overwrite" in err[0]

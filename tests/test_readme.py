"""The README is a test: every command of every ```bash block of README.md and every ``--help`` example.

(a) ``test_parses``: each documented embedkit command parses with the real parser (abbreviations off), so a
renamed or removed flag fails; ``make`` lines name a Makefile target and variables; anything else must be in
:data:`EXTERNAL`. A block added to the README later is picked up without touching this file.

(b) ``test_runs``: each command runs as written through the real CLI (a shell, ``python extract.py ...`` /
``embedkit ...`` as a subprocess, the shipped defaults, nothing injected), in README order (then the help
examples) in one shared workspace, with only the differences listed in the tables below: paths to data and
model files this machine cannot have become tiny real data and stand-in models (``tests/readme_data.py``),
sizes shrink. ``test_outputs_are_ignored_by_git`` then checks that what they wrote is covered by .gitignore.
The convention is documented in docs/CONTRACTS.md ("Documented commands are tests").
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from readme_commands import (
    ROOT,
    Doc,
    embedkit_argv,
    help_examples,
    make_targets,
    parse_check,
    readme_commands,
)
from readme_session import Session, plain

# ---------------------------------------------------------------------------------------------------------
# THE substitution table: (as documented, as run, why). Applied in this order to the command text, at word
# boundaries (the documented text must stand alone or be followed by / : " or a space; tokens like
# ``tune/truth.csv`` are not touched by ``truth.csv``). {data}, {ws}, ... are filled in by the session.
SUBSTITUTIONS: list[tuple[str, str, str]] = [
    # programs
    ("extract.py", "{repo}/extract.py", "the scripts run from the workspace, not from the checkout"),
    ("fit.py", "{repo}/fit.py", "(same)"),
    ("infer.py", "{repo}/infer.py", "(same)"),
    # data
    (
        "mydata",
        "{mydata}",
        "a writable folder: the tiny set's train_audio/ and its 2 test soundscapes as unlabelled/",
    ),
    ("/kaggle/input/perch-v2/perch_v2.onnx", "{perch}", "Perch v2 weights cannot be downloaded: stand-in"),
    ("/kaggle/input/birdclef-2025", "{data}", "tiny BirdCLEF-layout dataset cut from ../shared/data"),
    ("/shared/birdclef-2025", "{data}", "(same)"),
    ("../shared/data/xc-pr-birds", "{data}", "(same; it is a subset of xc-pr-birds in its own layout)"),
    ("../shared/data/backgrounds", "{data}/train_soundscapes", "3 of its field recordings, trimmed"),
    ("DATA", "{data}", "the README's placeholder for a data root"),
    ("sample_submission.csv", "{data}/sample_submission.csv", "Kaggle's file, in the data root"),
    ("test_soundscapes/", "{data}/test_soundscapes/", "(same)"),
    ("test/", "{data}/test_soundscapes/", "(same)"),
    ("truth.csv", "{data}/test_truth.csv", "labels of the test soundscapes (the README's 'your own labels')"),
    ("test_truth.csv", "{data}/test_truth.csv", "(same)"),
    (
        "train_soundscapes_labels.csv",
        "{extra}/train_soundscapes_labels.csv",
        "long-form truth (filename, start, end, primary_label) of the test soundscapes",
    ),
    ("labels.txt", "{extra}/labels.txt", "a label list: banana, smbani"),
    ("call.wav", "{data}/train_audio/banana/XC46631.ogg", "a query clip"),
    # model files
    ("/path/Cnn14_mAP=0.431.pth", "{panns}", "PANNs weights cannot be downloaded: random-weight Cnn14"),
    ("/shared/Cnn14_mAP=0.431.pth", "{panns}", "(same)"),
    ("Cnn14_mAP=0.431.pth", "{panns}", "(same)"),
    ("/path/to/local/hf/wav2vec2-base", "{w2v}", "no wav2vec2 download: tiny random 9-layer model"),
    ("perch_v2.onnx", "{perch}", "Perch v2 stand-in with its interface (tests/onnx_models.py)"),
    ("birdset_effnet.onnx", "{onnx}", "a small ONNX model with the described input/output"),
    ("birdset.toml", "{onnx_toml}", "its description"),
    ("model.tflite", "{tflite}", "BirdNET's own .tflite file (bundled), read through the generic path"),
    ("/shared/embeddings", "{shared}", "the cluster's shared folder (outside the workspace)"),
    ("demo_run/models", "models", "make demo is not run (NOT_EXECUTED): the workspace's models root"),
    # sizes
    ("--soundscapes 12", "--soundscapes 1", "1 composed soundscape per fold, not 12"),
    ("--seed 0 1", "--seed 0", "one composition seed"),
    ("--n 20", "--n 2", "2 one-minute soundscapes, not 20"),
]
#: environment a command runs under: (substring of the documented command, variables, why)
ENV: list[tuple[str, dict[str, str], str]] = [
    ("--part auto", {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "2",
                     "SLURM_CPUS_PER_TASK": "1"}, "task 0 of a 2-task Slurm array (no Slurm here)"),
]  # fmt: skip
#: stdin of a command: (documented prefix, text, why)
STDIN: list[tuple[str, str, str]] = [
    ("embedkit label --hits", "y\nn\ny\nq\n", "the answers a user types: y, n, y, quit"),
]
#: made before a command runs, what the README's prose says it needs: (documented prefix, setup, why)
SETUP: list[tuple[str, str, str]] = [
    ("embedkit upgrade-model", "legacy",
     "the named model folders rewritten as embedkit 0.1 saved them (pickled heads, format 1; "
     "tests/test_model_trust.legacy_copy)"),
]  # fmt: skip
#: run later than documented: (documented command, run right after this one, why)
AFTER: list[tuple[str, str, str]] = [
    ("python fit.py --tune-on tune --tune-truth tune/truth.csv",
     "python extract.py --files tune --name tune --save-logits",
     "needs the soundscapes that 'Tune on soundscapes' composes and extracts further down"),
]  # fmt: skip
#: documented but not run (still parse-checked): (documented command or prefix, why)
NOT_EXECUTED: list[tuple[str, str]] = [
    ("make test", "it is this test suite (it would run itself)"),
    ("make demo", "~3 min on 2 cores; runs `embedkit demo`, whose steps are the extract/fit/infer/score/"
                  "report commands run here; its dataset is tested by tests/test_demo_data.py"),
    ("embedkit demo", "(same as make demo)"),
    ("embedkit kaggle-kit", "downloads ~90 MB of wheels for Kaggle's platform; tests/test_kaggle_kit.py "
                            "builds a kit for this machine offline and installs it into a fresh venv"),
    ("make kaggle-kit", "(same)"),
    ("ray start", "starts a machine-wide Ray daemon (port 6379) shared with every other job on the machine"),
    ("python extract.py --engine ray --ray-address auto", "needs the cluster `ray start` makes (above)"),
    ("python -m embedkit analyze --engine ray --ray-address auto", "needs the cluster `ray start` makes"),
]  # fmt: skip
#: programs that are not embedkit's (not parse-checked by argparse)
EXTERNAL = ("ray start", "(echo", "mkdir", "cp ", "printf")
# ---------------------------------------------------------------------------------------------------------

TIMEOUT_S = 300


def documented() -> list[Doc]:
    """README commands, then help examples, each distinct text once (the first place it is documented)."""
    seen: set[str] = set()
    out = []
    for d in readme_commands() + help_examples():
        key = " ".join(d.tokens)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def _match(d: Doc, prefix: str) -> bool:
    return plain(d).startswith(prefix)


def execution_order(docs: list[Doc]) -> list[Doc]:
    moved = {a: b for a, b, _ in AFTER}
    order = [d for d in docs if plain(d) not in moved]
    for d in docs:
        if plain(d) in moved:
            at = next(i for i, e in enumerate(order) if plain(e) == moved[plain(d)])
            order.insert(at + 1, d)
    return order


def not_executed(d: Doc) -> str | None:
    return next((why for prefix, why in NOT_EXECUTED if _match(d, prefix)), None)


DOCS = documented()


@pytest.mark.parametrize("doc", DOCS, ids=[f"{d.where}:{plain(d)[:60]}" for d in DOCS])
def test_parses(doc: Doc):
    tokens = doc.tokens
    if tokens[0] == "make":
        targets, variables = make_targets()
        assert tokens[1] in targets, f"{doc.where}: no Makefile target {tokens[1]!r}"
        for t in tokens[2:]:
            assert t.split("=")[0] in variables, f"{doc.where}: no Makefile variable {t!r}"
        return
    argv = embedkit_argv([t if not t.startswith("$") else "1" for t in tokens])
    if argv is None:
        assert any(_match(doc, e) for e in EXTERNAL), f"{doc.where}: unknown program in {doc.text!r}"
        return
    err = parse_check(argv)
    assert err is None, f"{doc.where}: {doc.text!r} does not parse: {err}"


def test_tables_name_documented_commands():
    """A table entry whose command is no longer documented is stale: it would hide nothing but mislead."""
    texts = [plain(d) for d in DOCS]
    for prefix, _ in NOT_EXECUTED:
        assert any(p.startswith(prefix) for p in texts), prefix
    for prefix, _, _ in SETUP:
        assert any(p.startswith(prefix) for p in texts), prefix
    for a, b, _ in AFTER:
        assert a in texts and b in texts, (a, b)
    whole = " ".join(d.text for d in DOCS)
    for doc, _, _ in SUBSTITUTIONS:
        assert doc in whole, f"substitution {doc!r} matches no documented command"


@pytest.fixture(scope="session")
def session(tmp_path_factory) -> Session:
    from conftest import SHARED

    if not (SHARED / "xc-pr-birds").is_dir():  # as the shared_data fixture (function-scoped) does
        if os.environ.get("EMBEDKIT_REQUIRE_SHARED") == "1":
            pytest.fail(f"EMBEDKIT_REQUIRE_SHARED=1 but {SHARED} is missing")
        pytest.skip(f"{SHARED} not present")
    order = [d for d in execution_order(DOCS) if not not_executed(d)]
    return Session(tmp_path_factory.mktemp("readme"), SHARED, order, sys.modules[__name__])


EXECUTED = [d for d in execution_order(DOCS) if not not_executed(d)]


@pytest.mark.slow
@pytest.mark.parametrize("doc", EXECUTED, ids=[f"{d.where}:{plain(d)[:60]}" for d in EXECUTED])
def test_runs(doc: Doc, session: Session):
    rc, out, _ = session.run(doc)
    text, _, _ = session.command(doc)
    assert rc == 0, f"{doc.where}: {doc.text!r} exited {rc}\nran: {text}\n{out[-3000:]}"


@pytest.mark.slow
def test_outputs_are_ignored_by_git(session: Session):
    """Everything the documented commands wrote into the working folder is covered by .gitignore."""
    session.run_all()
    st = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=session.ws,
                        capture_output=True, text=True, check=True).stdout.splitlines()  # fmt: skip
    assert [s for s in st if s != "?? .gitignore"] == []


def test_readme_onnx_export_line_runs(tmp_path, monkeypatch):
    """The README's inline ``torch.onnx.export(...)`` line, run as written on a small model."""
    import numpy as np
    import onnxruntime as ort
    import torch

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    line = re.search(r"`(torch\.onnx\.export\(.*?\))`", text, flags=re.S).group(1)
    model = torch.nn.Sequential(torch.nn.Linear(160, 8)).eval()
    x = torch.zeros(2, 160)
    monkeypatch.chdir(tmp_path)
    eval(compile(line, "README.md", "eval"), {"torch": torch, "model": model, "x": x})
    out = ort.InferenceSession("model.onnx").run(["embedding"], {"audio": np.ones((3, 160), np.float32)})[0]
    assert out.shape == (3, 8)


def test_version_matches_the_package():
    import tomllib

    from embedkit import __version__

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == __version__
    p = subprocess.run(
        [sys.executable, "-m", "embedkit", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert (p.returncode, p.stdout.strip()) == (0, f"embedkit {__version__}"), p.stderr


def test_contents_lists_every_section():
    """The README's table of contents links every ``##`` section (add a new one there)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    for title in re.findall(r"^## (.+)$", text, flags=re.M):
        if title != "Contents":
            anchor = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
            assert f"(#{anchor})" in contents, f"README contents: no link to '## {title}' (#{anchor})"

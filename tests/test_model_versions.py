"""Model folders copy like folders, replacements are announced and kept, loads never see a half-made version.

Issue 21.4 (``models/NAME`` is a real folder: ``cp -r`` / ``copytree`` copies a working model; a replaced
version is kept, listed by ``embedkit models``, restored by ``embedkit models rollback``) and issue 24.5 (a
load racing two saves of the same name gets one whole version, never "head files missing").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedkit.cli import main as cli_main
from embedkit.heads.logreg import LogRegHead
from embedkit.predict import model as pm
from embedkit.predict.model import load_model, save_model
from embedkit.store import atomic
from embedkit.store.versions import kept_versions

LABELS = ["aaa", "bbb", "ccc"]
PROV = {"backbone": "toy", "dim": 8}
X = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def head():
    Y = np.eye(3, dtype=bool)[np.arange(60) % 3]
    return LogRegHead(C=1.0).fit(X + Y @ np.ones((3, 8), np.float32), Y)


def save_v(final: Path, head, v: int) -> Path:
    """Save version ``v``: ``head.C == v`` and ``meta["version"] == v`` (a mixed load would disagree)."""
    head.C = float(v)
    return save_model(final, head, "logreg", LABELS, PROV, {"version": v, "cv": {"roc_auc": 0.5 + v / 100}})


def version(m) -> int:
    assert m.head.C == m.meta["version"], "model.json and head/ of different versions"
    return m.meta["version"]


def test_a_saved_model_is_a_real_folder_that_copies_and_loads(head, tmp_path):
    final = save_v(tmp_path / "models" / "m", head, 1)
    save_v(final, head, 2)
    assert final.is_dir() and not final.is_symlink()
    cp = tmp_path / "cp"
    subprocess.run(["cp", "-r", str(final), str(cp)], check=True)
    tree = shutil.copytree(final, tmp_path / "tree")
    want = load_model(final).predict(X)
    for copy in (cp, tree):
        assert version(load_model(copy)) == 2
        np.testing.assert_array_equal(load_model(copy).predict(X), want)


def test_replacing_says_so_keeps_the_last_three_and_rolls_back(head, tmp_path, capsys):
    root = tmp_path / "models"
    final = root / "m"
    save_v(final, head, 1)
    assert "replaced" not in capsys.readouterr().err
    for v in range(2, 6):
        save_v(final, head, v)
        err = capsys.readouterr().err
        kept = kept_versions(final)[0]
        assert f"replaced {final}" in err and str(kept) in err and "rollback" in err, err
        assert version(load_model(kept)) == v - 1
    assert [version(load_model(p)) for p in kept_versions(final)] == [4, 3, 2]  # the last 3, newest first
    assert sorted(p.name for p in root.iterdir()) == sorted(["m", *(p.name for p in kept_versions(final))])

    assert cli_main(["models", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:4] == ["m", "toy", "logreg", "3"] and "0.5500" in out[1]  # CV ROC-AUC of v5
    assert [line.split()[:2] for line in out[2:5]] == [["kept", p.name] for p in kept_versions(final)]

    assert cli_main(["models", "rollback", str(final)]) == 0  # v4 back; v5 kept
    assert version(load_model(final)) == 4 and version(load_model(kept_versions(final)[0])) == 5
    assert cli_main(["models", "rollback", str(final)]) == 0  # a second rollback undoes the first
    assert version(load_model(final)) == 5
    oldest = kept_versions(final)[-1]
    assert cli_main(["models", "rollback", str(final), "--to", oldest.name]) == 0
    assert version(load_model(final)) == 2 and len(kept_versions(final)) == 3
    capsys.readouterr()
    assert cli_main(["models", "rollback", str(root / "other")]) == 2
    assert cli_main(["models", "rollback"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "other: no such model" in err[0] and "rollback NAME" in err[1], err
    save_v(root / "one", head, 1)
    assert cli_main(["models", "rollback", str(root / "one")]) == 2
    assert "one: no kept version" in capsys.readouterr().err


def test_a_load_reads_one_whole_version_while_saves_swap_the_name(head, tmp_path, monkeypatch):
    """Scripted timing: ``model.json`` of v1 is read, then other saves publish, then ``head/`` is read.

    Two saves meanwhile: the load finishes v1 (it reads through the folder it opened). Five saves: v1 is
    pruned under it (3 kept), so the load is retried and gets v6. Before: "head files missing" 3 of 3.
    """
    final = save_v(tmp_path / "m", head, 1)
    real_load_head = pm._load_head
    for n_saves, want in ((2, 1), (5, 6)):
        save_v(final, head, 1)
        other = LogRegHead(C=1.0).fit(X, np.eye(3, dtype=bool)[np.arange(60) % 3])
        calls = []

        def racing(f, real, meta, trust, n=n_saves, other=other, calls=calls):
            if not calls:
                for v in range(2, 2 + n):
                    save_v(final, other, v)
            calls.append(1)
            return real_load_head(f, real, meta, trust)

        monkeypatch.setattr(pm, "_load_head", racing)
        assert version(load_model(final)) == want
        assert len(calls) == (1 if want == 1 else 2)


def _saver(final: Path, head, start: int, n: int, log: Path) -> None:
    """A forked process saving versions ``start .. start+n-1`` of ``final`` (its stderr into ``log``)."""
    with open(log, "w") as sys.stderr:
        for v in range(start, start + n):
            save_v(final, head, v)
    os._exit(0)


def test_loads_racing_two_concurrent_savers_always_get_a_whole_version(head, tmp_path):
    """Two processes save the same name 15 times each while this one loads it in a loop: no error ever."""
    import multiprocessing

    final = save_v(tmp_path / "models" / "m", head, 0)
    fork = multiprocessing.get_context("fork")
    savers = [fork.Process(target=_saver, args=(final, head, start, 15, tmp_path / f"log{start}"))
              for start in (100, 200)]  # fmt: skip
    for s in savers:
        s.start()
    seen, loads = set(), 0
    t0 = time.monotonic()
    while any(s.is_alive() for s in savers) and time.monotonic() - t0 < 60:
        seen.add(version(load_model(final)))
        loads += 1
    for s in savers:
        s.join()
    assert all(s.exitcode == 0 for s in savers)
    for start in (100, 200):  # serialised: each save replaced one whole version and said so
        assert (tmp_path / f"log{start}").read_text().count("[models] replaced") == 15
    assert loads > 5 and seen <= {0, *range(100, 115), *range(200, 215)} and len(seen) > 1, (loads, seen)
    assert version(load_model(final)) in (114, 214)
    names = sorted(p.name for p in final.parent.iterdir())
    assert names == sorted(["m", *(p.name for p in kept_versions(final))]) and len(names) == 4


def test_the_symlinked_layout_still_loads_and_the_next_save_makes_a_folder(head, tmp_path, capsys):
    """Folders of the previous version: ``m -> .m.v-...`` plus one earlier ``.v-`` version."""
    root = tmp_path / "models"
    tmp = save_v(tmp_path / "a", head, 1)
    root.mkdir()
    earlier = root / ".m.v-20250101T000000-abcdef-999999@gone"
    current = root / ".m.v-20250102T000000-abcdef-999998@gone"
    shutil.copytree(tmp, earlier)
    save_v(tmp, head, 2)
    shutil.copytree(tmp, current)
    (root / "m").symlink_to(current.name)
    final = root / "m"
    assert version(load_model(final)) == 2
    assert cli_main(["models", str(root)]) == 0
    assert "(symlinked layout)" in capsys.readouterr().out
    save_v(final, head, 3)
    assert final.is_dir() and not final.is_symlink() and version(load_model(final)) == 3
    assert [version(load_model(p)) for p in kept_versions(final)] == [2, 1]  # nothing written earlier lost
    assert sorted(p.name for p in root.iterdir()) == sorted(["m", *(p.name for p in kept_versions(final))])


def test_without_renameat2_a_gap_left_by_a_killed_save_is_closed_by_the_next_load(
    head, tmp_path, monkeypatch
):
    """The fallback's two renames: a save dead between them leaves no name; a load restores the new one."""
    final = save_v(tmp_path / "m", head, 1)
    staged = atomic.staging_dir(final)
    head.C = 2.0
    head.save(staged / "head")
    from embedkit.store.manifest import manifest

    doc = {"format": pm.FORMAT, "head": "logreg", "labels": LABELS, "provenance": PROV, "version": 2}
    (staged / "model.json").write_text(json.dumps({**doc, "files": manifest(staged)}))
    dead = "999999@" + atomic.host()  # what a killed writer's names carry
    swap = final.with_name(f".m.swap-{final.lstat().st_ino}-abcdef-{dead}")
    os.rename(staged, swap)  # the new version, renamed for the swap (the inode of the NAME it replaces)
    os.rename(final, final.with_name(f".m.aside-abcdef-{dead}"))  # NAME renamed aside ... killed here
    assert not final.exists()
    assert version(load_model(final)) == 2
    assert [version(load_model(p)) for p in kept_versions(final)] == [1]


def test_models_command_from_a_shell_with_the_defaults(head, tmp_path):
    """``embedkit models`` and ``embedkit models rollback NAME`` as typed, in a folder holding ``models/``."""
    final = save_v(tmp_path / "models" / "birdnet-logreg", head, 1)
    save_v(final, head, 2)
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "embedkit", "models", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True)  # fmt: skip

    listed = run()
    assert listed.returncode == 0 and listed.stdout.splitlines()[1].startswith("birdnet-logreg "), listed
    assert "kept .birdnet-logreg.prev-" in listed.stdout
    back = run("rollback", "birdnet-logreg")
    assert back.returncode == 0 and "is now the version kept as" in back.stdout, back
    assert version(load_model(final)) == 1 and version(load_model(kept_versions(final)[0])) == 2


def test_kit_copies_one_whole_version_while_fit_replaces_the_model(head, tmp_path, monkeypatch):
    """``embedkit kaggle-kit`` copies a model that a fit replaces mid-copy: every file from one version."""
    from embedkit import kaggle_kit as kk

    final = save_v(tmp_path / "models" / "m", head, 1)
    copy = shutil.copyfile
    swapped = []

    def swap_then_copy(src, dst, *a, **kw):
        if not swapped:  # after model.json was read, before its files: a new version takes the name
            swapped.append(True)
            save_v(final, head, 2)
        return copy(src, dst, *a, **kw)

    monkeypatch.setattr(kk.shutil, "copyfile", swap_then_copy)
    assert kk.copy_models([final], tmp_path / "kit") == ["m"]
    monkeypatch.undo()
    assert swapped and version(load_model(final)) == 2
    assert version(load_model(tmp_path / "kit" / "m")) == 1  # not a mix of 1 and 2: hashes and C agree

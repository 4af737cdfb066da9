"""What an attacker does after editing a file: recompute the hashes that would otherwise give the edit away.

Hashes in ``model.json`` (``files``), ``index.json`` (``files.*.sha256``) and ``kit.json`` (``sha256``)
prove that a file is unchanged since its manifest was written, not who wrote it. The fuzzer and the crafted
booster tests tamper with a file and then call :func:`rehash` so that the loader's checks of the *content*
are what is tested, not the hash check.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from embedkit.files import sha256_file
from embedkit.store.manifest import manifest


def copy_real(src: Path, dst: Path) -> Path:
    """Copy a model / index / kit folder as regular files (a model name is a symlink to its version)."""
    shutil.copytree(Path(src).resolve(), dst, symlinks=False)
    return dst


def rehash_model(folder: Path) -> None:
    """Rewrite ``model.json``'s ``files`` with the SHA-256 of every other file in ``folder``."""
    meta_path = folder / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["files"] = manifest(folder, skip=("model.json",))
    meta_path.write_text(json.dumps(meta, indent=1))


def rehash_index(folder: Path) -> None:
    """Rewrite ``index.json``'s ``files.{graph,rows}.sha256`` for the files they name."""
    meta_path = folder / "index.json"
    meta = json.loads(meta_path.read_text())
    for entry in meta["files"].values():
        entry["sha256"] = sha256_file(folder / entry["name"])
    meta_path.write_text(json.dumps(meta, indent=1))


def rehash_kit(folder: Path) -> None:
    """Rehash each model of a kit, then rewrite ``kit.json``'s ``sha256`` for ``wheels/`` and ``models/``."""
    for meta in sorted((folder / "models").glob("*/model.json")):
        try:
            rehash_model(meta.parent)
        except (ValueError, TypeError, AttributeError, RecursionError):
            pass  # a model.json the edit broke: its hashes stay as they were
    kit_path = folder / "kit.json"
    kit = json.loads(kit_path.read_text())
    kit["sha256"] = {
        f"{part}/{rel}": sha
        for part in ("wheels", "models")
        if (folder / part).is_dir()
        for rel, sha in manifest(folder / part).items()
    }
    kit_path.write_text(json.dumps(kit, indent=1))


#: folder kind -> the function that recomputes its hashes
REHASH = {"model": rehash_model, "index": rehash_index, "kit": rehash_kit}


def tamper(folder: Path, kind: str, rel: str, edit) -> None:
    """Apply ``edit(bytes) -> bytes`` to ``folder/rel`` and recompute the folder's hashes.

    Args:
        folder: a model, index or kit folder (regular files).
        kind: ``model``, ``index`` or ``kit`` (a file of no kind: no hashes to recompute).
        rel: the file's path inside ``folder``.
        edit: the change, on the file's bytes.
    """
    path = folder / rel
    path.write_bytes(edit(path.read_bytes()))
    if kind in REHASH:
        REHASH[kind](folder)

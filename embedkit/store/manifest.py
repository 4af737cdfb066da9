"""Hashes of every file in a folder, and the check that a folder still is what its manifest says.

Saved models list the SHA-256 of each of their files in ``model.json`` (``files``); loading refuses a folder
with a changed, missing or extra file, or with anything but regular files and folders (a symlink inside a
model could make a reader open any file of the machine). The Kaggle kit lists its files the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

from embedkit.files import sha256_file


def walk_regular(folder: Path, skip: tuple[str, ...] = ()) -> list[str]:
    """Relative POSIX paths of the files below ``folder`` (sorted), ``skip`` names at the top left out.

    Raises:
        ValueError: a symlink, device, pipe or socket below ``folder`` (named in the message).
    """
    out = []
    for root, dnames, fnames in os.walk(folder):
        for n in dnames + fnames:
            p = Path(root) / n
            rel = p.relative_to(folder).as_posix()
            if rel in skip:
                continue
            if p.is_symlink() or not (p.is_dir() or p.is_file()):
                raise ValueError(f"{p}: not a regular file or folder (a link or special file)")
            if p.is_file():
                out.append(rel)
    return sorted(out)


def manifest(folder: str | os.PathLike, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """``{relative path: SHA-256}`` of every file below ``folder`` but ``skip`` (regular files only)."""
    root = Path(folder)
    return {rel: sha256_file(root / rel) for rel in walk_regular(root, skip)}


def verify(folder: str | os.PathLike, expected: dict[str, str], skip: tuple[str, ...] = ()) -> str | None:
    """The first difference between ``folder`` and its manifest ``expected`` as one line, or None.

    Checks that no file is missing, none is extra, none changed, and nothing is a link or special file.
    """
    root = Path(folder)
    try:
        have = walk_regular(root, skip)
    except ValueError as e:
        return str(e)
    extra = sorted(set(have) - set(expected))
    missing = sorted(set(expected) - set(have))
    if extra:
        return f"{root / extra[0]}: a file the manifest does not list"
    if missing:
        return f"{root / missing[0]}: listed in the manifest but missing"
    for rel in have:
        if sha256_file(root / rel) != expected[rel]:
            return f"{root / rel}: changed since it was saved (SHA-256 differs)"
    return None


__all__ = ["manifest", "sha256_file", "verify", "walk_regular"]

"""``embedkit models``: saved models and their kept versions; ``embedkit models rollback NAME``.

A save that replaces ``models/NAME`` keeps the replaced version as ``models/.NAME.prev-<time>-<id>/`` (the
last :data:`~embedkit.store.atomic.KEEP_VERSIONS`; :mod:`embedkit.store.atomic`). ``embedkit models [ROOT]``
lists each model (name, backbone, head, labels, CV ROC-AUC, when it was saved) with its kept versions,
newest first. ``rollback`` makes the newest kept version current again (or the one ``--to`` names), in one
atomic swap; the version it replaces is kept in turn, so a second ``rollback`` undoes the first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from embedkit.errors import UsageError
from embedkit.store.atomic import KEEP_VERSIONS
from embedkit.store.versions import kept_versions, rollback

_PREV = ".prev-"


def describe(folder: Path) -> dict[str, Any]:
    """``name, backbone, head, labels, cv, saved`` of a model folder, from its ``model.json``."""
    try:
        meta = json.loads((folder / "model.json").read_text())
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        return {"backbone": "?", "head": "?", "labels": "?", "cv": "-", "saved": f"unreadable ({e})"}
    prov = meta.get("provenance") if isinstance(meta.get("provenance"), dict) else {}
    parts = meta.get("fusion") if isinstance(meta.get("fusion"), list) else []
    names = [str(p.get("backbone", "?")) for p in parts if isinstance(p, dict)]
    cv = meta.get("cv") if isinstance(meta.get("cv"), dict) else {}
    auc = cv.get("roc_auc")
    return {
        "backbone": "+".join(names) if names else str(prov.get("backbone", "?")),
        "head": str(meta.get("head", "?")),
        "labels": len(meta["labels"]) if isinstance(meta.get("labels"), list) else "?",
        "cv": f"{auc:.4f}" if isinstance(auc, int | float) else "-",
        "saved": str(meta.get("created", "?")),
    }


def model_names(root: Path) -> list[str]:
    """Names of the models in ``root``: visible folders with ``model.json`` and names with kept versions."""
    names = {p.parent.name for p in root.glob("*/model.json") if not p.parent.name.startswith(".")}
    for p in root.iterdir():
        if p.name.startswith(".") and _PREV in p.name:
            names.add(p.name[1:].rpartition(_PREV)[0])
    return sorted(names)


def list_models(root: str | os.PathLike, default: bool = False) -> list[str]:
    """The lines ``embedkit models ROOT`` prints: a header, one line per model and per kept version.

    Raises:
        UsageError: ``root`` is not a folder (unless it is the ``default`` one: then no models yet).
    """
    root = Path(root)
    if not root.is_dir() and default:
        return [f"no models in {root}/ yet; fit one with fit.py (it saves into models/)"]
    if not root.is_dir():
        raise UsageError(f"{root}: no such models folder; fit a model with fit.py (it saves into models/)")
    names = [root.name] if (root / "model.json").is_file() else model_names(root)
    root = root.parent if (root / "model.json").is_file() else root
    rows = [("NAME", "BACKBONE", "HEAD", "LABELS", "CV ROC-AUC", "SAVED")]
    for name in names:
        final = root / name
        d = describe(final) if (final / "model.json").is_file() else None
        if d is None:
            rows.append((name, "(no current version: embedkit models rollback)", "", "", "", ""))
        else:
            layout = " (symlinked layout)" if final.is_symlink() else ""
            rows.append((name + layout, d["backbone"], d["head"], str(d["labels"]), d["cv"], d["saved"]))
        for p in kept_versions(final):
            k = describe(p)
            rows.append(("  kept " + p.name, k["backbone"], k["head"], str(k["labels"]), k["cv"], k["saved"]))
    width = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:5], width, strict=True)) + "  " + r[5] for r in rows]
    note = f"{len(names)} model(s) in {root}; each keeps its last {KEEP_VERSIONS} replaced versions"
    return [*lines, note] if names else [f"no models in {root}; fit one with fit.py"]


def _model_path(name: str) -> Path:
    """``NAME`` as given (a path), or ``models/NAME`` when only a name is given."""
    p = Path(name)
    return p if os.sep in name or os.path.lexists(p) else Path("models") / name


def cmd_models(args) -> int:
    """CLI body of ``embedkit models [ROOT]`` and ``embedkit models rollback NAME [--to KEPT]``."""
    words = list(args.words)
    if words[:1] == ["rollback"]:
        if len(words) != 2:
            raise UsageError("usage: embedkit models rollback NAME (a model folder, or a name in models/)")
        final = _model_path(words[1])
        try:
            restored, kept = rollback(final, args.to)
        except FileNotFoundError as e:
            raise UsageError(f"{e}; `embedkit models {final.parent}` lists the kept versions") from None
        print(
            f"[models] {final} is now the version kept as {restored.name}"
            + (f"; the replaced one is kept as {kept.name}" if kept else "")
        )
        return 0
    if args.to:
        raise UsageError("--to is an option of `embedkit models rollback NAME`")
    if len(words) > 1:
        raise UsageError(f"embedkit models takes one models folder, got {words} (or: rollback NAME)")
    for line in list_models(words[0] if words else "models", default=not words):
        print(line)
    return 0


__all__ = ["cmd_models", "describe", "list_models", "model_names"]

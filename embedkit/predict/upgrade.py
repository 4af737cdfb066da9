"""``embedkit upgrade-model``: embedkit 0.1 model folders (pickled heads) rewritten as data.

The one place that unpickles on purpose, and only when the user passes ``--trust-pickle``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from embedkit.predict.model import FORMAT, LEGACY_FORMAT, load_model, save_model


def upgrade_model(folder: str | os.PathLike) -> Path:
    """Rewrite an embedkit 0.1 model folder (pickled head) in this format, under the same name.

    Unpickles the old head (the caller vouches for the folder), then saves it as data with
    :func:`save_model`: same labels, provenance, CV facts and extra files; predictions are unchanged. The old
    folder is kept as the previous version (``.NAME.prev-...``, see ``embedkit models``). A folder already
    in this format is left as it is.

    Returns:
        The model folder.
    """
    f = Path(folder)
    m = load_model(f, trust_pickle=True)
    if m.meta.get("format") == FORMAT:
        return f
    real = f.resolve()
    skip = {"format", "embedkit_version", "head", "labels", "provenance", "created", "files"}
    meta = {k: v for k, v in m.meta.items() if k not in skip}
    meta["upgraded_from"] = {"format": LEGACY_FORMAT, "embedkit_version": m.meta.get("embedkit_version")}
    extra = {
        p.name: (lambda dst, src=p: shutil.copyfile(src, dst))
        for p in sorted(real.iterdir())
        if p.is_file() and not p.is_symlink() and p.name != "model.json" and not p.name.startswith(".")
    }
    return save_model(f, m.head, m.meta["head"], m.labels, m.provenance, meta, extra)


def cmd_upgrade_model(args) -> int:
    """CLI body of ``embedkit upgrade-model``: rewrite each folder; needs ``--trust-pickle``."""
    from embedkit.errors import UsageError

    if not args.trust_pickle:
        raise UsageError(
            "upgrade-model unpickles the old heads, which runs any code they name: pass --trust-pickle "
            "for folders you made or trust"
        )
    for folder in args.models:  # every folder checked before any is rewritten
        if not (Path(folder) / "model.json").is_file():
            what = "no such folder" if not Path(folder).exists() else "not a model folder (no model.json)"
            raise UsageError(f"{folder}: {what}; nothing was rewritten")
    for folder in args.models:
        before = json.loads((Path(folder) / "model.json").read_text()).get("format")
        out = upgrade_model(folder)
        print(f"{out}: format {before} -> {FORMAT}")
    return 0


__all__ = ["cmd_upgrade_model", "upgrade_model"]

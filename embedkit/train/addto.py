"""``fit.py --add-to MODEL``: new species added to a saved model without refitting its old ones.

The fit runs as usual on the training set, but only over the labels MODEL does not know: every window keeps
its place, and the windows of MODEL's species (or of no species) are negatives of the new labels. The new
head and MODEL are then saved as one composite model (:mod:`embedkit.predict.merge`): each label comes from
the part that knows it, MODEL's outputs unchanged. Refused, before any work, when the training embeddings are
not those MODEL was fit on (backbone, weights, window, fused parts) or when no label is new.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

from embedkit.errors import UsageError


def restrict_to_new(cfg, labels: list[str], Y: np.ndarray, inputs: dict, prov: dict):
    """The fit's labels, targets and inputs cut to the labels ``cfg.add_to`` does not know.

    Args:
        cfg: the :class:`~embedkit.config.FitConfig` (``add_to``).
        labels: the C labels of the training set.
        Y: targets float32 [N, C].
        inputs: the fit's inputs (``index`` [C] or None, ``z`` [N, C] or None, ``parts``: provenances).
        prov: provenance of the training embeddings.

    Returns:
        ``(base model, new labels [C'], Y [N, C'], inputs)``.

    Raises:
        UsageError: another backbone than the base model's, or no new label.
    """
    from embedkit.predict.merge import check_same_backbone
    from embedkit.predict.model import Model, load_model

    base = load_model(cfg.add_to)
    parts = inputs.get("parts") or []  # fused: one {"backbone", "dim", "provenance"} per part
    shards = Model(folder=Path(f"{cfg.embeddings}/{cfg.backbone}/{cfg.split}"), head=None, labels=[],
                   provenance=prov, meta={"fusion": parts} if len(parts) > 1 else {})  # fmt: skip
    check_same_backbone([base, shards], "fit --add-to")
    new = np.array([c not in set(base.labels) for c in labels])
    if not new.any():
        raise UsageError(
            f"fit --add-to {cfg.add_to}: each of the {len(labels)} labels of the training set is already in "
            f"the model; nothing to add (refit it, or merge-models with another model)"
        )
    known = len(labels) - int(new.sum())
    print(f"[fit] --add-to: {int(new.sum())} new labels; the {known} labels {cfg.add_to} knows keep its head "
          f"and their windows are negatives of the new ones", file=sys.stderr)  # fmt: skip
    out = dict(inputs)
    if out.get("index") is not None:
        out["index"] = np.asarray(out["index"])[new]
    if out.get("z") is not None:
        out["z"] = out["z"][:, new]
    return base, [c for c, k in zip(labels, new, strict=True) if k], Y[:, new], out


def save_extended(cfg, base, name: str, save_new) -> Path:
    """Save the new-labels model, then MODEL and it as the composite ``OUT/<name>``.

    Args:
        cfg: the fit config (``out``, ``add_to``).
        base: the loaded base model.
        name: the composite's folder name.
        save_new: ``(folder) -> Path`` writing the new-labels model (``save_model``).

    Returns:
        The composite's folder.
    """
    from embedkit.predict.merge import save_composite
    from embedkit.predict.model import load_model
    from embedkit.store.atomic import writer_tag

    tmp = Path(cfg.out) / f".{name}.added-{writer_tag()}"
    try:
        new = load_model(save_new(tmp))
        extra = {"made_by": "fit --add-to", "added": {"base": str(cfg.add_to), "labels": list(new.labels)},
                 "cv": new.meta.get("cv", {})}  # fmt: skip
        return save_composite(Path(cfg.out) / name, [base, new], extra=extra)
    finally:
        for p in (tmp, *tmp.parent.glob(f".{tmp.name}.v-*")):
            if p.is_symlink():
                p.unlink()
            elif p.exists():
                shutil.rmtree(p, ignore_errors=True)


__all__ = ["restrict_to_new", "save_extended"]

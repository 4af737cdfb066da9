"""The backbone's own classifier in every form the toolkit offers (``embedkit evaluate``'s zero-shot grid).

BirdNET's logits of the mapped labels on the same windows as the heads, post-processed every way ``infer.py``
can: test-time augmentation off / ±1.25 s averaged / ±1.25 s maximum over the shifted windows, smoothing 0 /
0.25 / 0.5, file-max blend 0 / 0.25 (18 rows). The logits are pooled over a window's two 3 s chunks as the
shards store them (``--logit-pool``, default ``max``): the other pooling needs another extraction and is not
in the grid. The best row on the real-background test (the 22 labels the backbone knows) is what every
difference is measured against (:mod:`embedkit.evaluate.bootstrap`).
"""

from __future__ import annotations

import numpy as np

from embedkit.evaluate.scoring import postprocess, scores

#: (smoothing, file-max, TTA offsets, TTA reduce)
GRID: list[tuple[float, float, tuple[float, ...], str]] = [
    (sm, fm, tta, red)
    for tta, red in (((), "mean"), ((1.25,), "mean"), ((1.25,), "max"))
    for fm in (0.0, 0.25)
    for sm in (0.0, 0.25, 0.5)
]


def zero_shot_row(clips, tests, post: dict) -> dict:
    """BirdNET's own logits on the same windows (mapped labels only), post-processed like ``post``.

    ``post``: ``smooth``, ``file_max``, ``tta`` (offsets; the sigmoid probabilities of the shifted windows
    are reduced with ``tta_reduce``, ``mean`` or ``max``, before smoothing, as the heads' TTA).
    """
    from embedkit.evaluate.tables import post_label
    from embedkit.evaluate.testsets import score_sets
    from embedkit.zeroshot import class_logits

    scapes = tests.scapes
    mapped = clips.index >= 0
    zc = postprocess(
        class_logits(clips.L, clips.index), clips.files, clips.window, post["smooth"], post["file_max"]
    )
    zt = class_logits(scapes.L, clips.index)
    if post.get("tta"):
        from embedkit.audio.tta import tta_offsets
        from embedkit.evaluate.tta import tta_windows
        from embedkit.predict.tta import reduce_variants

        _, Ls = tta_windows(tests, tta_offsets(post["tta"]))
        zs = [zt, *(class_logits(L, clips.index) for L in Ls)]
        probs = np.stack([1.0 / (1.0 + np.exp(-z)) for z in zs])
        zt = reduce_variants(probs, post.get("tta_reduce", "mean"))
    zt = postprocess(zt, scapes.files, scapes.window, post["smooth"], post["file_max"])
    nan = float("nan")
    sc = score_sets(tests, zt, mapped, scores)
    sc.update({k: nan for k in ("sc", "fd") if k in sc})
    out = {"cv": nan, "cv_mapped": scores(clips.truth, zc, mapped)[1], **sc, "oof": zc, "test": zt}
    out.update(seconds=0.0, zero_shot=True)
    return {**out, "post": post_label(post)}


def grid_rows(clips, tests) -> list[tuple[str, dict]]:
    """Every :data:`GRID` row, named ``BirdNET zero-shot, <post-processing>`` (TTA rows embed shifts)."""
    rows = []
    for sm, fm, tta, red in GRID:
        post = {"smooth": sm, "file_max": fm, "tta": tta, "tta_reduce": red}
        r = zero_shot_row(clips, tests, post)
        rows.append((f"BirdNET zero-shot, {r['post']}", r))
    return rows


def best_row(rows: list[tuple[str, dict]], key: str = "fd_mapped") -> str | None:
    """Name of the zero-shot row with the highest ``key`` (real background, mapped labels; else synthetic)."""
    zs = [(n, r) for n, r in rows if r.get("zero_shot")]
    if not zs:
        return None
    if key not in zs[0][1]:
        key = "sc_mapped"
    return max(zs, key=lambda t: np.nan_to_num(t[1][key], nan=-1.0))[0]


__all__ = ["GRID", "best_row", "grid_rows", "zero_shot_row"]

"""The markdown tables of ``embedkit evaluate``: the zero-shot grid, the rows, and their paired intervals."""

from __future__ import annotations

import numpy as np


def post_label(post: dict) -> str:
    """Text of the post-processing column: ``smooth 0.5``, ``file-max 0.25``, ``TTA ±1.25 s``, ``none``."""
    parts = [f"smooth {post['smooth']:g}" if post["smooth"] > 0 else ""]
    parts.append(f"file-max {post['file_max']:g}" if post["file_max"] > 0 else "")
    if post.get("tta"):
        red = " (max)" if post.get("tta_reduce", "mean") == "max" else ""
        parts.append("TTA ±" + "/".join(f"{abs(s):g}" for s in post["tta"]) + f" s{red}")
    return ", ".join(p for p in parts if p) or "none"


def _f(v) -> str:
    return "—" if v is None or v != v else f"{v:.3f}"


def table_lines(rows: list[tuple[str, dict]], n_labels: int, n_mapped: int, n_strong: int = 0) -> list[str]:
    """Markdown table of result rows (real-background, head-only and second-test columns when present)."""
    keys = ["cv", "cv_mapped", "sc", "sc_mapped"]
    cols = f"soundscapes, {n_labels} | soundscapes, {n_mapped}"
    if rows and "fd" in rows[0][1]:
        keys += ["fd", "fd_mapped", "ho", "ho_mapped"]
        cols = f"synthetic bg, {n_labels} | synthetic bg, {n_mapped} | "
        cols += f"real bg, {n_labels} | real bg, {n_mapped} | "
        cols += f"head only (prior off), real bg, {n_labels} | head only, real bg, {n_mapped}"
        if n_strong:
            keys.append("st")
            cols += f" | real bg, {n_strong} strong species"
    head = [
        f"| configuration | post-processing | CV AUC, {n_labels} species | CV AUC, {n_mapped} in BirdNET | "
        f"{cols} | s |",
        "|---" * (len(keys) + 3) + "|",
    ]
    body = []
    for name, r in rows:
        cells = [_f(r.get(k)) for k in keys] + [f"{r['seconds']:.0f}"]
        body.append(f"| {name} | {r.get('post', '')} | " + " | ".join(cells) + " |")
    return head + body


def grid_lines(rows: list[tuple[str, dict]], best: str | None, n_mapped: int, n_strong: int) -> list[str]:
    """The zero-shot grid (rows marked ``zero_shot``), the best one in bold."""
    real = rows and "fd" in rows[0][1]
    keys = ["cv_mapped", "sc_mapped"] + (["fd_mapped", "st"] if real else [])
    cols = [f"CV AUC, {n_mapped}", f"synthetic bg, {n_mapped}"]
    cols += [f"real bg, {n_mapped}", f"real bg, {n_strong} strong"] if real else []
    out = ["| BirdNET zero-shot: post-processing | " + " | ".join(cols) + " |"]
    out.append("|---" * (len(keys) + 1) + "|")
    for name, r in rows:
        if not r.get("zero_shot"):
            continue
        label = f"**{r['post']} (best)**" if name == best else r["post"]
        out.append(f"| {label} | " + " | ".join(_f(r.get(k)) for k in keys) + " |")
    return out


INTERVAL_COLS = {
    "vs_best22": "real bg, {m}: − best zero-shot",
    "vs_def22": "real bg, {m}: − default",
    "vs_def26": "real bg, {n}: − default",
    "st_vs_best": "real bg, {s} strong: − best zero-shot there",
    "ho22_vs_best": "head only, real bg, {m}: − best zero-shot",
}


def interval_lines(deltas: dict, n_labels: int, n_mapped: int, n_strong: int, n_boot: int) -> list[str]:
    """Markdown table of paired differences with 95% bootstrap intervals (bold: the interval excludes 0)."""
    from embedkit.evaluate.bootstrap import fmt_delta

    names = [c.format(n=n_labels, m=n_mapped, s=n_strong) for c in INTERVAL_COLS.values()]
    out = [
        f"Paired differences, 95% bootstrap interval over soundscapes ({n_boot} resamples per seed and fold, "
        "seeded; bold: the interval excludes 0):",
        "",
        "| configuration | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for name, d in deltas.items():
        cells = [fmt_delta(*d[k]) if k in d else "—" for k in INTERVAL_COLS]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


def per_class_lines(clips, res: dict, zs: dict | None) -> list[str]:
    """Markdown per-class table: recordings, CV AUC, BirdNET zero-shot's CV AUC."""
    from embedkit.metrics import per_class_auc

    cv = per_class_auc(clips.truth, res["oof"])
    lines = ["| label | recordings | CV AUC | BirdNET CV AUC |", "|---|---|---|---|"]
    zcv = per_class_auc(clips.truth, zs["oof"]) if zs else np.full(len(cv), np.nan)
    for c, lab in enumerate(clips.labels):
        n = len(set(clips.files[clips.truth[:, c]].tolist()))
        known = clips.index is not None and clips.index[c] >= 0
        z = f"{zcv[c]:.3f}" if known else "—"
        lines.append(f"| {lab} | {n} | {cv[c]:.3f} | {z} |")
    return lines


__all__ = ["INTERVAL_COLS", "grid_lines", "interval_lines", "per_class_lines", "post_label", "table_lines"]

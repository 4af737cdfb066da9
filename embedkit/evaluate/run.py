"""``embedkit evaluate``: what a fit configuration is worth on real audio, and what each technique adds.

Two measures, from one set of heads (fold k's head is fit on the other folds' recordings):

* **window-level grouped CV**: macro ROC-AUC (:func:`embedkit.metrics.birdclef_score`) of the out-of-fold
  window probabilities against the recording's primary label on every window, over all labels and over the
  labels the backbone's own classifier knows (mapped by scientific name);
* **soundscape test**: one-minute soundscapes composed (seeded) from fold k's recordings only
  (:mod:`embedkit.evaluate.data`, :mod:`embedkit.evaluate.compose`), predicted by fold k's head,
  post-processed like ``infer.py`` (``--smooth``, ``--file-max``) and scored with the competition metric
  over all folds' windows.

BirdNET's zero-shot classifier is scored on the same windows. With ``--table`` every row of
:data:`VARIANTS` is run (each head plain, the default configuration, and the default with one technique
switched); otherwise only the configuration given (``configs/fit.toml`` + ``--set``), with a per-class table.
The unlabelled set of weak negatives and self-training (``fit.py --unlabelled``) is, with ``--backgrounds``,
the windows of the other folds' background files for fold k (fold k's soundscapes are composed over fold
k's files only); without it, weak negatives are skipped (as ``fit.py`` without ``--unlabelled``) and
self-training uses the soundscapes of the other folds. Rows with ``augmented = "clean+mixed"`` (and the
evaluate-only keys :data:`AUG_KEYS`) add fold-honest augmented copies of the training windows
(:mod:`embedkit.evaluate.augmented`; needs ``--backgrounds``, else the row is skipped).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import numpy as np

from embedkit.config import FitConfig, InferConfig
from embedkit.errors import UsageError
from embedkit.evaluate.variants import AUG_KEYS, NO_POST, VARIANTS  # noqa: F401 - the row table


def postprocess(P: np.ndarray, files: np.ndarray, window: np.ndarray, smooth: float, file_max: float):
    """``infer.py``'s post-processing per file: smoothing over neighbouring windows, then file-max blend."""
    from embedkit.predict.post import file_max_blend, smooth_windows

    if smooth <= 0 and file_max <= 0:
        return P
    out = P.copy()
    for f in np.unique(files):
        rows = np.flatnonzero(files == f)
        rows = rows[np.argsort(window[rows], kind="stable")]
        out[rows] = file_max_blend(smooth_windows(P[rows], smooth), file_max)
    return out


def _scores(truth, P, mapped) -> tuple[float, float]:
    from embedkit.metrics import birdclef_score, scorable_classes

    ok = scorable_classes(truth)
    all_ = birdclef_score(truth, P) if ok.any() else float("nan")
    m = ok & mapped
    return all_, (birdclef_score(truth[:, m], P[:, m]) if m.any() else float("nan"))


def run_config(cfg: FitConfig, post: dict, clips, tests, memo: dict | None = None, augmented=None) -> dict:
    """Fit ``cfg`` per fold; score CV windows and soundscapes (:class:`~embedkit.evaluate.testsets.TestSets`).

    Returns:
        scores (``cv``, ``cv_mapped``, ``sc``, ``sc_mapped``, with field sets ``fd``, ``fd_mapped``), the
        probabilities (``oof``, ``test``), ``seconds``, ``post``. ``memo`` (a dict kept across calls) reuses
        the fits of an equal fit config, so rows that change only the post-processing fit nothing.
        ``augmented`` (an :class:`~embedkit.evaluate.augmented.AugmentedSet`) is used when
        ``cfg.augmented == "clean+mixed"``.
    """
    from embedkit.evaluate.augmented import training_copies
    from embedkit.evaluate.testsets import score_sets
    from embedkit.predict.apply import Windows
    from embedkit.train.cv import cross_validate
    from embedkit.zeroshot import class_logits

    if post.get("tune"):  # prior weight and smoothing chosen on the other folds' soundscapes
        from embedkit.evaluate.tuned import run_tuned

        return run_tuned(cfg, post, clips, tests, memo)
    t0 = time.monotonic()
    scapes = tests.scapes
    mode = cfg.zero_shot if clips.index is not None else "off"
    if mode == "auto":
        mode = "prior"
    if (cfg.confidence_weight > 0 or mode != "off") and clips.index is None:
        raise UsageError("zero-shot options and confidence weights need logits in the shards (--save-logits)")
    cfg = replace(cfg, zero_shot=mode)
    zc = None if clips.index is None else class_logits(clips.L, clips.index)
    zs = None if clips.index is None or scapes.L is None else class_logits(scapes.L, clips.index)
    data = Windows(clips.X, clips.files, zc, clips.targets(cfg.secondary_weight))
    test = (Windows(scapes.X, scapes.files, zs), scapes.fold)
    pool = None
    bgw = tests.background
    if (cfg.weak_negatives > 0 and bgw is not None) or cfg.pseudo > 0:
        if bgw is not None:  # the other folds' background files (fold k's test never uses them)
            zb = None if clips.index is None or bgw.L is None else class_logits(bgw.L, clips.index)
            bg = Windows(bgw.X, np.char.add("bg/", bgw.files), zb)

        def pool(k):  # fold k's weak negatives: only background groups none of its test files share
            if bgw is None:
                return test[0].take(scapes.fold != k)
            ok = tests.negatives(k)
            return bg.take(ok) if ok.any() else None

    from embedkit.audio.tta import tta_offsets
    from embedkit.evaluate.tta import reduce_shifted, with_shifted

    offsets = tta_offsets(post.get("tta"))
    aug = training_copies(cfg, augmented, clips, data)
    key = repr((cfg, offsets, post.get("tta_reduce")))
    key += "" if aug is None else f" aug {len(aug[1])} {int((augmented.mix >= 0).sum())}"
    if memo is not None and key in memo:
        oof, tp, t0 = *memo[key][:2], time.monotonic() - memo[key][2]
    else:
        oof, _, tp = cross_validate(cfg, data, clips.fold, pool, t0, with_shifted(tests, test, offsets), aug)
        tp = reduce_shifted(tp, len(offsets), post.get("tta_reduce", "mean"))
        if memo is not None:
            memo[key] = (oof, tp, time.monotonic() - t0)
    smooth, fmax = post["smooth"], post["file_max"]
    oof = postprocess(oof, clips.files, clips.window, smooth, fmax)
    tp = postprocess(tp, scapes.files, scapes.window, smooth, fmax)
    mapped = clips.index >= 0 if clips.index is not None else np.zeros(len(clips.labels), bool)
    cv26, cv22 = _scores(clips.truth, oof, mapped)
    el = time.monotonic() - t0
    return {
        "cv": cv26,
        "cv_mapped": cv22,
        **score_sets(tests, tp, mapped, _scores),
        "oof": oof,
        "test": tp,
        "seconds": el,
        "post": post_label(post),
    }


def zero_shot_row(clips, tests, post: dict) -> dict:
    """BirdNET's own logits on the same windows (mapped labels only), post-processed like ``post``."""
    from embedkit.evaluate.testsets import score_sets
    from embedkit.zeroshot import class_logits

    scapes = tests.scapes
    mapped = clips.index >= 0
    zc = postprocess(
        class_logits(clips.L, clips.index), clips.files, clips.window, post["smooth"], post["file_max"]
    )
    zt = class_logits(scapes.L, clips.index)
    if post.get("tta"):  # BirdNET's probabilities averaged over the shifted windows, as the heads' TTA
        from embedkit.audio.tta import tta_offsets
        from embedkit.evaluate.tta import tta_windows

        _, Ls = tta_windows(tests, tta_offsets(post["tta"]))
        zs = [zt, *(class_logits(L, clips.index) for L in Ls)]
        zt = np.mean([1.0 / (1.0 + np.exp(-z)) for z in zs], axis=0)
    zt = postprocess(zt, scapes.files, scapes.window, post["smooth"], post["file_max"])
    nan = float("nan")
    sc = score_sets(tests, zt, mapped, _scores)
    sc.update({k: nan for k in ("sc", "fd") if k in sc})
    out = {"cv": nan, "cv_mapped": _scores(clips.truth, zc, mapped)[1], **sc, "oof": zc, "test": zt}
    out["seconds"] = 0.0
    return {**out, "post": post_label(post)}


def post_label(post: dict) -> str:
    """Short text for the post-processing column: ``smooth 0.5``, ``file-max 0.25``, ``none``."""
    parts = [f"smooth {post['smooth']:g}" if post["smooth"] > 0 else ""]
    parts.append(f"file-max {post['file_max']:g}" if post["file_max"] > 0 else "")
    parts.append("TTA ±" + "/".join(f"{abs(s):g}" for s in post["tta"]) + " s" if post.get("tta") else "")
    return ", ".join(p for p in parts if p) or "none"


def table_lines(rows: list[tuple[str, dict]], n_labels: int, n_mapped: int) -> list[str]:
    """Markdown table of result rows (real-background columns when the rows have them)."""

    def f(v):
        return "—" if v != v else f"{v:.3f}"

    keys = ["cv", "cv_mapped", "sc", "sc_mapped"]
    cols = f"soundscapes, {n_labels} | soundscapes, {n_mapped}"
    if rows and "fd" in rows[0][1]:
        keys += ["fd", "fd_mapped"]
        cols = f"synthetic bg, {n_labels} | synthetic bg, {n_mapped} | "
        cols += f"real bg, {n_labels} | real bg, {n_mapped}"
    head = [
        f"| configuration | post-processing | CV AUC, {n_labels} species | CV AUC, {n_mapped} in BirdNET | "
        f"{cols} | s |",
        "|---" * (len(keys) + 3) + "|",
    ]
    body = []
    for name, r in rows:
        cells = [f(r[k]) for k in keys] + [f"{r['seconds']:.0f}"]
        body.append(f"| {name} | {r.get('post', '')} | " + " | ".join(cells) + " |")
    return head + body


def run_evaluate(
    fit: FitConfig,
    infer: InferConfig,
    table: bool,
    n: int,
    seed: int | list[int],
    cache=None,
    threads=None,
    backgrounds=None,
    fit_aug: dict | None = None,
):
    """Run the evaluation; returns (markdown lines, {row name: result}, clips, all soundscape windows).

    ``seed`` may be a list: every soundscape test is composed once per seed and scores are averaged.
    ``backgrounds`` (a folder of field recordings) adds the real-background test beside the synthetic one.
    ``fit_aug`` sets :data:`AUG_KEYS` (augmented copies, mixup) for rows that do not set them.
    """
    from embedkit.evaluate.augmented import EVAL_AUGMENT, augmented_set
    from embedkit.evaluate.data import load_clips
    from embedkit.evaluate.testsets import load_testsets

    fit_aug = fit_aug or {}
    clips = load_clips(fit)
    seeds = [seed] if isinstance(seed, int) else list(seed)
    scapes = load_testsets(clips, n, seeds, cache, threads, backgrounds)
    from embedkit.predict.smoothing import DEFAULT_SMOOTH

    smooth = DEFAULT_SMOOTH if infer.smooth is None else infer.smooth
    post = {"smooth": smooth, "file_max": infer.file_max, "tta": tuple(infer.tta)}
    rows: list[tuple[str, dict]] = []
    if clips.index is not None:
        rows.append(("BirdNET zero-shot", zero_shot_row(clips, scapes, NO_POST)))
        zpost = {**post, "tta": ()}  # BirdNET's logits of the unshifted windows
        rows.append(("BirdNET zero-shot + default post-processing", zero_shot_row(clips, scapes, zpost)))
        if post["tta"]:
            zs_tta = zero_shot_row(clips, scapes, post)
            rows.append(("BirdNET zero-shot + default post-processing + TTA", zs_tta))
    variants = VARIANTS if table else [("configuration", {}, {})]
    memo: dict = {}
    augs: dict = {}
    for name, change, pchange in variants:
        fit_change = {k: v for k, v in change.items() if k not in AUG_KEYS}
        cfg = replace(fit, **fit_change)
        if cfg.augmented == "clean+mixed" and not backgrounds:
            print(f"[evaluate] {name}: skipped (augmented rows need --backgrounds)", file=sys.stderr)
            continue
        aug = None
        if cfg.augmented == "clean+mixed":
            k, mixup = (change.get(a, fit_aug.get(a, d)) for a, d in AUG_KEYS.items())
            if (k, mixup) not in augs:
                augs[(k, mixup)] = augmented_set(clips, backgrounds, k, replace(EVAL_AUGMENT, mixup=mixup),
                                                 0, cache, threads)  # fmt: skip
            aug = augs[(k, mixup)]
        res = run_config(cfg, {**post, **pchange}, clips, scapes, memo, aug)
        rows.append((name, res))
        field = f"  real bg {res['fd']:.4f} / {res['fd_mapped']:.4f}" if "fd" in res else ""
        print(
            f"[evaluate] {name}: CV {res['cv']:.4f} / {res['cv_mapped']:.4f}  "
            f"soundscapes {res['sc']:.4f} / {res['sc_mapped']:.4f}{field}  ({res['seconds']:.0f} s)",
            file=sys.stderr,
        )
    n_mapped = int((clips.index >= 0).sum()) if clips.index is not None else 0
    return table_lines(rows, len(clips.labels), n_mapped), dict(rows), clips, scapes.scapes


def per_class_lines(clips, res: dict, zs: dict | None) -> list[str]:
    """Markdown per-class table: recordings, CV AUC, soundscape AUC (and BirdNET zero-shot's)."""
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


def add_args(p: argparse.ArgumentParser) -> None:
    """Flags of ``embedkit evaluate``."""
    p.add_argument(
        "--data", help="data root with train.csv, taxonomy.csv, train_audio/ (default: fit.toml's)"
    )
    p.add_argument("--embeddings", help="embeddings root holding <backbone>/<split> (default: fit.toml's)")
    p.add_argument("--config", help="fit config TOML (default: configs/fit.toml)")
    p.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="fit config changes, e.g. head=mlp; with augmented=clean+mixed also augment_variants=K and "
        "augment_mixup=P (the augmented copies evaluate makes)",
    )
    p.add_argument("--smooth", type=float, help="soundscape test smoothing (default: infer.toml's, else 0.5)")
    p.add_argument("--file-max", type=float, help="file-max blend (default: infer.toml's)")
    p.add_argument("--tta", type=float, nargs="*", help="TTA shifts in s, e.g. 1.25 (default: infer.toml's)")
    p.add_argument("--soundscapes", type=int, default=12, help="composed soundscapes per fold (default: 12)")
    p.add_argument("--seed", type=int, nargs="+", default=[0],
                   help="composition seed(s); scores are averaged over them (default: 0)")  # fmt: skip
    p.add_argument("--backgrounds", help="folder of real field recordings: add the real-background "
                   "soundscape test (e.g. ../shared/data/backgrounds or DATA/train_soundscapes)")  # fmt: skip
    p.add_argument("--background-groups", default="auto", metavar="RULE",
                   help="grouping of background files by site/recording; whole groups go to folds: "
                   "auto (name up to its last _), folder, file, or a CSV file,group")  # fmt: skip
    p.add_argument(
        "--cache", help="folder for the embedded soundscapes (default: ~/.cache/embedkit/evaluate)"
    )
    p.add_argument("--threads", type=int, help="backbone threads for the soundscapes (default: all cores)")
    p.add_argument("--table", action="store_true", help="run every row of the technique table")
    p.add_argument("--out", help="also write the markdown table(s) to this file")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """CLI body of ``embedkit evaluate``: print the markdown table (and the per-class table)."""
    from embedkit import config as C
    from embedkit.flags import parse_key_value

    fit_path = args.config or (C.CONFIG_DIR / "fit.toml" if (C.CONFIG_DIR / "fit.toml").is_file() else None)
    sets = dict(parse_key_value(kv) for kv in args.set)
    fit_aug = {k: sets.pop(k) for k in AUG_KEYS if k in sets}  # evaluate-only: augmented set settings
    fit = C.load(FitConfig, fit_path, data=args.data, embeddings=args.embeddings, **sets)
    inf_path = C.CONFIG_DIR / "infer.toml"
    infer = C.load(
        InferConfig, inf_path if inf_path.is_file() else None, smooth=args.smooth, file_max=args.file_max,
        tta=args.tta,
    )
    backgrounds = None
    if args.backgrounds:
        from embedkit.evaluate.groups import Backgrounds, file_groups

        backgrounds = Backgrounds(args.backgrounds, args.background_groups)
        file_groups([], args.background_groups)  # an unknown rule fails here, before any work
    lines, res, clips, _ = run_evaluate(
        fit, infer, args.table, args.soundscapes, args.seed, args.cache, args.threads, backgrounds,
        fit_aug,
    )  # fmt: skip
    if not args.table:
        lines += ["", *per_class_lines(clips, res["configuration"], res.get("BirdNET zero-shot"))]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text)
    return 0

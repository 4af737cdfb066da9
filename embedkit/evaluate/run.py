"""``embedkit evaluate``: what a fit configuration is worth on real audio, and what each technique adds.

Two measures, from one set of heads (fold k's head is fit on the other folds' recordings):

* **window-level grouped CV**: macro ROC-AUC (:func:`embedkit.metrics.birdclef_score`) of the out-of-fold
  window probabilities against the recording's primary label on every window, over all labels and over the
  labels the backbone's own classifier knows (mapped by scientific name);
* **soundscape test**: one-minute soundscapes composed (seeded) from fold k's recordings only
  (:mod:`embedkit.evaluate.data`, :mod:`embedkit.evaluate.compose`), predicted by fold k's head,
  post-processed like ``infer.py`` (``--smooth``, ``--file-max``) and scored with the competition metric
  per fold (fold k's windows alone, one head and one test set as on Kaggle), then averaged over the folds
  (:meth:`embedkit.evaluate.testsets.TestSets.scored`).

BirdNET's zero-shot classifier is scored on the same windows in every form the toolkit offers
(:mod:`embedkit.evaluate.zsgrid`, the best row marked), and every row gets paired bootstrap intervals over
soundscapes against the best zero-shot row and the default (:mod:`embedkit.evaluate.bootstrap`), a head-only
score (prior off) and the second test on the species the backbone is strong on
(:func:`embedkit.evaluate.scoring.strong_labels`). With ``--table`` every row of
:data:`VARIANTS` is run (each head plain, the default configuration, and the default with one technique
switched); otherwise only the configuration given (``configs/fit.toml`` + ``--set``), with a per-class table.
The unlabelled set of weak negatives and self-training (``fit.py --unlabelled``) is, with ``--backgrounds``,
the windows of the background files of the *other* folds' site groups for fold k
(:mod:`embedkit.evaluate.groups`; fold k's soundscapes are composed over fold k's groups only); without it,
weak negatives are skipped (as ``fit.py`` without ``--unlabelled``) and self-training uses the soundscapes
of the other folds. Rows with ``augmented = "clean+mixed"`` (and the
evaluate-only keys :data:`AUG_KEYS`) add fold-honest augmented copies of the training windows
(:mod:`embedkit.evaluate.augmented`; needs ``--backgrounds``, else the row is skipped).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from embedkit.config import FitConfig, InferConfig
from embedkit.evaluate.fitrow import run_config  # noqa: F401 - re-exported
from embedkit.evaluate.scoring import postprocess  # noqa: F401 - re-exported
from embedkit.evaluate.tables import per_class_lines, post_label, table_lines  # noqa: F401 - re-exported
from embedkit.evaluate.variants import AUG_KEYS, NO_POST, VARIANTS  # noqa: F401 - the row table


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
    only: list[str] | None = None,
    partial=None,
    share: tuple[float, int] = (1.0, 0),
):
    """Run the evaluation; returns (markdown lines, {row name: result}, clips, all soundscape windows).

    ``seed`` may be a list: every soundscape test is composed once per seed and scores are averaged.
    ``backgrounds`` (a folder of field recordings) adds the real-background test beside the synthetic one.
    ``fit_aug`` sets :data:`AUG_KEYS` (augmented copies, mixup) for rows that do not set them. ``only``:
    table rows whose name contains one of these texts (the default row always runs; the others are said
    on stderr). ``partial``: a file that gets the main table after every row (replaced atomically).
    ``share``: ``(share, seed)``, the part of each label's recordings the heads train on (the learning
    curve, :mod:`embedkit.evaluate.share`; the soundscape tests stay those of all recordings).
    """
    from embedkit.evaluate.augmented import EVAL_AUGMENT, augmented_set
    from embedkit.evaluate.data import load_clips
    from embedkit.evaluate.ensemble import KEY as ENSEMBLE
    from embedkit.evaluate.ensemble import ensemble_row
    from embedkit.evaluate.share import share_of
    from embedkit.evaluate.testsets import load_testsets

    fit_aug = fit_aug or {}
    clips = load_clips(fit)
    seeds = [seed] if isinstance(seed, int) else list(seed)
    scapes = load_testsets(clips, n, seeds, cache, threads, backgrounds)
    clips = share_of(clips, *share)
    from embedkit.predict.smoothing import DEFAULT_SMOOTH

    smooth = DEFAULT_SMOOTH if infer.smooth is None else infer.smooth
    post = {"smooth": smooth, "file_max": infer.file_max, "tta": tuple(infer.tta)}
    rows, grid, best = _zero_shot_rows(clips, scapes, post)
    variants = VARIANTS if table else [("configuration", {}, {})]
    if table and only:
        keep = [v for v in variants if v[0] == "**default**" or any(t in v[0] for t in only)]
        members = {m for v in keep for m in v[1].get(ENSEMBLE, [])}  # an ensemble needs its rows
        keep = [v for v in variants if v in keep or v[0] in members]
        skipped = [v[0] for v in variants if v not in keep]
        print(f"[evaluate] --rows: {len(skipped)} rows not run: {'; '.join(skipped)}", file=sys.stderr)
        variants = keep
    memo: dict = {}
    augs: dict = {}
    sets = {fit.split: (clips, scapes)}

    def dataset(cfg):
        """(clips, test sets) of a row's ``split`` (the same recordings extracted otherwise), or a reason."""
        if cfg.split not in sets:
            folder = Path(cfg.embeddings) / cfg.backbone / cfg.split
            if not folder.is_dir():
                sets[cfg.split] = f"no {folder}: extract it first (see README, Quality on real audio)"
                return sets[cfg.split]
            c = load_clips(cfg)
            t = load_testsets(c, n, seeds, cache, threads, backgrounds)
            c = share_of(c, *share)
            same = np.array_equal(c.files, clips.files) and np.array_equal(c.window, clips.window)
            same = same and np.array_equal(t.scapes.truth, scapes.scapes.truth)
            sets[cfg.split] = (c, t) if same else f"{folder} holds other windows than {fit.split}"
        return sets[cfg.split]

    for name, change, pchange in variants:
        if ENSEMBLE in change:  # the mean of rows fitted above (evaluate/ensemble.py)
            done = dict(rows)
            missing = [m for m in change[ENSEMBLE] if m not in done]
            if missing:
                print(f"[evaluate] {name}: skipped (rows not run: {'; '.join(missing)})", file=sys.stderr)
                continue
            res = ensemble_row([done[m] for m in change[ENSEMBLE]], clips, scapes)
        else:
            fit_change = {k: v for k, v in change.items() if k not in AUG_KEYS}
            cfg = replace(fit, **fit_change)
            if cfg.augmented == "clean+mixed" and not backgrounds:
                print(f"[evaluate] {name}: skipped (augmented rows need --backgrounds)", file=sys.stderr)
                continue
            got = dataset(cfg)
            if isinstance(got, str):
                print(f"[evaluate] {name}: skipped ({got})", file=sys.stderr)
                continue
            rclips, rtests = got
            aug = None
            if cfg.augmented == "clean+mixed":
                k, mixup = (change.get(a, fit_aug.get(a, d)) for a, d in AUG_KEYS.items())
                key = (cfg.split, k, mixup)
                if key not in augs:
                    how = replace(EVAL_AUGMENT, mixup=mixup)
                    augs[key] = augmented_set(rclips, backgrounds, k, how, 0, cache, threads)
                aug = augs[key]
            res = run_config(cfg, {**post, **pchange}, rclips, rtests, memo, aug)
        rows.append((name, res))
        if partial:
            from embedkit.evaluate.tables import table_lines
            from embedkit.files import replace_atomically

            n_mapped = int((clips.index >= 0).sum()) if clips.index is not None else 0
            text = "\n".join(table_lines(rows, len(clips.labels), n_mapped, 0)) + "\n"
            replace_atomically(partial, lambda tmp, t=text: tmp.write_text(t), sync=False)
        field = f"  real bg {res['fd']:.4f} / {res['fd_mapped']:.4f}" if "fd" in res else ""
        print(
            f"[evaluate] {name}: CV {res['cv']:.4f} / {res['cv_mapped']:.4f}  "
            f"soundscapes {res['sc']:.4f} / {res['sc_mapped']:.4f}{field}  ({res['seconds']:.0f} s)",
            file=sys.stderr,
        )
    return _report(rows, grid, best, clips, scapes, table), dict(rows + grid), clips, scapes.scapes


def _zero_shot_rows(clips, tests, post: dict):
    """(main-table zero-shot rows, the whole grid, the best grid row's name); empty without logits."""
    from embedkit.evaluate.zsgrid import best_row, grid_rows, zero_shot_row

    if clips.index is None or tests.scapes.L is None:
        return [], [], None
    grid = grid_rows(clips, tests)
    best = best_row(grid)
    by_name = dict(grid)
    dpost = {**post, "tta_reduce": "mean"}

    same = [nm for nm, r in grid if r["post"] == post_label(dpost)]
    dflt = by_name[same[0]] if same else zero_shot_row(clips, tests, dpost)
    rows = [("BirdNET zero-shot", by_name[f"BirdNET zero-shot, {post_label(NO_POST)}"]),
            ("BirdNET zero-shot + default post-processing", dflt),
            (f"**BirdNET zero-shot, best of the grid**: {by_name[best]['post']}", by_name[best])]  # fmt: skip
    return rows, grid, best


def _report(rows, grid, best, clips, tests, table: bool) -> list[str]:
    """Main table; with logits the zero-shot grid and the paired intervals; with backgrounds their split."""
    from embedkit.evaluate.bootstrap import N_BOOT, compare_rows
    from embedkit.evaluate.tables import grid_lines, interval_lines

    n_labels = len(clips.labels)
    n_mapped = int((clips.index >= 0).sum()) if clips.index is not None else 0
    n_strong = int(tests.strong.sum()) if tests.strong is not None and "field" in tests.kinds else 0
    lines = table_lines(rows, n_labels, n_mapped, n_strong)
    if grid:
        lines += ["", *grid_lines(grid, best, n_mapped, n_strong)]
        default = "**default**" if table else "configuration"
        heads = [(nm, r) for nm, r in rows if not r.get("zero_shot")]
        deltas = compare_rows(grid + heads, tests, clips.index >= 0, best, default)
        if deltas:
            lines += ["", *interval_lines(deltas, n_labels, n_mapped, n_strong, N_BOOT)]
    if n_strong:
        names = ", ".join(lab for lab, s in zip(clips.labels, tests.strong, strict=True) if s)
        lines += ["", f"Strong species (BirdNET's own clip-window AUC >= 0.95, chosen on the clips): {names}"]
    if tests.split is not None:
        lines += ["", *tests.split.lines()]
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
    p.add_argument("--rows", nargs="+", metavar="TEXT",
                   help="with --table: only rows whose name contains one of these texts (and the default)")
    p.add_argument("--recordings-share", type=float, default=1.0, metavar="S",
                   help="heads train on this share of each label's recordings (at least one): a "
                   "learning curve; the soundscape tests stay those of all recordings")  # fmt: skip
    p.add_argument("--recordings-seed", type=int, default=0, help="seed of --recordings-share's draw")
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
    if not 0.0 < args.recordings_share <= 1.0:  # before minutes of composing
        from embedkit.errors import UsageError

        raise UsageError(f"--recordings-share must be in (0, 1], got {args.recordings_share:g}")
    backgrounds = None
    if args.backgrounds:
        from embedkit.evaluate.groups import Backgrounds, file_groups

        backgrounds = Backgrounds(args.backgrounds, args.background_groups)
        file_groups([], args.background_groups)  # an unknown rule fails here, before any work
    lines, res, clips, _ = run_evaluate(
        fit, infer, args.table, args.soundscapes, args.seed, args.cache, args.threads, backgrounds,
        fit_aug, args.rows, f"{args.out}.partial" if args.out else None,
        (args.recordings_share, args.recordings_seed),
    )  # fmt: skip
    if not args.table:
        zs = res.get("BirdNET zero-shot, none")
        lines += ["", *per_class_lines(clips, res["configuration"], zs)]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        from pathlib import Path

        from embedkit.files import replace_atomically

        replace_atomically(args.out, lambda tmp: tmp.write_text(text), sync=False)
        Path(f"{args.out}.partial").unlink(missing_ok=True)
    return 0

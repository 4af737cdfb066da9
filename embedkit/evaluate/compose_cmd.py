"""``embedkit compose``: labelled one-minute soundscapes from a BirdCLEF-layout data folder, to tune on.

Calls of a **held-out share of the training recordings** (``--holdout``, seeded, per label: at least one
recording of each label with two or more stays out of the share) are placed over real field recordings
(``--backgrounds``: e.g. BirdCLEF's ``train_soundscapes/``, or your site's unlabelled recordings) exactly as
``embedkit evaluate``'s real-background test composes them (:func:`embedkit.evaluate.field.compose_field`:
3-6 calls a minute at a call-to-background SNR of -6 to +12 dB, overlapping species). ``--out`` gets:

* ``<prefix>_<i>.ogg`` (or ``.flac``), ``--n`` soundscapes at ``--sample-rate``;
* ``truth.csv``: wide truth (``row_id``, one 0/1 column per label of ``train.csv``/``taxonomy.csv``, and
  ``source``: the training recordings the soundscape's calls come from), as ``embedkit score --truth`` and
  ``fit.py --tune-truth`` read it;
* ``calls.csv``: one row per placed call (filename, start, end, primary_label, source);
* ``compose.json``: the settings and the held-out recordings.

Then ``extract.py --files OUT --name tune --save-logits`` and ``fit.py --tune-on tune --tune-truth
OUT/truth.csv``. Tuning then uses a head fit without the ``source`` recordings, so the soundscapes never
score a head on its own training calls, while the saved head still learns from every recording. The
folder is written to a temporary sibling and renamed when complete.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.errors import UsageError
from embedkit.progress import track

FORMATS = {"ogg": ("OGG", "VORBIS"), "flac": ("FLAC", "PCM_16")}


def holdout_recordings(train: pd.DataFrame, share: float, seed: int) -> list[str]:
    """A seeded share of ``train.csv``'s recordings per primary label (labels with one recording: none).

    Args:
        train: ``train.csv`` rows (``filename``, ``primary_label``).
        share: fraction of each label's recordings to hold out, in (0, 1].
        seed: random seed.

    Returns:
        Sorted filenames; each label with n >= 2 recordings gives ``clip(round(share * n), 1, n - 1)``.
    """
    if not 0 < share <= 1:
        raise UsageError(f"--holdout must be in (0, 1], got {share}")
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for _, g in train.groupby("primary_label", sort=True):
        files = sorted(g["filename"].astype(str))
        if len(files) < 2:
            continue
        k = int(np.clip(round(share * len(files)), 1, len(files) - 1))
        out += [files[i] for i in rng.choice(len(files), size=k, replace=False)]
    return sorted(out)


def _write_audio(path: Path, audio: np.ndarray, sample_rate: int, fmt: str) -> None:
    from embedkit.audio.write import write_audio

    major, sub = FORMATS[fmt]  # block-wise: one long Vorbis write crashes libsndfile 1.2.2
    write_audio(path, audio, sample_rate, major, sub, atomic=False)  # the staged folder is renamed whole


def _remove_stale_stages(out: Path) -> None:
    """Remove ``.<out>.tmp-<pid>`` folders of earlier runs whose process is gone (killed, crashed)."""
    for stage in out.parent.glob(f".{out.name}.tmp-*"):
        pid = stage.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(stage, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


def _truth_tables(scapes, labels: list[str], window_s: float):
    """(wide truth DataFrame, calls DataFrame) of composed soundscapes."""
    rows, calls = [], []
    for sc in scapes:
        sources = ";".join(sorted({ev[3] for ev in sc.events}))
        for w in range(len(sc.truth)):
            rid = f"{sc.name}_{int(round((w + 1) * window_s))}"
            rows.append([rid, *(sc.truth[w] >= 0.5).astype(int).tolist(), sources])
        for cls, t0, t1, src in sc.events:
            calls.append([sc.name, round(t0, 3), round(t1, 3), labels[cls], src])
    truth = pd.DataFrame(rows, columns=["row_id", *labels, "source"])
    cols = ["filename", "start", "end", "primary_label", "source"]
    return truth, pd.DataFrame(calls, columns=cols)


def compose_folder(args: argparse.Namespace) -> Path:
    """Compose and write the soundscapes (see the module docstring); returns the output folder."""
    from embedkit.audio import list_audio, load_mono
    from embedkit.birdclef import load_labels, load_train
    from embedkit.evaluate.field import compose_field

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out} exists and is not empty; remove it or choose another folder")
    data = Path(args.data)
    labels, train = load_labels(data), load_train(data)
    train = train[train["primary_label"].astype(str).isin(labels)]
    held = holdout_recordings(train, args.holdout, args.seed)
    held = [f for f in held if (data / "train_audio" / f).is_file()]
    if not held:
        raise UsageError(f"no recording of {data / 'train_audio'} to hold out (labels need 2+ recordings)")
    bg_paths = list_audio(args.backgrounds) if Path(args.backgrounds).is_dir() else []
    if not bg_paths:
        raise UsageError(f"--backgrounds: no audio files in {args.backgrounds}")
    sr = args.sample_rate
    label_of = dict(zip(train["filename"].astype(str), train["primary_label"].astype(str), strict=True))
    recs = [(load_mono(data / "train_audio" / f, sr), labels.index(label_of[f]), f)
            for f in track(held, "compose: held-out calls", "file")]
    bgs = [load_mono(p, sr) for p in track(bg_paths, "compose: backgrounds", "file")]
    scapes = compose_field(recs, bgs, len(labels), args.n, sample_rate=sr, seed=args.seed,
                           prefix=args.prefix, snr_db=tuple(args.snr_db))  # fmt: skip
    truth, calls = _truth_tables(scapes, labels, 5.0)
    stage = out.parent / f".{out.name}.tmp-{os.getpid()}"
    _remove_stale_stages(out)
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        for sc in track(scapes, "compose: writing", "soundscape"):
            _write_audio(stage / f"{sc.name}.{args.format}", sc.audio, sr, args.format)
        truth.to_csv(stage / "truth.csv", index=False)
        calls.to_csv(stage / "calls.csv", index=False)
        info = {k: v for k, v in vars(args).items() if k not in ("func", "verbose", "command")}
        info.update(held_out=held, backgrounds_files=[p.name for p in bg_paths], labels=labels)
        (stage / "compose.json").write_text(json.dumps(info, indent=1, default=str))
        if out.exists():
            out.rmdir()
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    n_pos = int(truth[labels].to_numpy().sum())
    print(f"[compose] {len(scapes)} soundscapes ({len(truth)} windows, {n_pos} positive label-windows) "
          f"from {len(held)} held-out recordings over {len(bgs)} background files -> {out}",
          file=sys.stderr)  # fmt: skip
    return out


def add_args(p: argparse.ArgumentParser) -> None:
    """Flags of ``embedkit compose``."""
    from embedkit.evaluate.field import SNR_DB

    p.add_argument("--data", required=True, help="BirdCLEF-layout data root (train.csv, train_audio/)")
    p.add_argument("--backgrounds", required=True,
                   help="folder of real field recordings (e.g. DATA/train_soundscapes)")  # fmt: skip
    p.add_argument("--out", required=True, help="output folder (new or empty)")
    p.add_argument("--n", type=int, default=20, help="soundscapes to compose (default: 20)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--holdout", type=float, default=0.2,
                   help="share of each label's recordings whose calls are used (default: 0.2)")  # fmt: skip
    p.add_argument("--snr-db", type=float, nargs=2, default=list(SNR_DB), metavar=("LO", "HI"),
                   help=f"call-to-background SNR in dB (default: {SNR_DB[0]:g} {SNR_DB[1]:g})")  # fmt: skip
    p.add_argument("--sample-rate", type=int, default=32000, help="sample rate written (default: 32000)")
    p.add_argument("--format", choices=sorted(FORMATS), default="ogg", help="audio format (default: ogg)")
    p.add_argument("--prefix", default="composed", help="file name prefix (default: composed)")


def cmd_compose(args: argparse.Namespace) -> int:
    """CLI body of ``embedkit compose``."""
    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    out = compose_folder(args)
    print(f"next: python extract.py --files {out} --name {out.name} --save-logits && "
          f"python fit.py --tune-on {out.name} --tune-truth {out / 'truth.csv'}")  # fmt: skip
    return 0


__all__ = ["add_args", "cmd_compose", "compose_folder", "holdout_recordings"]

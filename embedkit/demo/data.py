"""Seeded synthetic dataset in the BirdCLEF 2025 layout, for ``make demo`` and the tests.

Written under ``root``::

    train_audio/<label>/<id>.ogg  train.csv  taxonomy.csv  sample_submission.csv  README.txt
    train_soundscapes/<site>_<date>_<time>.ogg  test_soundscapes/*.ogg  test_truth.csv

Audio is 32 kHz mono OGG Vorbis. Species are made up; their calls come from :mod:`embedkit.demo.calls`,
clips and soundscapes from :mod:`embedkit.demo.synth`; this module draws the metadata and writes the files.
``test_truth.csv`` is computed from where calls were placed: a window is positive for a species when one of
its calls overlaps the window by at least 0.5 s (or, for a call shorter than that, lies inside it).
The same seed gives byte-identical CSVs and identical decoded audio (the OGG bytes differ: libsndfile
picks a random stream serial number).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from embedkit.demo.calls import SR
from embedkit.demo.synth import SOUNDSCAPE_S, focal_clip, noise_bank, soundscape, species_table

WINDOW_S = 5
TRAIN_COLUMNS = ["primary_label", "secondary_labels", "type", "filename", "collection", "rating", "url",
                 "latitude", "longitude", "scientific_name", "common_name", "author", "license"]
TAXONOMY_COLUMNS = ["primary_label", "inat_taxon_id", "scientific_name", "common_name", "class_name"]
LICENSE = "demo (synthetic, CC0)"
MAX_SPECIES = 160
_AUTHORS = ("Ana Restrepo", "Bruno Salas", "Carla Mejía", "Diego Ortiz", "Elena Vargas", "Felipe Rojas",
            "Gloria Pardo", "Hugo Castaño", "Inés Duarte", "Julián Mora", "Karen Quintero", "Luis Arango")


def window_truth(events: list[tuple[int, float, float]], n_species: int) -> np.ndarray:
    """Window labels of a one-minute soundscape from its call intervals.

    Args:
        events: (species index, start s, end s) of every placed call.
        n_species: number of species (columns).

    Returns:
        int64 [12, n_species]; 1 where a call overlaps the 5 s window by >= min(0.5 s, call length).
    """
    w0 = np.arange(0, SOUNDSCAPE_S, WINDOW_S, dtype=np.float64)
    y = np.zeros((len(w0), n_species), np.int64)
    for sp, t0, t1 in events:
        overlap = np.minimum(t1, w0 + WINDOW_S) - np.maximum(t0, w0)
        y[overlap >= min(0.5, t1 - t0) - 1e-9, sp] = 1
    return y


def _stems(rng: np.random.Generator, k: int) -> list[str]:
    """``k`` distinct soundscape stems like ``H02_20230420_074000``, in draw order."""
    out: list[str] = []
    while len(out) < k:
        day = dt.date(2023, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365)))
        hhmm = f"{rng.integers(0, 24):02d}{rng.integers(0, 6) * 10:02d}"
        stem = f"H{rng.integers(1, 70):02d}_{day:%Y%m%d}_{hhmm}00"
        if stem not in out:
            out.append(stem)
    return out


def _write(path: Path, audio: np.ndarray) -> None:
    from embedkit.audio.write import write_audio

    path.parent.mkdir(parents=True, exist_ok=True)
    write_audio(path, audio, SR, "OGG", "VORBIS")  # block-wise: long Vorbis writes crash libsndfile 1.2.2


def _train_rows(species: list[dict], clips_per_species: int, meta: np.random.Generator) -> list[dict]:
    """``train.csv`` rows (secondary labels still empty), species by species, drawn from ``meta``."""
    ids = meta.choice(900_000, size=len(species) * clips_per_species, replace=False) + 100_000
    rows = []
    for i, sp in enumerate(species):
        for j in range(clips_per_species):
            coll = str(meta.choice(["XC", "iNat", "CSA"], p=[0.6, 0.3, 0.1]))
            cid = f"{coll}{ids[i * clips_per_species + j]}"
            rows.append({"primary_label": sp["primary_label"], "secondary_labels": "[]",
                         "type": str(meta.choice(["['song']", "['call']", "['call', 'song']", "[]"]))
                         if sp["class_name"] == "Aves" else str(meta.choice(["['call']", "[]"])),
                         "filename": f"{sp['primary_label']}/{cid}.ogg", "collection": coll,
                         "rating": float(meta.integers(0, 11) / 2) if coll == "XC" else 0.0,
                         "url": f"https://example.org/embedkit-demo/{cid}",
                         "latitude": round(float(meta.uniform(3.0, 9.0)), 4),
                         "longitude": round(float(meta.uniform(-77.0, -72.0)), 4),
                         "scientific_name": sp["scientific_name"], "common_name": sp["common_name"],
                         "author": str(meta.choice(_AUTHORS)), "license": LICENSE})
    return rows


def _write_audio(root: Path, species: list[dict], rows: list[dict], clips_per_species: int,
                 train_stems: list[str], test_stems: list[str], seed: int,
                 workers: int | None) -> tuple[list[list[str]], list[list]]:
    """Synthesise and write every clip and soundscape on a thread pool.

    Returns:
        (secondary labels per row of ``rows``, call events per test soundscape in ``test_stems`` order).
    """
    bank = noise_bank(seed)

    def clip_job(r: int) -> list[str]:
        audio, secondary = focal_clip(r // clips_per_species, r % clips_per_species, species, seed, bank)
        _write(root / "train_audio" / rows[r]["filename"], audio)
        return secondary

    def scape_job(args: tuple[int, int, str]) -> list:
        tag, idx, stem = args
        audio, events = soundscape(seed, tag, idx, species, bank)
        _write(root / ("train_soundscapes" if tag == 3 else "test_soundscapes") / f"{stem}.ogg", audio)
        return events

    scapes = [(3, k, s) for k, s in enumerate(train_stems)] + [(4, k, s) for k, s in enumerate(test_stems)]
    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as ex:
        scape_results = ex.map(scape_job, scapes)  # long jobs first
        secondaries = list(ex.map(clip_job, range(len(rows))))
        events = list(scape_results)[len(train_stems):]
    return secondaries, events


def _write_truth(root: Path, species: list[dict], events: list[list], test_stems: list[str]) -> None:
    """``test_truth.csv`` (window labels of the test soundscapes) and ``sample_submission.csv`` (first 3)."""
    n_species = len(species)
    labels = [sp["primary_label"] for sp in species]
    order = sorted(range(n_species), key=lambda k: labels[k])
    columns = ["row_id"] + [labels[k] for k in order]
    ends = range(WINDOW_S, SOUNDSCAPE_S + 1, WINDOW_S)
    truth = pd.DataFrame(np.concatenate([window_truth(ev, n_species)[:, order] for ev in events])
                         if events else np.zeros((0, n_species), np.int64), columns=columns[1:])
    truth.insert(0, "row_id", [f"{s}_{e}" for s in test_stems for e in ends])
    truth.to_csv(root / "test_truth.csv", index=False)
    sub = pd.DataFrame(1.0 / n_species, index=range(12 * min(3, len(test_stems))), columns=columns[1:])
    sub.insert(0, "row_id", [f"{s}_{e}" for s in test_stems[:3] for e in ends])
    sub.to_csv(root / "sample_submission.csv", index=False)


def _write_readme(root: Path, seed: int, n_species: int, clips_per_species: int, n_train_soundscapes: int,
                  n_test_soundscapes: int) -> None:
    """``README.txt``: what the data is, how it was made, its parameters and license."""
    (root / "README.txt").write_text(
        f"Synthetic demo data made by embedkit (embedkit.demo.data.make_demo_dataset), seed={seed}.\n"
        f"Not real recordings: procedural calls of {n_species} made-up species over synthetic noise, in the\n"
        "BirdCLEF 2025 layout (train_audio/, train.csv, taxonomy.csv, sample_submission.csv,\n"
        "train_soundscapes/, test_soundscapes/). test_truth.csv holds the 5 s window labels of\n"
        "test_soundscapes: 1 where a call of the species overlaps the window by at least 0.5 s.\n"
        f"Parameters: n_species={n_species} clips_per_species={clips_per_species} "
        f"n_train_soundscapes={n_train_soundscapes} n_test_soundscapes={n_test_soundscapes}.\n"
        "License: CC0.\n", encoding="utf-8")


def make_demo_dataset(root: str | os.PathLike, n_species: int = 24, clips_per_species: int = 8,
                      n_train_soundscapes: int = 4, n_test_soundscapes: int = 8, seed: int = 0,
                      *, workers: int | None = None) -> Path:
    """Write the synthetic demo dataset (layout in the module docstring) under ``root``.

    Args:
        root: output folder (created; existing files of the same names are overwritten).
        n_species: number of made-up species (2-160), spread round robin over the call families.
        clips_per_species: focal training clips per species (2-30 s, a few shorter than 5 s).
        n_train_soundscapes: unlabelled one-minute soundscapes in ``train_soundscapes/``.
        n_test_soundscapes: labelled one-minute soundscapes in ``test_soundscapes/`` (truth in
            ``test_truth.csv``; ``sample_submission.csv`` has rows for the first 3 only, like Kaggle's).
        seed: everything is drawn from it; the output does not depend on ``workers``.
        workers: threads for synthesis and OGG encoding (default: CPU count, at most 4).

    Returns:
        ``root`` as a Path.
    """
    if not 2 <= n_species <= MAX_SPECIES:
        raise ValueError(f"n_species must be between 2 and {MAX_SPECIES}, got {n_species}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    species = species_table(n_species, seed)
    meta = np.random.default_rng([seed, 5])
    stems = _stems(meta, n_train_soundscapes + n_test_soundscapes)
    train_stems, test_stems = sorted(stems[:n_train_soundscapes]), sorted(stems[n_train_soundscapes:])
    rows = _train_rows(species, clips_per_species, meta)
    secondaries, events = _write_audio(root, species, rows, clips_per_species, train_stems, test_stems, seed,
                                       workers)
    for row, sec in zip(rows, secondaries, strict=True):
        row["secondary_labels"] = repr(sec)
    pd.DataFrame(rows, columns=TRAIN_COLUMNS).to_csv(root / "train.csv", index=False)
    pd.DataFrame(species, columns=TAXONOMY_COLUMNS).to_csv(root / "taxonomy.csv", index=False)
    _write_truth(root, species, events, test_stems)
    _write_readme(root, seed, n_species, clips_per_species, n_train_soundscapes, n_test_soundscapes)
    return root


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--out DIR --seed N`` (plus optional size flags); writes the dataset, prints a summary."""
    ap = argparse.ArgumentParser(prog="embedkit demo-data", description="Write the synthetic demo dataset.")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--seed", type=int, default=0, help="random seed (same seed, same data)")
    ap.add_argument("--species", type=int, default=24, help="number of made-up species")
    ap.add_argument("--clips", type=int, default=8, help="training clips per species")
    ap.add_argument("--train-soundscapes", type=int, default=4, help="unlabelled one-minute soundscapes")
    ap.add_argument("--test-soundscapes", type=int, default=8, help="labelled one-minute soundscapes")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    root = make_demo_dataset(args.out, n_species=args.species, clips_per_species=args.clips, seed=args.seed,
                             n_train_soundscapes=args.train_soundscapes,
                             n_test_soundscapes=args.test_soundscapes)
    print(f"wrote synthetic demo dataset (seed {args.seed}) to {root} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

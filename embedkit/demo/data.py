"""Seeded synthetic dataset in the BirdCLEF 2025 layout, for ``make demo`` and the tests.

Written under ``root``::

    train_audio/<label>/<id>.ogg  train.csv  taxonomy.csv  sample_submission.csv  README.txt
    train_soundscapes/<site>_<date>_<time>.ogg  test_soundscapes/*.ogg  test_truth.csv

Audio is 32 kHz mono OGG Vorbis. Species are made up; their calls come from :mod:`embedkit.demo.calls`.
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
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from embedkit.demo.calls import CLASS_OF, FAMILIES, SR, species_params, synth_call

WINDOW_S = 5
SOUNDSCAPE_S = 60
TRAIN_COLUMNS = ["primary_label", "secondary_labels", "type", "filename", "collection", "rating", "url",
                 "latitude", "longitude", "scientific_name", "common_name", "author", "license"]
TAXONOMY_COLUMNS = ["primary_label", "inat_taxon_id", "scientific_name", "common_name", "class_name"]
LICENSE = "demo (synthetic, CC0)"
MAX_SPECIES = 160
_BANK_N = 1 << 21  # ~65 s of periodic background noise, sliced circularly at random offsets
_ADJ = ("Azure", "Banded", "Crimson", "Dusky", "Golden", "Hooded", "Little", "Marsh", "Olive", "Pale",
        "Ruddy", "Scaly", "Spotted", "Tawny", "Velvet", "Ashy", "Chestnut", "Lesser", "Greater", "Sooty",
        "Striped", "Plain", "Collared", "Bronzy")
_NOUNS = {"Aves": ("Warbler", "Tanager", "Kingfisher", "Flycatcher", "Wren", "Thrush", "Antbird", "Motmot",
                   "Saltator", "Seedeater", "Woodcreeper", "Puffbird"),
          "Amphibia": ("Treefrog", "Rainfrog", "Toad", "Glassfrog", "Poison Frog"),
          "Insecta": ("Katydid", "Cicada", "Cricket", "Bush Cricket"),
          "Mammalia": ("Howler", "Titi", "Tamarin", "Night Monkey")}
_GENUS = {"upsweep": "Synthetica", "downsweep": "Fictornis", "trill": "Simulavis", "harmonic": "Pseudopipra",
          "pulses": "Artifactus", "croak": "Fictohyla", "buzz": "Simulacris", "howl": "Demoalouatta"}
_EPITHETS = ("alba", "rufa", "minor", "major", "viridis", "cantans", "sonora", "pallida", "maculata", "fusca",
             "aurea", "obscura", "virgata", "montana", "palustris", "vocifera", "nigra", "lineata", "tenuis",
             "crepitans")
_AUTHORS = ("Ana Restrepo", "Bruno Salas", "Carla Mejía", "Diego Ortiz", "Elena Vargas", "Felipe Rojas",
            "Gloria Pardo", "Hugo Castaño", "Inés Duarte", "Julián Mora", "Karen Quintero", "Luis Arango")


def _species_table(n_species: int, seed: int) -> list[dict]:
    """Made-up species: label, names, class and call parameters; ``n_species`` dicts in index order."""
    rng = np.random.default_rng([seed, 0])
    fams = [FAMILIES[i % len(FAMILIES)] for i in range(n_species)]
    counts, seen, labels, names = Counter(fams), Counter(), set(), set()
    epithets = {f: rng.permutation(_EPITHETS) for f in FAMILIES}
    out = []
    for fam in fams:
        k, cls = seen[fam], CLASS_OF[fam]
        seen[fam] += 1
        params = species_params(fam, k, counts[fam], rng)
        common = f"{rng.choice(_ADJ)} {rng.choice(_NOUNS[cls])}"
        while common in names:
            common = f"{rng.choice(_ADJ)} {rng.choice(_NOUNS[cls])}"
        names.add(common)
        if cls == "Aves":  # eBird-style: 3 + 3 letters, a digit on some
            words = common.split()
            stem, digit = (words[0][:3] + words[-1][:3]).lower(), int(rng.random() < 0.5)
            while (label := stem + (str(digit) if digit else "")) in labels:
                digit += 1
            taxon = int(rng.integers(1000, 1_000_000))
        else:  # iNat-style numeric id
            taxon = int(rng.integers(20_000, 1_600_000))
            while str(taxon) in labels:
                taxon += 1
            label = str(taxon)
        labels.add(label)
        out.append({"primary_label": label, "inat_taxon_id": taxon, "common_name": common, "class_name": cls,
                    "scientific_name": f"{_GENUS[fam]} {epithets[fam][k]}", "params": params})
    return out


def _noise_bank(seed: int) -> np.ndarray:
    """Unit-RMS periodic background noise: rows pink, brown (high-passed at 20 Hz), low rumble.

    Returns:
        float32 [3, 2**21]; each row is one period of a circular signal (FFT synthesis), so slices may wrap.
    """
    rng = np.random.default_rng([seed, 1])
    spec = np.fft.rfft(rng.standard_normal(_BANK_N, dtype=np.float32))
    f = np.maximum(np.fft.rfftfreq(_BANK_N, 1 / SR), 1.0)
    shapes = [f ** -0.5 * (f > 20), 1 / np.maximum(f, 20.0), np.exp(-((f / 120) ** 2)) / np.maximum(f, 15.0)]
    bank = np.stack([np.fft.irfft(spec * s.astype(np.float32), _BANK_N) for s in shapes])
    return (bank / np.sqrt((bank**2).mean(axis=1, keepdims=True))).astype(np.float32)


def _slice(row: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random (sometimes time-reversed) circular excerpt of one bank row, float32 [n <= len(row)]."""
    off = int(rng.integers(0, len(row)))
    part = row[off:off + n] if off + n <= len(row) else np.concatenate([row[off:], row[: off + n - len(row)]])
    return part[::-1] if rng.random() < 0.5 else part


def _curve(rng: np.random.Generator, n: int, step_s: float, lo_db: float, hi_db: float) -> np.ndarray:
    """Slowly varying gain: random dB levels every ``step_s`` seconds, linearly interpolated; float32 [n]."""
    k = int(n / (step_s * SR)) + 2
    gains = 10 ** (rng.uniform(lo_db, hi_db, k) / 20)
    coarse = np.interp(np.arange(0, n, 64), np.linspace(0, n, k), gains).astype(np.float32)
    return np.repeat(coarse, 64)[:n]


def _mix(buf: np.ndarray, call: np.ndarray, start_s: float, gain: float) -> float:
    """Add ``gain * call`` into ``buf`` [n] at ``start_s``; returns the seconds of the call that fit."""
    s = int(start_s * SR)
    e = min(len(buf), s + len(call))
    buf[s:e] += gain * call[: e - s]
    return (e - s) / SR


def _clip(i: int, j: int, species: list[dict], seed: int, bank: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Focal clip ``j`` of species ``i``: float32 [samples] peak 0.5, and its secondary labels."""
    rng = np.random.default_rng([seed, 2, i, j])
    short = rng.random() < 0.06 or (j == 0 and i % 4 == 0)
    dur = rng.uniform(2.0, 4.0) if short else float(np.exp(rng.uniform(np.log(4.5), np.log(30.0))))
    n = int(dur * SR)
    w = rng.uniform(0.2, 1.0)
    x = (w * _slice(bank[0], n, rng) + (1 - w) * _slice(bank[1], n, rng)) * 10 ** (-rng.uniform(14, 30) / 20)
    p = species[i]["params"]
    for t in rng.uniform(0, max(dur - 0.5, 0.05), max(1, rng.poisson(dur * p["rate"]))):
        _mix(x, synth_call(p, rng), t, 10 ** (rng.uniform(-6, 0) / 20))
    secondary: list[str] = []
    if len(species) > 1 and rng.random() < 0.25:
        others = [k for k in range(len(species)) if k != i]
        for o in rng.choice(others, size=min(len(others), int(rng.integers(1, 3))), replace=False):
            for t in rng.uniform(0, max(dur - 0.5, 0.05), int(rng.integers(1, 3))):
                _mix(x, synth_call(species[o]["params"], rng), t, 10 ** (rng.uniform(-24, -14) / 20))
            secondary.append(species[o]["primary_label"])
    return (x * (0.5 / max(float(np.abs(x).max()), 1e-9))).astype(np.float32), sorted(secondary)


def _soundscape(seed: int, tag: int, idx: int, species: list[dict],
                bank: np.ndarray) -> tuple[np.ndarray, list[tuple[int, float, float]]]:
    """One minute of ambience with 0-4 species calling.

    Returns:
        (audio float32 [60 * SR], events: list of (species index, start s, end s)).
    """
    rng = np.random.default_rng([seed, tag, idx])
    n = SOUNDSCAPE_S * SR
    w = rng.uniform(0.2, 1.0)
    x = (w * _slice(bank[0], n, rng) + (1 - w) * _slice(bank[1], n, rng)) * _curve(rng, n, 8, -6, 3)
    x *= 10 ** (rng.uniform(-36, -28) / 20)
    if rng.random() < 0.6:  # wind: low rumble with gusts
        x += _slice(bank[2], n, rng) * _curve(rng, n, 2, -20, 0) ** 2 * 10 ** (rng.uniform(-32, -22) / 20)
    if rng.random() < 0.3:  # rain: broadband bursts of 3-20 s
        env = np.zeros(n, np.float32)
        for _ in range(int(rng.integers(1, 4))):
            s = int(rng.uniform(0, SOUNDSCAPE_S - 3) * SR)
            seg = env[s:s + int(rng.uniform(3, 20) * SR)]
            seg[:] = np.maximum(seg, np.hanning(len(seg)) ** 0.3)
        x += rng.standard_normal(n, dtype=np.float32) * env * 10 ** (rng.uniform(-40, -30) / 20)
    events = []
    k = int(rng.choice(5, p=[0.05, 0.15, 0.25, 0.3, 0.25]))
    for sp in rng.choice(len(species), size=min(k, len(species)), replace=False):
        a = rng.uniform(0, 50)  # a bout from a to b
        b = a + rng.uniform(10, max(10.0, SOUNDSCAPE_S - a)) - 0.6
        level = rng.uniform(-22, -6)
        for t in np.sort(rng.uniform(a, b, int(rng.integers(2, 13)))):
            d = _mix(x, synth_call(species[sp]["params"], rng), t, 10 ** ((level + rng.uniform(-3, 3)) / 20))
            events.append((int(sp), float(t), float(t + d)))
    return x * min(1.0, 0.9 / max(float(np.abs(x).max()), 1e-9)), events


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
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, SR, format="OGG", subtype="VORBIS")


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
    species = _species_table(n_species, seed)
    bank = _noise_bank(seed)
    meta = np.random.default_rng([seed, 5])
    stems = _stems(meta, n_train_soundscapes + n_test_soundscapes)
    train_stems, test_stems = sorted(stems[:n_train_soundscapes]), sorted(stems[n_train_soundscapes:])
    ids = meta.choice(900_000, size=n_species * clips_per_species, replace=False) + 100_000
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

    def clip_job(r: int) -> list[str]:
        audio, secondary = _clip(r // clips_per_species, r % clips_per_species, species, seed, bank)
        _write(root / "train_audio" / rows[r]["filename"], audio)
        return secondary

    def scape_job(args: tuple[int, int, str]) -> list:
        tag, idx, stem = args
        audio, events = _soundscape(seed, tag, idx, species, bank)
        _write(root / ("train_soundscapes" if tag == 3 else "test_soundscapes") / f"{stem}.ogg", audio)
        return events

    scapes = [(3, k, s) for k, s in enumerate(train_stems)] + [(4, k, s) for k, s in enumerate(test_stems)]
    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as ex:
        scape_results = ex.map(scape_job, scapes)  # long jobs first
        secondaries = list(ex.map(clip_job, range(len(rows))))
        events = list(scape_results)[len(train_stems):]
    for row, sec in zip(rows, secondaries, strict=True):
        row["secondary_labels"] = repr(sec)
    pd.DataFrame(rows, columns=TRAIN_COLUMNS).to_csv(root / "train.csv", index=False)
    pd.DataFrame(species, columns=TAXONOMY_COLUMNS).to_csv(root / "taxonomy.csv", index=False)

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
    (root / "README.txt").write_text(
        f"Synthetic demo data made by embedkit (embedkit.demo.data.make_demo_dataset), seed={seed}.\n"
        f"Not real recordings: procedural calls of {n_species} made-up species over synthetic noise, in the\n"
        "BirdCLEF 2025 layout (train_audio/, train.csv, taxonomy.csv, sample_submission.csv,\n"
        "train_soundscapes/, test_soundscapes/). test_truth.csv holds the 5 s window labels of\n"
        "test_soundscapes: 1 where a call of the species overlaps the window by at least 0.5 s.\n"
        f"Parameters: n_species={n_species} clips_per_species={clips_per_species} "
        f"n_train_soundscapes={n_train_soundscapes} n_test_soundscapes={n_test_soundscapes}.\n"
        "License: CC0.\n", encoding="utf-8")
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

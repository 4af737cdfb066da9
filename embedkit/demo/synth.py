"""Synthesis for the demo dataset (:mod:`embedkit.demo.data`): made-up species, focal clips, soundscapes.

Everything is drawn from seeded generators keyed by (seed, tag, index), so one clip or soundscape does not
depend on the order in which the others are made. Audio is float32 at :data:`embedkit.demo.calls.SR`.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from embedkit.demo.calls import CLASS_OF, FAMILIES, SR, species_params, synth_call

SOUNDSCAPE_S = 60
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


def species_table(n_species: int, seed: int) -> list[dict]:
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


def noise_bank(seed: int) -> np.ndarray:
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


def focal_clip(i: int, j: int, species: list[dict], seed: int,
               bank: np.ndarray) -> tuple[np.ndarray, list[str]]:
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


def soundscape(seed: int, tag: int, idx: int, species: list[dict],
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

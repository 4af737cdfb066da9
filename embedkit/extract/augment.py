"""``extract.py --augment-background DIR --variants K``: K augmented embeddings beside each clean one.

Each window is embedded clean (``variant`` 0) and K times mixed with a random crop of a background
recording of ``DIR`` at an SNR drawn from ``--snr-db LO HI`` (and, if asked, a gain from ``--gain-db`` and a
time shift up to ``--shift-s``; :func:`embedkit.audio.augment.augment_window`). The variants are extra rows of
the same shard (a file's clean and augmented rows are written together, so resume and ``--part`` work as
for clean extraction); ``fit.py --augmented clean+mixed`` trains on them. Variant v of window k of file f
draws from ``default_rng([seed, crc32(f), k])``, so a rerun, a resumed run and any ``--part`` split give
the same audio. Background recordings are decoded once at the start, resampled to the backbone's rate: a
seeded random subset of at most ``--augment-pool`` files (memory: their length x rate x 4 bytes).
Mixup with other species' windows is not done here: it needs windows of other files and their labels (see
``embedkit evaluate``'s augmented rows, which measure it).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import numpy as np

from embedkit.audio import list_audio, load_mono
from embedkit.audio.augment import Augment, augment_window
from embedkit.config import ExtractConfig
from embedkit.errors import UsageError


def _settings(cfg: ExtractConfig) -> Augment:
    try:
        lo, hi = (float(v) for v in cfg.snr_db)
        glo, ghi = (float(v) for v in cfg.gain_db)
    except (TypeError, ValueError):
        raise UsageError(
            f"--snr-db and --gain-db take two numbers LO HI, got {cfg.snr_db} {cfg.gain_db}"
        ) from None
    try:
        return Augment(snr_db=(lo, hi), gain_db=(glo, ghi), shift_s=float(cfg.shift_s))
    except ValueError as e:
        raise UsageError(f"--augment-background: {e}") from None


def background_files(cfg: ExtractConfig) -> list[Path]:
    """The seeded subset of ``--augment-background`` files this run mixes in (sorted)."""
    folder = Path(cfg.augment_background)
    paths = list_audio(folder) if folder.is_dir() else []
    if not paths:
        raise UsageError(f"--augment-background {folder}: no audio files there")
    if len(paths) > cfg.augment_pool:
        rng = np.random.default_rng(cfg.augment_seed)
        paths = sorted(paths[i] for i in rng.choice(len(paths), cfg.augment_pool, replace=False))
    return paths


def augment_provenance(cfg: ExtractConfig, paths: list[Path]) -> dict:
    """What the shards record under ``augment``: folder, hash of the file list, K, SNR, gain, shift, seed."""
    aug = _settings(cfg)
    root = Path(cfg.augment_background)
    listing = [(p.relative_to(root).as_posix(), p.stat().st_size) for p in paths]
    return {
        "backgrounds": str(root),
        "files": len(paths),
        "files_sha256": hashlib.sha256(json.dumps(listing).encode()).hexdigest(),
        "variants": int(cfg.variants),
        "snr_db": list(aug.snr_db),
        "gain_db": list(aug.gain_db),
        "shift_s": aug.shift_s,
        "mixup": 0.0,
        "seed": int(cfg.augment_seed),
    }


class Augmenter:
    """Callable ``(file index, window index, clean window [S]) -> K variants [S]`` for the stream.

    Attributes:
        variants: K.
        provenance: the shards' ``augment`` entry.
        names: relative path per file index of the stream (seeds each file's draws by its path).
    """

    def __init__(self, cfg: ExtractConfig, sample_rate: int):
        if cfg.variants < 1:
            raise UsageError(f"--variants must be >= 1 with --augment-background, got {cfg.variants}")
        if cfg.augment_pool < 1:
            raise UsageError(f"--augment-pool must be >= 1, got {cfg.augment_pool}")
        self.aug = _settings(cfg)
        paths = background_files(cfg)
        self.provenance = augment_provenance(cfg, paths)
        self.variants, self.seed, self.sr = int(cfg.variants), int(cfg.augment_seed), sample_rate
        self.names: list[str] = []  # relative path per file index of the stream (set by the run)
        self.backgrounds = [b for b in (load_mono(p, sample_rate) for p in paths) if len(b)]
        if not self.backgrounds:
            raise UsageError(f"--augment-background {cfg.augment_background}: every file is empty")

    def __call__(self, idx: int, k: int, window: np.ndarray) -> list[np.ndarray]:
        """K variants float32 [S] of window ``k`` of file ``idx`` (seeded by its path and ``k``)."""
        rng = np.random.default_rng([self.seed, zlib.crc32(self.names[idx].encode()), k])
        return [
            augment_window(window, self.backgrounds, rng, self.aug, self.sr)[0] for _ in range(self.variants)
        ]


__all__ = ["Augmenter", "augment_provenance", "background_files"]

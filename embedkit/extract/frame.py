"""``embedkit.embed(files, backbone)``: window embeddings of audio files as a pandas DataFrame, in memory.

The notebook face of extraction: the same decoding, windows and backbone calls as ``extract.py``
(:func:`embedkit.audio.stream.embed_files`), without shards.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from embedkit.errors import UsageError


def audio_paths(files: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given: one path, a folder (every audio file below it, sorted), or several of either.

    Raises:
        UsageError: a path that does not exist, or no audio file at all.
    """
    from embedkit.audio import list_audio

    items = [files] if isinstance(files, str | os.PathLike) else list(files)
    out: list[Path] = []
    for f in map(Path, items):
        if f.is_dir():
            out += list_audio(f)
        elif f.is_file():
            out.append(f)
        else:
            raise UsageError(f"{f}: no such audio file or folder")
    if not out:
        raise UsageError(f"no audio files in {', '.join(map(str, items)) or 'an empty list'}")
    return out


def window_frame(paths: list[Path], per_file: dict[int, np.ndarray], hop_s: float, window_s: float):
    """``(file, start, end)`` rows for each file's windows in input order, and the stacked values.

    Args:
        paths: the files.
        per_file: file index → values of its W windows, [W, ...].
        hop_s: seconds between window starts.
        window_s: window length (``end = start + window_s``, also for a padded last window).

    Returns:
        ``(DataFrame with file, start, end; values [N, ...] in the same row order)``.
    """
    import pandas as pd

    keys, vals = [], []
    for k in sorted(per_file):
        W = len(per_file[k])
        start = np.arange(W) * float(hop_s)
        keys.append(pd.DataFrame({"file": str(paths[k]), "start": start, "end": start + float(window_s)}))
        vals.append(per_file[k])
    if not keys:
        return pd.DataFrame({"file": [], "start": [], "end": []}), np.zeros((0,))
    return pd.concat(keys, ignore_index=True), np.concatenate(vals)


def report_failures(failed: dict[int, str], paths: list[Path], who: str) -> None:
    """One stderr line per file that gave no windows (nothing is dropped silently)."""
    for k, reason in sorted(failed.items()):
        print(f"[{who}] could not use {paths[k]}: {reason} (no rows)", file=sys.stderr)


def embed_frame(
    files,
    backbone,
    *,
    window_s: float = 5.0,
    hop_s: float = 5.0,
    batch_size: int = 32,
    logits: bool = False,
    progress: bool = False,
    **kw,
):
    """Embeddings of every window of ``files``.

    Args:
        files: an audio file, a folder (searched recursively) or a list of either.
        backbone: a registered backbone name (``embedkit backbones``) or a built backbone.
        window_s: window length in seconds.
        hop_s: seconds between window starts (5 = no overlap).
        batch_size: windows per backbone call.
        logits: also the backbone's own class logits (column ``logits``, float32 [K] arrays): the second
            input of an exported model that uses the zero-shot prior (``embedkit export``).
        progress: show a progress bar.
        **kw: backbone options (``weights``, ``threads``, ``device``, ``layer``, ``model``, ``pool`` ...);
            unset ones as ``extract.py``'s defaults (BirdNET: ``pool="concat"``, [n_chunks * 1024]).

    Returns:
        DataFrame with one row per window: ``file`` (str, as given), ``start``, ``end`` (seconds), ``emb``
        (float32 [D] array); ``attrs["failures"]``: ``{file: reason}`` of files that gave no windows (also
        printed on stderr).
    """
    from embedkit.audio import Windowing
    from embedkit.audio.stream import embed_files
    from embedkit.backbones import get_backbone

    paths = audio_paths(files)
    own = isinstance(backbone, str)
    if own:
        from embedkit.extract.options import window_defaults

        # what a window is as extract.py makes it (birdnet: chunks kept apart, mean and max over time)
        bb = get_backbone(backbone, **{**window_defaults(backbone, window_s), **kw})
    else:
        bb = backbone
    got: dict[int, np.ndarray] = {}
    lgt: dict[int, np.ndarray] = {}
    failed: dict[int, str] = {}
    w = Windowing(window_s, hop_s)
    try:
        for fe in embed_files(bb, paths, w, batch_size=batch_size, logits=logits, progress=progress):
            if fe.error is not None:
                failed[fe.index] = fe.error
            else:
                got[fe.index], lgt[fe.index] = fe.emb, fe.logits
    finally:
        if own:
            bb.close()
    report_failures(failed, paths, "embed")
    df, X = window_frame(paths, got, hop_s, window_s)
    df["emb"] = list(X.astype(np.float32)) if len(df) else []
    if logits:
        L = window_frame(paths, lgt, hop_s, window_s)[1]
        df["logits"] = list(L.astype(np.float32)) if len(df) else []
    df.attrs["failures"] = {str(paths[k]): r for k, r in failed.items()}
    return df


__all__ = ["audio_paths", "embed_frame", "report_failures", "window_frame"]

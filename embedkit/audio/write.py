"""The one audio writer of embedkit: block-wise, so long Vorbis files do not crash libsndfile.

libsndfile 1.2.2 (the one soundfile 0.14 ships) dies with SIGSEGV when a single ``sf_write`` call hands it
more than about 2M samples of Ogg Vorbis (60 s at 44.1/48 kHz, 70 s at 32 kHz): ``soundfile.write`` does
exactly that, one call for the whole array. :func:`write_audio` opens a :class:`soundfile.SoundFile` and
writes :data:`BLOCK` frames per call instead (any length, any format), through a temp file beside the target
renamed into place when complete (:func:`embedkit.files.replace_atomically`), so a failed write never leaves
a partial file or a temp file behind. Every audio file embedkit writes goes through here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: frames per ``SoundFile.write`` call (far below the ~2M-sample Vorbis crash, large enough to be fast)
BLOCK = 1 << 16

#: file suffix → soundfile major format
FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".mp3": "MP3"}


def write_blocks(f, audio: np.ndarray, block: int = BLOCK) -> None:
    """Write ``audio`` [frames] or [frames, channels] to an open :class:`soundfile.SoundFile` in blocks."""
    for i in range(0, len(audio), block):
        f.write(audio[i : i + block])


def write_audio(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    format: str | None = None,
    subtype: str | None = None,
    atomic: bool = True,
    block: int = BLOCK,
) -> Path:
    """Write ``audio`` to ``path`` block by block (see the module docstring).

    Args:
        path: target file.
        audio: float samples [frames] (mono) or [frames, channels], in [-1, 1].
        sample_rate: samples per second.
        format: soundfile major format (``WAV``, ``FLAC``, ``OGG``; default: from the suffix).
        subtype: e.g. ``PCM_16``, ``VORBIS`` (default: the format's default).
        atomic: write a temp file beside ``path`` and rename it into place (default); False writes ``path``
            directly (for a file inside a folder that is itself renamed into place when complete).
        block: frames per write call.

    Returns:
        ``path``.
    """
    import soundfile as sf

    path = Path(path)
    a = np.asarray(audio)
    channels = 1 if a.ndim == 1 else a.shape[1]
    fmt = format or FORMATS.get(path.suffix.lower())

    def write(target: Path) -> None:
        with sf.SoundFile(str(target), "w", int(sample_rate), channels, subtype, format=fmt) as f:
            write_blocks(f, a, block)

    if not atomic:
        try:
            write(path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path
    from embedkit.files import replace_atomically

    return replace_atomically(path, write, sync=False)


__all__ = ["BLOCK", "FORMATS", "write_audio", "write_blocks"]

"""Audio room: decode, resample, windows; decoder threads feeding batched backbone calls.

:mod:`.decode`: soundfile decoding, downmix, soxr resampling, 5 s windows and row ids (re-exported here).
:mod:`.stream`: decoder threads that feed a backbone in batches (imported on its own).
"""

from embedkit.audio.decode import (
    AUDIO_SUFFIXES,
    AudioError,
    Windowing,
    duration_s,
    iter_windows,
    list_audio,
    load_mono,
    row_id,
    stream_mono,
    window_spans,
)

__all__ = [
    "AUDIO_SUFFIXES",
    "AudioError",
    "Windowing",
    "duration_s",
    "iter_windows",
    "list_audio",
    "load_mono",
    "row_id",
    "stream_mono",
    "window_spans",
]

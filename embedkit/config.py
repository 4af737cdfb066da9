"""Configs are dataclasses; the TOML files in ``configs/`` are their saved form.

Every stage (extract, fit, infer, analyze) has one flat dataclass. Its fields are the stage's options: the
defaults live here, ``configs/<stage>.toml`` (or ``--config FILE``) overrides them, and command-line flags
override the file. The CLI flags are generated from the fields (:mod:`embedkit.cli`), so they cannot drift.
Field help text lives in ``metadata={"help": ...}``. Reading, checking and writing them is
:mod:`embedkit.config_io` (its names are importable from here too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embedkit.config_io import (  # noqa: F401 - re-exported: the rest of embedkit imports them from here
    CONFIG_DIR,
    ConfigError,
    cache_dir,
    dumps_toml,
    from_dict,
    load,
    opt,
    save,
    to_dict,
)


@dataclass
class ExtractConfig:
    """Options of ``extract.py``: audio → 5 s windows → backbone → parquet shards."""

    backbone: str = opt("birdnet", "backbone name (see `embedkit backbones`)")
    weights: str | None = opt(None, "weights file or local folder (panns: .pth, wav2vec2: HF folder)")
    layer: int | None = opt(None, "wav2vec2: hidden layer to mean-pool (default: last)")
    model_config: str | None = opt(None, "onnx/tflite/perch: TOML file describing the model's inputs/outputs")
    model: dict = opt({}, "onnx/tflite/perch: description keys, e.g. --model embedding=emb sample_rate=32000")
    data: str = opt("/kaggle/input/birdclef-2025", "BirdCLEF data root")
    split: str = opt(
        "train_audio", "train_audio | train_soundscapes | test_soundscapes, or any folder name under --data"
    )
    files: str | None = opt(None, "a folder of audio, or a text file listing audio paths (overrides --split)")
    out: str = opt("embeddings", "output root; shards go to OUT/<backbone>/<split>/")
    name: str | None = opt(None, "dataset name under OUT/<backbone>/ (default: the split)")
    window_s: float = opt(5.0, "window length in seconds")
    hop_s: float = opt(5.0, "hop between window starts in seconds")
    min_tail_s: float = opt(
        1.0, "keep a last partial window (zero-padded) when it adds at least this much audio"
    )
    max_windows: int | None = opt(None, "at most this many windows per file (long train recordings)")
    dtype: str = opt("float16", "embedding storage dtype: float16 | float32")
    batch_size: int = opt(32, "windows per backbone call")
    threads: int | None = opt(None, "CPU threads for the backbone (default: all cores)")
    decode_workers: int = opt(1, "decoding threads that feed the backbone")
    device: str = opt("auto", "torch backbones: auto | cpu | cuda")
    bf16: bool = opt(True, "torch backbones on CPU: bf16 autocast where the CPU supports it")
    chunk_offsets: list[float] = opt([0.0, 2.0], "birdnet: offsets (s) of the 3 s chunks in a 5 s window")
    pool: str = opt(
        "concat",
        "birdnet: chunk embeddings kept apart (concat: n chunks side by side; the proto head compares each "
        "chunk) or pooled: mean | max",
    )
    logit_pool: str | None = opt(
        "max", "birdnet: pooling of the stored logits over chunks: mean | max (max: the loudest chunk)"
    )
    time_pool: str = opt(
        "meanmax",
        "birdnet: each 3 s chunk's pre-pool map [6 x 0.5 s, 1024] pooled over time: mean (BirdNET's own "
        "embedding) | max (the loudest half second of each feature) | meanmax (both: 2048-D per chunk)",
        choices=["mean", "max", "meanmax"],
    )
    save_logits: bool = opt(False, "also store the backbone's own class logits (birdnet, perch, onnx/tflite)")
    augment_background: str | None = opt(
        None, "folder of background recordings: also store --variants embeddings per window mixed with them"
    )
    variants: int = opt(2, "--augment-background: augmented copies per window (extra rows, variant 1..K)")
    snr_db: list[float] = opt([-5.0, 10.0], "--augment-background: window-to-background SNR range LO HI (dB)")
    gain_db: list[float] = opt([0.0, 0.0], "--augment-background: gain range LO HI (dB) after mixing")
    shift_s: float = opt(0.0, "--augment-background: largest time shift of the window content (s)")
    augment_seed: int = opt(0, "--augment-background: seed (variants are the same on reruns and parts)")
    augment_pool: int = opt(64, "--augment-background: at most this many background files (a seeded subset)")
    part: str | None = opt(
        None,
        "i/N: take a stable 1/N share of the files (0-based i); auto: i and N from a Slurm job array or a "
        "Kubernetes Indexed Job (JOB_COMPLETION_INDEX + EMBEDKIT_PART_COUNT)",
    )
    shard_rows: int = opt(8192, "rows per shard (one row group each)")
    flush_s: float = opt(60.0, "write a shard at least this often (seconds), so a kill loses little")
    progress: bool = opt(True, "show a progress bar")
    engine: str = opt(
        "local", "local: this process | ray: a Ray Data pipeline (pip install 'embedkit[ray]')",
        choices=["local", "ray"],
    )
    ray_address: str | None = opt(None, "engine ray: cluster to join (e.g. ray://head:10001 or auto)")
    ray_actors: int | None = opt(None, "engine ray: backbone actors (default: one per GPU, else CPUs / 2)")


@dataclass
class FitConfig:
    """Options of ``fit.py``: shards + train.csv → cross-validated, saved head."""

    head: str = opt("proto", "head name (see `embedkit heads`)")
    backbone: str = opt("birdnet", "backbone whose embeddings to use")
    data: str = opt("/kaggle/input/birdclef-2025", "BirdCLEF data root (train.csv, sample_submission.csv)")
    embeddings: str = opt("embeddings", "embeddings root (the --out of extract.py)")
    split: str = opt("train_audio", "dataset name under EMBEDDINGS/<backbone>/")
    out: str = opt("models", "models root; the head goes to OUT/<name>/")
    name: str | None = opt(
        None, "model folder name (default: <backbone>-<head>; fused: <backbone>+<fuse>-<head>)"
    )
    folds: int = opt(5, "cross-validation folds (0 or 1: no CV, just fit)")
    group_by: str = opt("file", "CV groups: file | author", choices=["file", "author"])
    secondary_weight: float = opt(0.0, "target value of secondary labels (0 disables)")
    seed: int = opt(0, "random seed (folds and heads)")
    params: dict = opt({}, "head parameters, e.g. --params C=0.5 (TOML: [params] table)")
    zero_shot: str = opt(
        "auto",
        "the backbone's own logits (birdnet, perch, onnx/tflite with labels) of the labels mapped by "
        "scientific name, eBird code or iNat id: features | prior | both | off; auto = prior when the "
        "shards hold logits (extract.py --save-logits), else off",
        choices=["auto", "off", "features", "prior", "both"],
    )
    prior_choice: str = opt(
        "scaled",
        "zero-shot prior, the blend shared by the mapped labels: scaled = the head plus the backbone's "
        "logits at --prior-weight, each in units of its own spread; cv = the head at each weight of a grid "
        "or the backbone's classifier alone, whichever scores best on the out-of-fold clip windows (clips "
        "misjudge it: README)",
        choices=["scaled", "cv"],
    )
    prior_weight: float = opt(
        2.0,
        "zero-shot prior, --prior-choice scaled: the backbone's weight against the head's, each logit in "
        "units of its spread (std over the out-of-fold windows, median over the mapped labels); also any "
        "fit without cross-validation (spreads of the training windows)",
    )
    prior_per_class: bool = opt(
        False,
        "zero-shot prior: choose per class between the head blended at each prior weight and the backbone's "
        "classifier alone, shrunk toward the shared choice (chosen whatever --prior-choice; else the shared "
        "pair for every mapped label)",
    )
    class_weight: float = opt(0.0, "class-balancing exponent: row weight (n_max / n_class) ** a (0 = off)")
    confidence_weight: float = opt(
        0.0, "share of a window's weight set by its rank within its recording by --window-score (0 = off)"
    )
    window_score: str = opt(
        "primary",
        "what ranks a focal recording's windows for --confidence-weight and --window-keep (needs logits): "
        "primary = the backbone's logit of the recording's label (labels it does not know: every window, "
        "weight 1) | any = its top logit over all its classes | other = its top logit over the classes no "
        "label maps to",
        choices=["primary", "any", "other"],
    )
    window_keep: float = opt(
        1.0, "share of each focal recording's windows trained on: the best by --window-score, at least one "
        "(1 = all)"
    )
    unlabelled: str | None = opt(
        None, "dataset under EMBEDDINGS/<backbone>/ of unlabelled windows (e.g. train_soundscapes)"
    )
    weak_negatives: float = opt(
        1.0, "row weight of the --unlabelled windows as negatives of all labels (0 = off; needs --unlabelled)"
    )
    pseudo: int = opt(0, "self-training rounds on the unlabelled windows (0 = off)")
    pseudo_threshold: float = opt(0.99, "self-training: keep windows whose top probability reaches this")
    pseudo_power: float = opt(3.0, "self-training: soft target = probability ** power")
    pseudo_weight: float = opt(0.5, "self-training: row weight of the kept windows")
    pseudo_gate: float = opt(
        0.0,
        "self-training: a pseudo-positive of a label the backbone's own classifier knows also needs "
        "sigmoid(its logit) >= this (0 = no gate); labels it does not know keep --pseudo-threshold",
    )
    pseudo_gated_threshold: float = opt(
        0.9, "self-training with --pseudo-gate: probability threshold of the gated (known) labels"
    )
    fuse: list[str] = opt([], "more backbones whose embeddings of the same windows are concatenated")
    extra_labels: str | None = opt(
        None, "labelled windows (CSV of embedkit search / label): positives and explicit negatives per window"
    )
    tune_on: str | None = opt(
        None, "dataset under EMBEDDINGS/<backbone>/ of labelled soundscapes (e.g. made by embedkit compose): "
        "learn the zero-shot prior weight and the smoothing there (needs --tune-truth)"
    )
    tune_truth: str | None = opt(
        None, "truth CSV of the --tune-on soundscapes (wide or long, as embedkit score --truth reads)"
    )
    add_to: str | None = opt(
        None, "a saved model of the same backbone: fit only the labels it lacks and save both as one model "
        "(OUT/<name>, default <MODEL name>-extended); its labels' windows are negatives of the new ones"
    )
    augmented: str = opt(
        "clean",
        "shards with augmented variants (extract.py --augment-background): clean+mixed = also train on the "
        "mixed rows (CV scores clean rows only) | clean = ignore them",
        choices=["clean+mixed", "clean"],
    )
    annotations: list[str] = opt(
        [], "Raven selection tables (files or folders) labelling the windows of --split (not train.csv)"
    )
    annotated_fully: bool = opt(
        False, "--annotations: all calls in annotated files is boxed: windows outside boxes are negatives"
    )
    min_overlap: float = opt(
        0.5, "--annotations: a window is positive for a box covering this share of the box (or of the window)"
    )
    annotation_column: str | None = opt(
        None, "--annotations: the tables' class column (default: Annotation, Species, Species Code, ...)"
    )


@dataclass
class InferConfig:
    """Options of ``infer.py``: soundscapes → backbone(s) → saved head(s) → ``submission.csv``."""

    data: str = opt(
        "/kaggle/input/birdclef-2025", "BirdCLEF data root (sample_submission.csv, test_soundscapes/)"
    )
    soundscapes: str | None = opt(None, "folder of soundscapes (default: DATA/test_soundscapes)")
    models: list[str] = opt(["models/birdnet-proto"], "saved model folder(s) from fit.py")
    weights: list[float] | None = opt(None, "blend weights, one per model (default: equal)")
    smooth: float | None = opt(
        None, "temporal smoothing: weight given to the two neighbouring windows (0 = off); default: the "
        "model's own, learned by fit.py --tune-on, else 0.5"
    )
    file_max: float = opt(0.0, "blend each window with the file's maximum per class: weight of the maximum")
    tta: list[float] = opt(
        [1.25],
        "test-time augmentation: also predict each window shifted by -S and +S seconds per value S and "
        "average the probabilities (--tta 0 = off; 1 + 2 backbone passes per value)",
    )
    out: str = opt("submission.csv", "output CSV")
    sample: str | None = opt(
        None, "sample_submission.csv for the column order (default: DATA/sample_submission.csv)"
    )
    allow_label_mismatch: bool = opt(
        False, "write a submission whose labels partly differ from the model's (a column no model knows is 0)"
    )
    backbone_weights: dict = opt({}, "weights per backbone, e.g. --backbone-weights panns=/path/Cnn14.pth")
    threads: int | None = opt(None, "CPU threads for the backbones (default: all cores)")
    batch_size: int = opt(32, "windows per backbone call")
    decode_workers: int = opt(2, "decoding threads that feed the backbone")
    device: str = opt("auto", "torch backbones: auto | cpu | cuda")
    save_embeddings: str | None = opt(None, "also write the test embeddings as shards under this folder")
    budget_min: float | None = opt(None, "warn early when the projected run time exceeds this many minutes")
    progress: bool = opt(True, "show a progress bar")
    trust_pickle: bool = opt(
        False,
        "also load model folders of embedkit 0.1, whose heads are pickles: unpickling runs any code, so only "
        "for models you made or trust (better, once: embedkit upgrade-model DIR --trust-pickle)",
    )

    def backbone_run(self, backbone: str) -> dict[str, Any]:
        """How this run builds ``backbone`` (:func:`embedkit.backbones.build.build_backbone` arguments)."""
        return {
            "weights": self.backbone_weights.get(backbone),
            "threads": self.threads,
            "batch_size": self.batch_size,
            "device": self.device,
        }


@dataclass
class AnalyzeConfig:
    """Options of ``embedkit analyze``: recordings of any length → detection tables (per file + combined)."""

    models: list[str] = opt(["models/birdnet-proto"], "saved model folder(s) from fit.py (blended)")
    audio: list[str] = opt([], "audio folder(s) and/or file(s) to analyse")
    recursive: bool = opt(False, "also analyse the audio in sub-folders of the --audio folders")
    out: str = opt("analysis", "output folder: one table per recording (same sub-folders), combined tables")
    format: str = opt(
        "raven", "per-recording table format", choices=["raven", "audacity", "csv", "kaleidoscope", "parquet"]
    )
    min_score: float = opt(0.5, "write detections whose score is at least this")
    hop_s: float | None = opt(None, "hop between window starts in seconds (default: the model's, 5 s)")
    labels: list[str] = opt([], "only these labels: codes, or a text file with one code per line")
    weights: list[float] | None = opt(None, "blend weights, one per model (default: equal)")
    smooth: float | None = opt(None, "temporal smoothing (default: the model's learned one, else 0.5)")
    tta: list[float] = opt([0.0], "test-time shifts (s) as in infer (0 = off; each value: 2 more passes)")
    part: str | None = opt(None, "i/N or auto: analyse a stable 1/N share of the files (as extract.py)")
    overwrite: bool = opt(False, "analyse again files whose tables exist (else they are skipped)")
    backbone_weights: dict = opt({}, "weights per backbone, e.g. --backbone-weights panns=/path/Cnn14.pth")
    threads: int | None = opt(None, "CPU threads for the backbones (default: all cores)")
    batch_size: int = opt(32, "windows per backbone call")
    decode_workers: int = opt(2, "decoding threads that feed the backbone")
    device: str = opt("auto", "torch backbones: auto | cpu | cuda")
    progress: bool = opt(True, "show a progress bar")
    trust_pickle: bool = opt(False, "also load model folders of embedkit 0.1 (pickled heads; see infer)")
    engine: str = opt(
        "local", "local: this process | ray: an actor pool on Ray, one recording per task (embedkit[ray])",
        choices=["local", "ray"],
    )
    ray_address: str | None = opt(None, "engine ray: cluster to join (e.g. ray://head:10001 or auto)")
    ray_actors: int | None = opt(None, "engine ray: analysing actors (default: one per GPU, else CPUs / 2)")

    backbone_run = InferConfig.backbone_run

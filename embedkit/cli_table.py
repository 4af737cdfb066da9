"""The table of ``embedkit`` subcommands: each one's config dataclass, the function it runs, help, examples.

:mod:`embedkit.cli` builds the parser from it; the examples are the ``--help`` epilogs, which
``tests/test_readme.py`` runs. A new subcommand is one entry here (plus, without a config dataclass, one
branch of ``_extra_args`` in :mod:`embedkit.cli` for its flags).
"""

from __future__ import annotations

#: subcommand → (config dataclass: name in embedkit.config, "module:Class" or None; "module:function", help,
#: examples)
COMMANDS: dict[str, tuple[str | None, str, str, list[str]]] = {
    "extract": (
        "ExtractConfig",
        "embedkit.extract:main",
        "embed every 5 s window of a split into parquet shards",
        [
            "python extract.py --backbone birdnet --data /kaggle/input/birdclef-2025 --split train_audio",
            "python extract.py --backbone panns --weights Cnn14_mAP=0.431.pth --split train_soundscapes",
        ],
    ),
    "fit": (
        "FitConfig",
        "embedkit.train.run:main",
        "fit a head on stored embeddings with grouped cross-validation, then save it",
        [
            "python fit.py --backbone birdnet --data /kaggle/input/birdclef-2025   # → models/birdnet-proto",
            "python fit.py --head logreg --backbone panns --folds 5 --params C=0.5",
        ],
    ),
    "infer": (
        "InferConfig",
        "embedkit.predict.infer:main",
        "embed test soundscapes, apply saved head(s), write submission.csv",
        [
            "python infer.py --data /kaggle/input/birdclef-2025 --models models/birdnet-proto",
            "python infer.py --models models/birdnet-proto models/birdnet-mil --weights 0.6 0.4 --tta 0",
        ],
    ),
    "analyze": (
        "AnalyzeConfig",
        "embedkit.predict.analyze:main",
        "detect with saved model(s) in recordings of any length: a table per file (Raven, Audacity, ...)",
        [
            "embedkit analyze --models models/birdnet-proto "
            "--audio /kaggle/input/birdclef-2025/train_soundscapes --recursive --out out/detections",
            "embedkit analyze --models models/birdnet-proto "
            "--audio /kaggle/input/birdclef-2025/test_soundscapes --format csv --min-score 0.3 --hop-s 2.5 "
            "--out out/detections-csv",
        ],
    ),
    "index": (
        "embedkit.search.config:IndexConfig",
        "embedkit.search.commands:index_main",
        "build (or update with new shards) a nearest-neighbour index over a shard dataset",
        [
            "embedkit index --embeddings embeddings/birdnet/train_audio",
            "embedkit index --embeddings embeddings/birdnet/train_soundscapes --rebuild",
        ],
    ),
    "search": (
        "embedkit.search.config:SearchConfig",
        "embedkit.search.commands:search_main",
        "find the windows most similar to a clip or a stored window; hits.csv, snippets, an HTML page",
        [
            "embedkit search --index embeddings/birdnet/train_audio --query call.wav:1.5-4 --k 50 --html",
            "embedkit search --index embeddings/birdnet/train_audio --row-id XC46631_5 --exact",
        ],
    ),
    "label": (
        "embedkit.search.config:LabelConfig",
        "embedkit.search.label:main",
        "mark search hits y / n / skip in the terminal (or check a hits table labelled in an editor)",
        [
            "embedkit label --hits hits.csv --species banana --out labelled.csv",
            "python fit.py --data DATA --extra-labels labelled.csv",
        ],
    ),
    "evaluate": (
        None,
        "embedkit.evaluate.run:cmd_evaluate",
        "score a fit config on real audio: grouped-CV windows + composed soundscapes, vs BirdNET zero-shot",
        [
            "python -m embedkit.evaluate --data ../shared/data/xc-pr-birds --embeddings embeddings --table "
            "--backgrounds ../shared/data/backgrounds --seed 0 1 --soundscapes 12",
            "embedkit evaluate --data DATA --embeddings embeddings --soundscapes 12 "
            "--set head=logreg zero_shot=off",
        ],
    ),
    "score": (
        None,
        "embedkit.evaluate.score:cmd_score",
        "score a submission against your own labelled soundscapes: competition metric + per-class table",
        [
            "embedkit score submission.csv --truth test_truth.csv",
            "embedkit score submission.csv --truth train_soundscapes_labels.csv --labels labels.txt",
        ],
    ),
    "compose": (
        None,
        "embedkit.evaluate.compose_cmd:cmd_compose",
        "compose labelled soundscapes from held-out training calls over field recordings (to tune on)",
        [
            "embedkit compose --data DATA --backgrounds DATA/train_soundscapes --out tune --n 20 --seed 0",
            "python fit.py --data DATA --tune-on tune --tune-truth tune/truth.csv",
        ],
    ),
    "demo": (
        None,
        "embedkit.demo.run:cmd_demo",
        "make the synthetic demo dataset and run extract -> fit -> infer -> score on it",
        ["embedkit demo --out demo_run", "make demo"],
    ),
    "report": (
        None,
        "embedkit.report.page:cmd_report",
        "write an HTML page with figures: training data, CV scores per class and per model, a soundscape",
        [
            "embedkit report --models models --out report",
            "embedkit report --models demo_run/models --soundscape H02_20230420_074000 --out demo_run/report",
        ],
    ),
    "kaggle-kit": (
        None,
        "embedkit.kaggle_kit:cmd_kaggle_kit",
        "build a folder to upload as a Kaggle dataset: wheels, models, kaggle_infer.py (offline install)",
        [
            "embedkit kaggle-kit --models models/birdnet-proto --out kaggle_kit",
            "make kaggle-kit KIT_MODELS='models/birdnet-proto models/birdnet-mil' KAGGLE_PYTHON=3.12",
        ],
    ),
    "upgrade-model": (
        None,
        "embedkit.predict.upgrade:cmd_upgrade_model",
        "rewrite model folders of embedkit 0.1 (pickled heads) as data: JSON, safetensors, hashes",
        [
            "embedkit upgrade-model models/birdnet-mil --trust-pickle",
            "embedkit upgrade-model models/birdnet-mil models/panns-logreg --trust-pickle",
        ],
    ),
    "models": (
        None,
        "embedkit.predict.versions:cmd_models",
        "list saved models and their kept earlier versions; `rollback NAME` restores the previous version",
        ["embedkit models", "embedkit models rollback birdnet-proto"],
    ),
    "merge-models": (
        None,
        "embedkit.predict.merge:cmd_merge",
        "join models of one backbone: union of labels, a weighted mean where several know a label",
        [
            "embedkit merge-models models/birdnet-proto models/birdnet-mil --out models/merged",
            "embedkit merge-models models/birdnet-proto models/birdnet-mil --weights 3 1 --out models/m2",
        ],
    ),
    "export": (
        None,
        "embedkit.predict.export:cmd_export",
        "write a saved model as one ONNX graph (embeddings [+ logits] -> probabilities) + its label file",
        [
            "embedkit export models/birdnet-proto --format onnx",
            "embedkit export models/merged --out models/merged-head.onnx",
        ],
    ),
    "validate": (
        None,
        "embedkit.cli_builtin:cmd_validate",
        "check a submission: header and order, row ids, values finite in [0, 1]",
        [
            "python -m embedkit validate submission.csv --sample sample_submission.csv",
            "python -m embedkit validate submission.csv --sample sample_submission.csv --soundscapes test/",
        ],
    ),
    "backbones": (
        None,
        "embedkit.cli_builtin:cmd_backbones",
        "list registered backbones: sample rate, dimension, where weights are looked for",
        ["embedkit backbones", "python -m embedkit backbones"],
    ),
    "heads": (
        None,
        "embedkit.cli_builtin:cmd_heads",
        "list registered heads and their default parameters",
        ["embedkit heads", "python fit.py --head mil --params hidden=512 dropout=0.3"],
    ),
}

"""The real files the fuzzer mutates: model folders of every head kind (a tiny fit), a search index, a Kaggle
kit (without wheels), the TOML configs, and the tables (hits, sample submission).

Built once per test session with the ``toy`` backbone of ``conftest.py`` (so in a process that imported it):
``build_corpus(base)`` returns ``{name: path}``; ``seed_corpus(base)`` adds what needs no audio.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

FREQ = {"aaa": 500.0, "bbb": 1500.0, "ccc": 2500.0}
#: head kind -> extra ``fit --params`` (small and fast)
HEADS = {
    "logreg": [],
    "mlp": ["--params", "epochs=3", "hidden=8"],
    "lgbm": ["--params", "n_estimators=4", "num_leaves=4", "min_data_in_leaf=1", "feature_fraction=1.0"],
    "mil": ["--params", "epochs=2"],
}


def build_corpus(base: Path, heads=tuple(HEADS)) -> dict[str, Path]:
    """Toy audio → embeddings → one model per head, an index, a kit, configs and tables under ``base``.

    Returns:
        ``{"model-<head>": folder, "index": folder, "kit": folder, "config-<kind>": toml, "hits": csv,
        "sample": csv, "emb": dataset folder}``.
    """
    from conftest import toy_training_set, write_audio

    from embedkit import kaggle_kit as kk
    from embedkit.cli import main as cli_main
    from embedkit.store.manifest import manifest

    root, emb = base / "data", base / "emb"
    toy_training_set(root, emb, FREQ, durations=(5.0, 8.0))
    out: dict[str, Path] = {}
    for head in heads:
        args = ["fit", "--head", head, "--backbone", "toy", "--data", str(root), "--embeddings", str(emb),
                "--out", str(base / "models"), "--folds", "0", "--name", head, *HEADS[head]]  # fmt: skip
        assert cli_main(args) == 0, head
        out[f"model-{head}"] = (base / "models" / head).resolve()
    dataset = next(p.parent for p in emb.rglob("part-*.parquet"))
    assert cli_main(["index", "--embeddings", str(dataset)]) == 0
    out["index"] = dataset / "index"
    kit = base / "kit"
    (kit / "wheels").mkdir(parents=True)
    (kit / "wheels" / "a-1.0-py3-none-any.whl").write_bytes(b"a wheel")
    kit_heads = [h for h in heads if h in ("logreg", "lgbm")]
    names = kk.copy_models([base / "models" / h for h in kit_heads], kit / "models")
    (kit / "kaggle_infer.py").write_text(kk.kit_script(names))
    sha = {f"{part}/{k}": v for part in ("wheels", "models") for k, v in manifest(kit / part).items()}
    (kit / "kit.json").write_text(json.dumps({"models": names, "sha256": sha}, indent=1))
    out["kit"] = kit
    out["emb"] = dataset
    out["data"] = root
    write_audio(base / "scapes" / "S0.ogg", 10.0, freq=FREQ["bbb"], seed=100)
    out["scapes"] = base / "scapes"
    out.update(seed_corpus(base))
    return out


def seed_corpus(base: Path) -> dict[str, Path]:
    """The configs (every config dataclass's defaults as TOML) and the tables."""
    from embedkit import config as cfg

    out = {}
    for kind, cls in (("extract", cfg.ExtractConfig), ("fit", cfg.FitConfig), ("infer", cfg.InferConfig)):
        path = base / f"{kind}.toml"
        cfg.save(cls(), path)
        out[f"config-{kind}"] = path
    hits = base / "hits.csv"
    pd.DataFrame(
        {"rank": [1, 2], "score": [0.9, 0.8], "file": ["aaa/XC00.ogg", "bbb/XC10.ogg"], "window": [0, 1],
         "start_s": [0.0, 5.0], "end_s": [5.0, 10.0], "row_id": ["XC00_5", "XC10_10"],
         "label": ["y", ""], "species": ["aaa", ""]}
    ).to_csv(hits, index=False)  # fmt: skip
    out["hits"] = hits
    sample = base / "sample_submission.csv"
    sample.write_text("row_id," + ",".join(sorted(FREQ)) + "\nS0_5,0.1,0.2,0.3\n")
    out["sample"] = sample
    return out

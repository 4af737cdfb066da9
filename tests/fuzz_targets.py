"""What the fuzzer mutates and how it loads it: every target, and the lists CI runs (toggle them HERE).

A target names a corpus entry (``fuzz_corpus.build_corpus``), the files in it to mutate with their format
(``fuzz_mutate.FORMATS``; a glob picks one of several files), how to recompute its hashes after the edit
(``fuzz_tamper.REHASH``: model / index / kit; the attacker does it too), and the loader that runs in the
worker (``fuzz_worker.LOADERS``).

``CI_TARGETS`` run in ``make test`` (``tests/test_fuzz.py``, bounded and derandomised): every target;
``make fuzz`` runs ``ALL`` for longer with random seeds (or ``EMBEDKIT_FUZZ_TARGETS=a,b``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One fuzz target.

    Attributes:
        name: the target's name (test ids, ``EMBEDKIT_FUZZ_TARGETS``).
        corpus: key of the corpus entry (a folder or a file).
        files: ``(path or glob inside the folder, "" for the entry itself, format)`` pairs; one is drawn per
            mutation.
        rehash: ``model``, ``index``, ``kit`` or ``""`` (nothing to recompute).
        loader: the worker's loader.
    """

    name: str
    corpus: str
    files: tuple[tuple[str, str], ...]
    rehash: str
    loader: str


HEADS = ("logreg", "mlp", "lgbm", "mil")

_targets = [
    # the LightGBM booster text (item 2): must pass on this branch
    Target("booster", "model-lgbm", (("head/booster.txt", "lgbm"),), "model", "model"),
    Target("booster-stale-sizes", "model-lgbm", (("head/booster.txt", "lgbm-stale"),), "model", "model"),
    Target("booster-bytes", "model-lgbm", (("head/booster.txt", "bytes"),), "model", "model"),
    Target("kit-booster", "kit", (("models/lgbm/head/booster.txt", "lgbm"),), "kit", "kit"),
]
for _h in HEADS:
    _targets += [
        Target(f"model-json-{_h}", f"model-{_h}", (("model.json", "json"),), "", "model"),
        Target(f"head-json-{_h}", f"model-{_h}", (("head/head.json", "json"),), "model", "model"),
        Target(f"model-files-{_h}", f"model-{_h}", (("head/*", "bytes"), ("*.csv", "csv")), "model", "model"),
    ]
_targets += [
    Target("index-json", "index", (("index.json", "json"),), "", "index"),
    Target("index-rows", "index", (("rows-*.parquet", "bytes"),), "index", "index"),
    Target("index-graph", "index", (("vectors-*.usearch", "bytes"),), "index", "index"),
    Target("kit-json", "kit", (("kit.json", "json"),), "", "kit"),
    Target("kit-model-json", "kit", (("models/*/model.json", "json"),), "kit", "kit"),
    Target("kit-files", "kit", (("models/*/head/*", "bytes"),), "kit", "kit"),
    Target("config-extract", "config-extract", (("", "toml"),), "", "config-extract"),
    Target("config-fit", "config-fit", (("", "toml"),), "", "config-fit"),
    Target("config-infer", "config-infer", (("", "toml"),), "", "config-infer"),
    Target("hits", "hits", (("", "csv"),), "", "hits"),
    Target("sample", "sample", (("", "csv"),), "", "sample"),
]  # fmt: skip

#: every target by name
ALL = {t.name: t for t in _targets}
#: run by ``make test``: every target (a target that may not pass yet does not belong in ALL)
CI_TARGETS = list(ALL)


def needed_heads(targets: list[Target]) -> tuple[str, ...]:
    """The head kinds whose model folders ``targets`` mutate (a kit holds logreg and lgbm)."""
    need = {t.corpus.removeprefix("model-") for t in targets if t.corpus.startswith("model-")}
    if any(t.corpus == "kit" for t in targets):
        need |= {"logreg", "lgbm"}
    return tuple(h for h in HEADS if h in need | {"lgbm"})


def selected(default: list[str]) -> list[Target]:
    """The targets of ``EMBEDKIT_FUZZ_TARGETS`` (comma-separated names, or ``all``), else ``default``."""
    names = os.environ.get("EMBEDKIT_FUZZ_TARGETS", "").strip()
    if names == "all":
        return list(ALL.values())
    return [ALL[n] for n in (names.split(",") if names else default)]

"""Saved models: one folder per fitted head, with everything inference needs to trust it.

Layout of ``models/<name>/``: ``model.json`` (format version, embedkit version, head name and params, label
list, the provenance of the embeddings it was fit on, CV scores, class priors, and ``files``: the SHA-256 of
every other file), ``head/`` (the head's own files: JSON, safetensors, LightGBM model text), and
``cv_per_class.csv`` and ``oof.parquet`` (out-of-fold predictions, for comparing and blending heads).

Nothing that is loaded can run code: no pickle on the load path. Loading checks every file against
``files`` and refuses a changed, missing or extra file, or a symlink. Folders of embedkit 0.1 (format 1, heads
pickled with joblib) load only with ``trust_pickle`` (``--trust-pickle``); ``embedkit upgrade-model`` rewrites
them in this format.

``models/<name>`` is a real folder (it copies with ``cp -r``); a new version is written and fsynced beside it
and swapped in atomically (:mod:`embedkit.store.atomic`), so at every instant the name holds a complete old
or a complete new model; the last 3 replaced versions are kept as ``.<name>.prev-...`` (``embedkit models``).
A load reads one version whatever saves do meanwhile (:func:`embedkit.store.versions.read_pinned`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.predict.apply import Windows, predict_pipeline
from embedkit.store import StoreError, check_provenance

FORMAT = 2
#: format of embedkit 0.1 (pickled heads): loaded only on explicit trust
LEGACY_FORMAT = 1


class ModelError(StoreError):
    """A model folder is missing, incomplete, of another format, or does not fit the embeddings."""


@dataclass
class Model:
    """A loaded head with its labels and provenance.

    Attributes:
        folder: where it was loaded from.
        head: the fitted head (``predict_proba(X [N, D]) -> [N, C]``).
        labels: the C class codes, in output column order.
        provenance: provenance of the embeddings the head was fit on.
        meta: the whole ``model.json``.
    """

    folder: Path
    head: Any
    labels: list[str]
    provenance: dict[str, Any]
    meta: dict[str, Any]

    @property
    def priors(self) -> np.ndarray:
        """Class frequencies in the training windows, float32 [C] (fallback for undecodable files)."""
        return np.asarray(self.meta.get("priors") or np.zeros(len(self.labels)), dtype=np.float32)

    def check(self, provenance: dict[str, Any], where: str = "") -> None:
        """Refuse embeddings whose provenance differs from the training embeddings'."""
        check_provenance(
            self.provenance, provenance, what=f"embeddings for model {self.folder.name}", where=where
        )

    def predict(self, X: np.ndarray, logits: np.ndarray | None = None) -> np.ndarray:
        """Probabilities float32 [N, C] for embeddings X [N, D] (finite, in [0, 1]).

        ``logits`` [N, K] are the backbone's own class logits, needed when ``meta["needs_logits"]`` (the
        zero-shot options of ``fit.py``). A fused model (``meta["fusion"]``) takes its parts' embeddings
        concatenated in order.
        """
        parts = self.meta.get("fusion")
        dim = sum(p["dim"] for p in parts) if parts else self.provenance.get("dim")
        if X.ndim != 2 or X.shape[1] != int(dim or X.shape[1]):
            raise ModelError(f"model {self.folder.name} expects {dim}-D embeddings, got {X.shape}")
        if self.meta.get("composite"):  # merge-models, fit.py --add-to (predict/merge.py)
            p = self.head.predict(X, logits)
        elif self.meta.get("zero_shot"):
            p = predict_model(self, X, logits)
        else:
            p = np.asarray(self.head.predict_proba(X), dtype=np.float32)
        return np.clip(np.nan_to_num(p, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def save_model(
    folder: str | os.PathLike,
    head,
    head_name: str,
    labels: list[str],
    provenance: dict[str, Any],
    meta: dict[str, Any],
    extra_files: dict[str, Any] | None = None,
) -> Path:
    """Write a model folder atomically (replacing an older one of the same name only when complete).

    Args:
        folder: final folder path.
        head: fitted head with ``save(folder)``.
        head_name: registry name of the head.
        labels: class codes in output order.
        provenance: provenance of the training embeddings.
        meta: extra JSON-serialisable facts (config, CV scores, priors, report).
        extra_files: name → callable(path) writing an extra file into the folder (tables, OOF).

    Returns:
        The final folder path.
    """
    from embedkit import __version__
    from embedkit.store.atomic import KEEP_VERSIONS, prune_versions, publish_dir, staging_dir
    from embedkit.store.manifest import manifest

    final = Path(folder)
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = staging_dir(final)
    try:
        head.save(staged / "head")
        for name, writer in (extra_files or {}).items():
            writer(staged / name)
        doc = {
            "format": FORMAT,
            "embedkit_version": __version__,
            "head": head_name,
            "labels": list(labels),
            "provenance": provenance,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **meta,
            "files": manifest(staged),
        }
        (staged / "model.json").write_text(json.dumps(doc, indent=1, default=_json_default))
        prev = publish_dir(staged, final)
    except BaseException as e:
        from embedkit.store.space import folder_bytes, full_disk_message, is_disk_full

        written = folder_bytes(staged)
        shutil.rmtree(staged, ignore_errors=True)
        if is_disk_full(e):  # one line, not safetensors' or pyarrow's traceback; the old version stays
            from embedkit.predict.model_files import head_bytes

            need = written + head_bytes(head)
            raise ModelError(full_disk_message(final, need, "the model's previous version is kept")) from None
        raise
    prune_versions(final, keep=prev)
    if prev is not None:
        print(f"[models] replaced {final}; the previous version is kept as {prev} (the last {KEEP_VERSIONS} "
              f"are kept; embedkit models rollback {final} restores it)", file=sys.stderr)
    return final


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_model(folder: str | os.PathLike, trust_pickle: bool = False) -> Model:
    """Load a model folder written by :func:`save_model`, checking every file against its hash.

    Args:
        folder: the model folder (opened once and read through that handle, so a save that swaps the name
            meanwhile cannot mix two versions; a load that fails because of such a swap is retried).
        trust_pickle: also load embedkit 0.1 folders, whose heads are pickles (unpickling runs code).

    Raises:
        ModelError: missing folder or files, a file that differs from ``model.json``'s ``files``, another
            format version, an unknown head, or a ``head/`` that does not fit ``model.json`` (another
            embedding dimension or number of labels). Another embedkit version with the same format loads.
    """
    from embedkit.store.versions import read_pinned

    f = Path(folder)
    return read_pinned(f, lambda real: _load_version(f, real, trust_pickle), (ModelError,))


def _load_version(f: Path, real: Path, trust_pickle: bool) -> Model:
    """Load the version of ``f`` pinned at ``real`` (see :func:`load_model`)."""
    meta = _read_meta(f, real)
    if meta.get("format") == LEGACY_FORMAT and not trust_pickle:
        from embedkit.predict.model_files import legacy_problem

        if legacy_problem(f, real, meta):  # only a genuine 0.1 folder gets the --trust-pickle hint
            raise ModelError(legacy_problem(f, real, meta))
        raise ModelError(
            f"{f}: a model of embedkit {meta.get('embedkit_version')} whose head is a pickle (format 1); "
            f"unpickling can run any code, so it is not loaded. If you trust its origin: --trust-pickle, "
            f"or convert it once: embedkit upgrade-model {f} --trust-pickle"
        )
    if meta.get("format") not in (FORMAT, LEGACY_FORMAT):
        raise ModelError(
            f"{f}: model format {meta.get('format')} (embedkit {meta.get('embedkit_version')}) is not "
            f"format {FORMAT}; refit it with this embedkit"
        )
    if meta.get("format") == FORMAT:
        from embedkit.store.manifest import verify

        problem = verify(real, meta.get("files") or {}, skip=("model.json",))
        if problem:
            raise ModelError(f"{f}: refused: {problem}; refit the model or restore its folder")
    if meta.get("composite"):
        from embedkit.predict.merge import load_composite

        return load_composite(f, real, meta)
    head = _load_head(f, real, meta, trust_pickle)
    prov, labels = meta.get("provenance") or {}, list(meta.get("labels") or [])
    fitted = (getattr(head, "n_features_in_", None), getattr(head, "n_classes_", None))
    want = meta.get("input_dim", prov.get("dim", fitted[0]))  # input_dim: fused and zero-shot inputs
    if (fitted[0] is not None and fitted[0] != want) or (
        fitted[1] is not None and fitted[1] != len(labels)
    ):
        raise ModelError(
            f"{f}: head/ was fitted on {fitted[0]}-D embeddings and {fitted[1]} classes, but model.json "
            f"describes {want}-D {prov.get('backbone')} embeddings and {len(labels)} labels: "
            f"head/ belongs to another model; refit the model"
        )
    return Model(folder=f, head=head, labels=labels, provenance=prov, meta=meta)


def _read_meta(f: Path, real: Path) -> dict:
    from embedkit.predict.model_files import read_checked
    from embedkit.schemas import SchemaError

    meta_path = real / "model.json"
    if not meta_path.is_file() and not meta_path.is_symlink():  # a link is refused by read_checked
        from embedkit.store.versions import kept_versions

        hidden = [p.name for p in kept_versions(f)]
        extra = f" (earlier versions are kept as {', '.join(hidden)}: embedkit models)" if hidden else ""
        raise ModelError(f"{f}: not a model folder (no model.json){extra}; fit one with fit.py")
    try:  # schema, limits, a regular file; another format is returned for load_model to name
        return read_checked(meta_path, f, (FORMAT, LEGACY_FORMAT))
    except SchemaError as e:
        raise ModelError(f"refused: {e}") from None


def _load_head(f: Path, real: Path, meta: dict, trust_pickle: bool):
    from embedkit.heads import head_class
    from embedkit.heads.base import PickleRefused
    from embedkit.schemas import SchemaError

    if not (real / "head").is_dir():
        raise ModelError(f"{f}: head files missing ({f / 'head'}); refit the model")
    try:
        cls = head_class(meta["head"])
    except (KeyError, ValueError) as e:
        raise ModelError(f"{f}: {e}") from None
    try:
        return cls.load(real / "head", trust_pickle=trust_pickle)
    except PickleRefused as e:
        raise ModelError(str(e)) from None
    except SchemaError as e:
        raise ModelError(f"{f}: refused: {e}") from None
    except FileNotFoundError as e:
        raise ModelError(f"{f}: head files incomplete ({e}); refit the model") from None
    except Exception as e:  # a truncated or foreign file: safetensors, JSON or LightGBM parse errors, ...
        reason = " ".join(str(e).split())[:160] or type(e).__name__
        raise ModelError(f"{f}: cannot load the head ({reason}); refit the model") from None


def predict_model(model, emb: np.ndarray, logits: np.ndarray | None = None) -> np.ndarray:
    """Probabilities [N, C] of a loaded model for embeddings [N, D] (and the backbone's logits [N, K]).

    Raises:
        ModelError: the model needs logits and none were given.
    """
    from embedkit.zeroshot import class_logits

    zs = model.meta.get("zero_shot") or {}
    mode = zs.get("mode", "off")
    if mode == "off":
        return predict_pipeline(model.head, Windows(emb, np.zeros(len(emb))), False)
    if logits is None:
        raise ModelError(
            f"model {model.folder.name} blends BirdNET's own logits; embed with embed_with_logits"
        )
    z = class_logits(logits, np.asarray(zs["index"]))
    prior = None
    if mode in ("prior", "both") and zs.get("weights") is not None:
        a = zs.get("head_weight")
        prior = (
            np.asarray(zs["weights"], np.float64),
            np.asarray(zs["offset"], np.float64),
            None if a is None else np.asarray(a, np.float64),
        )
    return predict_pipeline(
        model.head, Windows(emb, np.zeros(len(emb)), z), mode in ("features", "both"), prior
    )



__all__ = [
    "FORMAT",
    "LEGACY_FORMAT",
    "Model",
    "ModelError",
    "load_model",
    "predict_model",
    "save_model",
]

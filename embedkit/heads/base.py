"""The one interface every head implements (scikit-learn estimator conventions).

A head is a multi-label classifier on frozen embeddings: ``fit(X [N, D], Y [N, C]) -> self`` and
``predict_proba(X [N, D]) -> float32 [N, C]``. Constructor parameters are stored verbatim (so
``get_params``/``set_params``/``sklearn.base.clone`` work); everything learned by ``fit`` is an attribute
whose name ends in ``_`` and does not exist before ``fit``.

Targets ``Y`` are multi-hot in [0, 1]; soft values are allowed. Heads that need hard labels (logreg, lgbm) use
:func:`binary_targets`: label = ``Y >= 0.5``, per-cell weight = ``max(Y, 1 - Y)`` (so hard targets have
weight 1, and a 0.6 "maybe" counts as a positive with weight 0.6).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

FORMAT_VERSION = 2
#: files of a saved head: metadata and JSON values, learned arrays, and the 0.1 pickle (read only on trust)
META_FILE, STATE_FILE, LEGACY_FILE = "head.json", "state.safetensors", "state.joblib"


class PickleRefused(ValueError):
    """A head saved as a pickle (embedkit 0.1) was not loaded because the caller did not trust it."""


def binary_targets(Y: np.ndarray, sample_weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Hard labels and per-cell weights for heads that train binary one-vs-rest models.

    Args:
        Y: targets float32 ``[N, C]`` in [0, 1].
        sample_weight: row weights ``[N]`` or None.

    Returns:
        ``(labels bool [N, C], weights float32 [N, C] or None)``; weights are None when every weight is 1.
    """
    labels = Y >= 0.5
    w = np.maximum(Y, 1.0 - Y).astype(np.float32)
    if sample_weight is not None:
        w *= sample_weight[:, None]
    if np.all(w == 1.0):
        return labels, None
    return labels, w


def constant_classes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which classes can be trained as binary problems, and the constant prediction for the others.

    Args:
        labels: bool ``[N, C]``.

    Returns:
        ``(trainable bool [C], constant float32 [C])``: a class without positives predicts 0, a class without
        negatives predicts 1; neither is trained.
    """
    n_pos = labels.sum(axis=0)
    trainable = (n_pos > 0) & (n_pos < labels.shape[0])
    return trainable, (n_pos > 0).astype(np.float32)


def _mean_std(X: np.ndarray, rows: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and (population) standard deviation of ``X`` [N, D] in float64, ``rows`` at a time.

    Two passes like ``X.std(dtype=float64)``, without its float64 copy of ``X`` (4 GB at 500k x 1024).
    """
    mean = np.zeros(X.shape[1], np.float64)
    for s in range(0, len(X), rows):
        mean += X[s : s + rows].sum(axis=0, dtype=np.float64)
    mean /= len(X)
    ss = np.zeros(X.shape[1], np.float64)
    for s in range(0, len(X), rows):
        d = X[s : s + rows] - mean
        ss += np.einsum("ij,ij->j", d, d)
    return mean, np.sqrt(ss / len(X))


class Head(BaseEstimator):
    """Base class: input validation, standardisation, save/load. Subclasses implement ``_fit``/``_predict``.

    Learned attributes set here: ``n_features_in_`` (D), ``n_classes_`` (C), and, when the class attribute
    ``standardize`` is true, ``mean_`` / ``scale_`` (float32 ``[D]``; ``scale_`` is the per-feature
    standard deviation with zeros replaced by 1). ``predict_proba`` applies the same ``(X - mean_) / scale_``
    as ``fit``.
    """

    name: ClassVar[str] = "head"
    standardize: ClassVar[bool] = True
    #: the head applies ``mean_`` / ``scale_`` itself (folded into its weights): ``_fit`` and ``_predict``
    #: get the raw ``X``, so no standardised copy of ``X`` is made (2 GB at 500k x 1024 float32)
    standardize_inside: ClassVar[bool] = False

    # -- subclass hooks ------------------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, Y: np.ndarray, sample_weight: np.ndarray | None) -> None:
        """Learn from standardised ``X`` float32 [N, D], ``Y`` float32 [N, C], ``sample_weight`` [N]/None."""
        raise NotImplementedError

    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Probabilities ``[N, C]`` for standardised ``X`` float32 [N, D]."""
        raise NotImplementedError

    # -- public API ----------------------------------------------------------------------------------------
    def fit(self, X, Y, sample_weight=None) -> Head:
        """Fit the head.

        Args:
            X: embeddings ``[N, D]`` (converted to float32).
            Y: targets ``[N, C]`` in [0, 1], multi-hot or soft.
            sample_weight: optional non-negative row weights ``[N]``.

        Returns:
            self.
        """
        from embedkit.schemas import check_params

        X = self._check_X(X, fitting=True)
        Y = np.asarray(Y, dtype=np.float32)
        if Y.ndim != 2 or Y.shape[0] != X.shape[0]:
            raise ValueError(f"Y must be [N, C] with N = {X.shape[0]} rows of X; got shape {Y.shape}")
        if Y.shape[1] == 0 or not np.isfinite(Y).all() or Y.min() < 0 or Y.max() > 1:
            raise ValueError("Y must have at least one column and finite values in [0, 1]")
        sw = None
        if sample_weight is not None:
            sw = np.asarray(sample_weight, dtype=np.float32).reshape(-1)
            if sw.shape[0] != X.shape[0] or not np.isfinite(sw).all() or sw.min() < 0:
                raise ValueError(f"sample_weight must be [N] = [{X.shape[0]}] finite non-negative values")
        params = {k: _plain(v, k) for k, v in self.get_params(deep=False).items()}
        check_params(self.name, params, f"{self.name} head", (X.shape[1], Y.shape[1]))  # before allocating
        for attr in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, attr)  # refitting starts from scratch
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = Y.shape[1]
        if self.standardize:
            mean, std = _mean_std(X)
            self.mean_ = mean.astype(np.float32)
            self.scale_ = np.where(std > 1e-12, std, 1.0).astype(np.float32)
        self._fit(X if self.standardize_inside else self._transform(X), Y, sw)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Per-class probabilities.

        Args:
            X: embeddings ``[N, D]``.

        Returns:
            float32 ``[N, C]`` in [0, 1].
        """
        self._check_fitted()
        X = self._check_X(X, fitting=False)
        P = np.asarray(self._predict(X if self.standardize_inside else self._transform(X)), dtype=np.float32)
        return np.clip(P, 0.0, 1.0, out=P)

    def _check_X(self, X, fitting: bool) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"X must be a non-empty [N, D] array; got shape {X.shape}")
        if not fitting and X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features but the head was fitted on {self.n_features_in_}")
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or infinite values")
        return X

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_classes_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, Y) first")

    def _transform(self, X: np.ndarray) -> np.ndarray:
        if not self.standardize:
            return X
        out = np.subtract(X, self.mean_, dtype=np.float32)  # one copy of X, not two
        out /= self.scale_
        return out

    # -- persistence ---------------------------------------------------------------------------------------
    def _learned(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def _save_state(self, folder: Path) -> dict[str, Any]:
        """Learned state as numpy arrays and JSON values; subclasses turn objects into files in ``folder``."""
        return self._learned()

    def _load_state(self, folder: Path, state: dict[str, Any], legacy: bool = False) -> None:
        """Set the learned attributes from ``state``; ``legacy``: ``state`` came from an old pickle."""
        for k, v in state.items():
            setattr(self, k, v)

    def save(self, folder) -> Path:
        """Write the fitted head to ``folder`` (created) as data, never as code.

        ``head.json`` (format, head name, params, JSON-able learned values, names of the arrays),
        ``state.safetensors`` (the learned numpy arrays), plus files of the head's own (LightGBM model text,
        torch weights as safetensors). Loading parses these formats only; nothing is unpickled.

        Returns:
            The folder path.
        """
        from safetensors.numpy import save_file

        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = self._save_state(folder)
        arrays = {k: np.ascontiguousarray(v) for k, v in state.items() if isinstance(v, np.ndarray)}
        values = {k: _plain(v, k) for k, v in state.items() if k not in arrays}
        params = {k: _plain(v, k) for k, v in self.get_params(deep=False).items()}
        meta = {"format": FORMAT_VERSION, "head": self.name, "params": params, "state": values,
                "arrays": sorted(arrays)}
        save_file(arrays, str(folder / STATE_FILE))
        (folder / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        return folder

    @classmethod
    def load(cls, folder, trust_pickle: bool = False) -> Head:
        """Load a head written by :meth:`save`; ``Head.load`` picks the registered class by name.

        Args:
            folder: the head's folder.
            trust_pickle: also load the pickle format of embedkit 0.1 (``state.joblib``). Unpickling runs
                whatever code the file names: only for files whose origin you trust.

        Raises:
            FileNotFoundError: no saved head in ``folder``.
            PickleRefused: an old pickle-format head and ``trust_pickle`` is off.
            ValueError: the saved head is not a ``cls``, or its files are malformed.
        """
        from embedkit.schemas import check_arrays, check_head_meta, read_json

        folder = Path(folder)
        meta_path = folder / META_FILE
        if (folder / LEGACY_FILE).is_file():
            if (folder / STATE_FILE).exists() or _format_of(meta_path) == FORMAT_VERSION:
                # not an embedkit 0.1 head, so no --trust-pickle hint for it
                raise ValueError(f"{folder}: a format-2 head holding a pickle ({LEGACY_FILE}); refused")
            return cls._load_legacy(folder, trust_pickle)
        if not meta_path.is_file():
            raise FileNotFoundError(f"no saved head in {folder} (missing {META_FILE})")
        meta = read_json(meta_path, META_FILE)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise ValueError(f"{folder}: unsupported head format {found!r}")
        dims = check_head_meta(meta, str(meta_path))  # params and sizes, before anything is built
        from safetensors.numpy import load_file

        arrays = load_file(str(folder / STATE_FILE))
        if set(arrays) != set(meta.get("arrays") or []):
            raise ValueError(f"{folder / STATE_FILE}: arrays {sorted(arrays)} are not those of head.json")
        check_arrays(arrays, dims, str(folder / STATE_FILE))
        head = cls._of(meta, folder)
        head._load_state(folder, {**meta.get("state", {}), **arrays})
        return head

    @classmethod
    def _of(cls, meta: dict, folder: Path) -> Head:
        from embedkit.heads._registry import registry

        klass = registry.get(meta["head"])
        if not issubclass(klass, cls):
            raise ValueError(f"{folder} holds a {meta['head']!r} head, not a {cls.name!r} head")
        return klass(**meta["params"])

    @classmethod
    def _load_legacy(cls, folder: Path, trust_pickle: bool) -> Head:
        """The pickle format of embedkit 0.1 (``state.joblib``), only when the caller trusts the files."""
        path = folder / LEGACY_FILE
        if not trust_pickle:
            raise PickleRefused(
                f"{path}: a pickle-format head (embedkit 0.1); unpickling can run any code, so it is not "
                f"loaded. If you trust its origin: pass --trust-pickle, or convert it once with "
                f"`embedkit upgrade-model MODEL_DIR --trust-pickle`"
            )
        import joblib

        blob = joblib.load(path)
        head = cls._of(blob["meta"], folder)
        head._load_state(folder, blob["state"], legacy=True)
        return head


def _format_of(meta_path: Path) -> Any:
    """The ``format`` of a ``head.json`` (None when absent or unreadable)."""
    try:
        return json.loads(meta_path.read_text()).get("format")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None


def _plain(v: Any, key: str) -> Any:
    """A JSON value for a learned or parameter value (numpy scalars and tuples converted)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, tuple | list):
        return [_plain(x, key) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x, key) for k, x in v.items()}
    if v is None or isinstance(v, bool | int | float | str):
        return v
    raise TypeError(f"head attribute {key!r} ({type(v).__name__}) is neither an array nor a JSON value")

"""LightGBM one-vs-rest head: bin the embeddings once, swap labels per class, train classes in threads.

The naive ``OneVsRestClassifier(LGBMClassifier())`` re-bins ``X`` for every class (255 bins) and grows 31-leaf
trees over all rows and features. Here ``X`` is binned once into a ``lgb.Dataset`` (one per worker thread;
extra workers reuse the first one's bin edges through ``reference=``), and for each class only the label (and
weight) fields are swapped (``set_label`` / ``set_field("weight")``) before ``lgb.train``. Trees are cheap:
15 leaves on 31 bins, 15 % of the features per tree, and negative bagging (every positive, 30 % of the
negatives, resampled each iteration) with the positives' gradients scaled by the same 0.3
(``scale_pos_weight``) so that each tree still fits the full-data loss in expectation (without this
correction held-out AUC dropped by 0.04). ``parallel="classes"`` trains ``n_jobs`` classes at once, each
booster single-threaded: LightGBM is called through ctypes, which releases the GIL, and single-threaded
boosters avoid OpenMP barriers, which stall badly when other processes use the cores. After fitting, the
per-class models are merged into one multi-output model (:func:`merge_model_strings`), so prediction parses
each row once instead of once per class.

Measurements behind the defaults (``benchmarks/bench_lgbm_parity.py``: synthetic BirdCLEF-shaped data, 4000
training rows x 1024 dims, 195 trained classes with the competition's imbalance, 16000 held-out rows, median
54 held-out positives per class; the naive baseline trained on every class; held-out macro ROC-AUC over the
194 scored classes; "diff" is the mean paired per-class difference to the naive model, standard error over
classes ~0.006; fit CPU seconds for all classes, 2 cores)::

    configuration                                      fit CPU s  speed-up  AUC    diff (seeds 0, 1, 2)
    naive OneVsRestClassifier(LGBMClassifier())        1530       1x        0.691
    default: neg. bagging 0.3 + correction, ff 0.15,   47         32x       0.723  +0.028 +0.039 +0.027
             31 bins, 15 leaves
    no negative bagging                                72         21x       0.708  +0.018 +0.015 +0.017
    ff 0.3                                             84         18x       0.715  +0.024 +0.025 +0.022
    ff 0.3, 63 bins                                    104        15x       0.721  +0.026 +0.031 +0.034

So ~30x less CPU than the naive baseline and a higher held-out AUC (smaller trees on a fraction of the
features overfit less on rare classes than the naive 31-leaf trees on every feature); earlier runs at 16k
training rows (24 classes) agreed. Without the gradient correction negative bagging cost 0.04 AUC.
``parallel="trees"`` was slower on 2 busy cores (OpenMP waits).

Loading never hands the saved text to LightGBM as it is: :mod:`embedkit.heads._lgbm_text` parses and checks
every tree (a crafted ``booster.txt`` with recomputed hashes crashed, hung or fooled LightGBM's parser) and
LightGBM gets a canonical text written from the checked values; ``benchmarks/bench_lgbm_predict.py`` compares
this with predicting the trees in numpy (LightGBM's predict is faster, and prediction dominates).

Soft targets: label = ``Y >= 0.5``, weight = ``max(Y, 1 - Y)`` (see
:func:`embedkit.heads.base.binary_targets`). A class without positives predicts 0 (without negatives: 1) and
is not trained. No standardisation: trees do not need it.
"""

from __future__ import annotations

import os
import queue
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from embedkit.heads import register
from embedkit.heads.base import Head, binary_targets, constant_classes


def _n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_CONSTANT_TREE = (
    "num_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\nthreshold=\ndecision_type=\nleft_child=\n"
    "right_child=\nleaf_value=0\nleaf_weight=\nleaf_count=0\ninternal_value=\ninternal_weight=\n"
    "internal_count=\nis_linear=0\nshrinkage=1\n\n\n"
)


#: the merged booster, as LightGBM model text
BOOSTER_FILE = "booster.txt"


def merge_model_strings(texts: list[str]) -> str:
    """Merge K binary LightGBM models (text format, same features) into one K-output model.

    The result is a ``multiclassova`` model with ``num_tree_per_iteration=K`` whose raw score ``k`` is the raw
    score of model ``k`` (models that stopped early are padded with zero-valued single-leaf trees). One
    ``predict`` call then parses each row once instead of K times, which is what dominates prediction time
    with 1024 features (~0.2 s per class and 20k rows otherwise).

    Args:
        texts: ``Booster.model_to_string()`` of each model, in output order.

    Returns:
        The merged model text, for ``lgb.Booster(model_str=...)``.
    """
    K = len(texts)
    trees = []
    for text in texts:
        body = text.split("end of trees", 1)[0]
        trees.append([part.split("\n", 1)[1] for part in body.split("\nTree=")[1:]])
    replace = {
        "num_class": f"num_class={K}",
        "num_tree_per_iteration": f"num_tree_per_iteration={K}",
        "objective": f"objective=multiclassova num_class:{K} sigmoid:1",
    }
    header = []
    for line in texts[0].split("\nTree=", 1)[0].split("\n"):
        key = line.split("=", 1)[0]
        if key != "tree_sizes":  # optional; would be wrong after merging
            header.append(replace.get(key, line))
    out = ["\n".join(header).rstrip("\n") + "\n\n"]
    for it in range(max(len(t) for t in trees)):
        for k in range(K):
            tree = trees[k][it] if it < len(trees[k]) else _CONSTANT_TREE
            out.append(f"Tree={it * K + k}\n{tree}")
    out.append("end of trees\n\nfeature_importances:\n\nparameters:\nend of parameters\n\n")
    out.append("pandas_categorical:null\n")
    return "".join(out)


@register("lgbm")
class LGBMHead(Head):
    """One-vs-rest gradient-boosted trees (LightGBM, binary objective per class).

    Args:
        n_estimators: boosting rounds per class.
        learning_rate: shrinkage.
        num_leaves: leaves per tree.
        max_bin: histogram bins per feature (dataset parameter; fixed for all classes).
        min_data_in_leaf: minimum rows per leaf.
        feature_fraction: fraction of features sampled per tree.
        neg_bagging_fraction: fraction ``r`` of the negative rows sampled per iteration (positives are all
            kept, their gradients scaled by ``r`` to undo the bias); 1.0 disables bagging.
        max_neg_rows: scale-aware bagging: ``r`` is at most ``max_neg_rows / N``, so a tree sees about this
            many negatives whatever N (and the same gradient correction applies). Leaves ``r = 0.3`` alone
            up to N = 100k rows. None = no cap.
        max_rows: scale-aware rows per class: above this many training rows, each class trains on all its
            positives plus a seeded sample of its negatives (``max_rows`` rows in all; a ``Dataset.subset``
            of the one binned dataset, no re-binning), with the sampling rate ``q`` folded into the same
            gradient correction (``scale_pos_weight = q * r``). LightGBM's per-iteration work (gradients,
            bagging, score updates) is O(rows), so this keeps a class's fit time flat in N above
            ``max_rows`` (``benchmarks/bench_scale.py``). None = every row for every class.
        lambda_l2: L2 regularisation of leaf values.
        n_jobs: cores to use (None = all available).
        parallel: ``"classes"`` (n_jobs single-threaded boosters at once) or ``"trees"`` (one class at a time,
            each booster multi-threaded).
        seed: LightGBM ``seed`` (bagging and feature sampling), the same for every class.
        params: extra LightGBM parameters (override the above), e.g. ``{"lambda_l1": 1.0}``.

    Learned attributes: ``booster_`` (one ``lgb.Booster`` holding the trees of every trained class, see
    :func:`merge_model_strings`; None if no class was trained), ``trained_`` bool [C],
    ``constant_`` float32 [C] (prediction of untrained classes), ``n_features_in_``, ``n_classes_``.
    """

    standardize = False

    def __init__(
        self,
        n_estimators=100,
        learning_rate=0.1,
        num_leaves=15,
        max_bin=31,
        min_data_in_leaf=10,
        feature_fraction=0.15,
        neg_bagging_fraction=0.3,
        lambda_l2=0.0,
        n_jobs=None,
        parallel="classes",
        seed=0,
        params=None,
        max_neg_rows=30_000,
        max_rows=100_000,
    ):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_bin = max_bin
        self.min_data_in_leaf = min_data_in_leaf
        self.feature_fraction = feature_fraction
        self.neg_bagging_fraction = neg_bagging_fraction
        self.lambda_l2 = lambda_l2
        self.n_jobs = n_jobs
        self.parallel = parallel
        self.seed = seed
        self.params = params
        self.max_neg_rows = max_neg_rows
        self.max_rows = max_rows

    def _cores(self) -> int:  # never more threads than cores (n_jobs=1e6 made libgomp run out of memory)
        return min(max(1, int(self.n_jobs)), _n_cores()) if self.n_jobs else _n_cores()

    def lgb_params(self, num_threads: int, n_rows: int | None = None, keep_neg: float = 1.0) -> dict:
        """The LightGBM parameters of one class.

        Args:
            num_threads: threads per booster.
            n_rows: rows the class trains on (caps the negative bagging fraction, ``max_neg_rows``).
            keep_neg: the fraction of the class's negatives among those rows (``max_rows`` sampling).
        """
        p = {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_bin": self.max_bin,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "lambda_l2": self.lambda_l2,
            "seed": self.seed,
            "num_threads": num_threads,
            "force_col_wise": True,
            "verbosity": -1,
        }
        r = self.neg_bagging_fraction
        if self.max_neg_rows and n_rows:
            r = min(r, self.max_neg_rows / n_rows)
        if r < 1.0:
            p.update(bagging_freq=1, pos_bagging_fraction=1.0, neg_bagging_fraction=r)
        if r * keep_neg < 1.0:
            p.update(scale_pos_weight=r * keep_neg)
        p.update(self.params or {})
        return p

    def _fit(self, X, Y, sample_weight):
        import lightgbm as lgb

        if self.parallel not in ("classes", "trees"):
            raise ValueError(f"parallel must be 'classes' or 'trees', got {self.parallel!r}")
        labels, weights = binary_targets(Y, sample_weight)
        trained, constant = constant_classes(labels)
        self.trained_, self.constant_ = trained, constant
        todo = [int(c) for c in np.flatnonzero(trained)]
        if not todo:
            self.booster_ = None
            return
        cores = self._cores()
        workers = min(cores, len(todo)) if self.parallel == "classes" else 1
        threads = 1 if self.parallel == "classes" else cores
        subsample = bool(self.max_rows) and len(X) > self.max_rows
        params = self.lgb_params(threads, n_rows=len(X))
        y0 = labels[:, todo[0]].astype(np.float32)
        first = lgb.Dataset(X, label=y0, params=params, free_raw_data=True).construct()
        pool: queue.Queue = queue.Queue()
        pool.put(first)
        for _ in range(0 if subsample else workers - 1):  # same bin edges, no second bin search
            pool.put(lgb.Dataset(X, label=y0, reference=first, params=params, free_raw_data=True).construct())

        def train(c: int) -> str:
            if subsample:  # this class's rows, cut from the one binned dataset
                rows, keep = self._class_rows(labels[:, c], c)
                ds = first.subset(rows, params=params).construct()
                ds.set_label(labels[rows, c].astype(np.float32))
                if weights is not None:
                    ds.set_field("weight", np.ascontiguousarray(weights[rows, c]))
                p = self.lgb_params(threads, n_rows=len(rows), keep_neg=keep)
                return lgb.train(p, ds, num_boost_round=self.n_estimators).model_to_string()
            ds = pool.get()
            try:
                ds.set_label(labels[:, c].astype(np.float32))
                if weights is not None:  # set_field, not set_weight: set_weight skips all-ones vectors
                    ds.set_field("weight", np.ascontiguousarray(weights[:, c]))
                booster = lgb.train(params, ds, num_boost_round=self.n_estimators, keep_training_booster=True)
                return booster.model_to_string()
            finally:
                pool.put(ds)

        if workers == 1:
            texts = [train(c) for c in todo]
        else:
            with ThreadPoolExecutor(max_workers=workers) as ex:
                texts = list(ex.map(train, todo))
        self.booster_ = lgb.Booster(model_str=merge_model_strings(texts))

    def _class_rows(self, y, c: int) -> tuple[np.ndarray, float]:
        """The rows class ``c`` trains on when N > ``max_rows``.

        Args:
            y: bool ``[N]``, the class's labels.
            c: class index (seeds the sample with ``seed``).

        Returns:
            ``(sorted row indices, the sampled fraction of the negatives)``: every positive and a sample of
            negatives, ``max_rows`` rows in all (at least ``max_rows // 2`` negatives).
        """
        pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
        n_neg = min(len(neg), max(self.max_rows - len(pos), self.max_rows // 2))
        rng = np.random.default_rng([self.seed, c])
        take = np.sort(np.concatenate([pos, rng.choice(neg, n_neg, replace=False)]))
        return take, n_neg / max(1, len(neg))

    def _save_state(self, folder: Path) -> dict:
        state = self._learned()
        booster = state.pop("booster_")
        if booster is not None:  # LightGBM's own model text: checked on load (_lgbm_text), never executed
            (folder / BOOSTER_FILE).write_text(booster.model_to_string())
        state["booster_"] = None if booster is None else BOOSTER_FILE
        return state

    def _load_state(self, folder: Path, state: dict, legacy: bool = False) -> None:
        super()._load_state(folder, state, legacy)
        if legacy:
            return
        from embedkit.heads._lgbm_checks import check_learned, load_booster

        d, _, trained = check_learned(self, folder, BOOSTER_FILE)
        if self.booster_ is not None:  # parsed and checked; LightGBM sees only the checked numbers
            self.booster_ = load_booster(folder / BOOSTER_FILE, d, int(trained.sum()))

    def _predict(self, X):
        P = np.tile(self.constant_, (X.shape[0], 1))
        if self.booster_ is not None:
            raw = self.booster_.predict(X, raw_score=True, num_threads=self._cores())
            P[:, self.trained_] = 0.5 + 0.5 * np.tanh(0.5 * raw.reshape(X.shape[0], -1))  # stable sigmoid
        return P

"""The rows of ``embedkit evaluate --table``: the default configuration and the default with one change.

Each row is ``(name, FitConfig changes, post-processing changes)``; post-processing keys are ``smooth``,
``file_max``, ``tta`` (offsets), ``tta_reduce`` (``mean``/``max`` over the shifted windows) and ``tune``
(prior and smoothing learned on the other folds' soundscapes, :mod:`embedkit.evaluate.tuned`). A row
``{"ensemble": [row names]}`` fits nothing: it is the mean of those rows (:mod:`embedkit.evaluate.ensemble`).
:data:`AUG_KEYS` are evaluate-only keys (not FitConfig fields) of the augmented rows
(:mod:`embedkit.evaluate.augmented`).
"""

from __future__ import annotations

PLAIN = {
    "zero_shot": "off",
    "class_weight": 0.0,
    "confidence_weight": 0.0,
    "weak_negatives": 0.0,
    "pseudo": 0,
}
NO_POST = {"smooth": 0.0, "file_max": 0.0, "tta": ()}  # the head alone: no TTA either
WEAK_LOGREG = {"C": 1.0, "class_weight": None}
#: evaluate-only row keys (not FitConfig fields): augmented copies per window and their mixup probability
AUG_KEYS = {"augment_variants": 2, "augment_mixup": 0.0}
AUGMENTED = {"augmented": "clean+mixed"}
MIXUP = {"augment_mixup": 0.5}
#: training windows: the best half of each recording by BirdNET's top logit over classes no label maps to
OTHER_HALF = {"window_keep": 0.5, "window_score": "other"}
#: BirdNET's 3 s chunks and their time steps mean-pooled, as extracted before issue 23 (extract.py --pool
#: mean --time-pool mean --name train_audio_mean --save-logits)
MEAN = {"split": "train_audio_mean"}
#: each 3 s chunk's pre-pool map [6 x 0.5 s, 1024] mean-pooled over time (BirdNET's own embedding, the
#: default before: extract.py --time-pool mean --name train_audio_timemean --save-logits), or max-pooled
#: (--time-pool max --name train_audio_max)
TIME_MEAN = {"split": "train_audio_timemean"}
TIME_MAX = {"split": "train_audio_max"}
GATED = {"pseudo": 1, "pseudo_gate": 0.5, "pseudo_gated_threshold": 0.9}
#: (row name, FitConfig changes, post-processing changes); None = the default configuration
MIL_MIXED = "default, head mil, augmented K=2 + mixup 0.5"
PRIOR_CV = "default, prior pair chosen on the clips' out-of-fold windows (the default before)"
MEAN_POOLED = "default, chunks and time steps mean-pooled (extract.py --pool mean --time-pool mean)"
VARIANTS: list[tuple[str, dict, dict]] = [
    ("logreg, plain", {"head": "logreg", **PLAIN}, NO_POST),
    ("mil, plain", {"head": "mil", **PLAIN}, NO_POST),
    ("proto, plain", {"head": "proto", **PLAIN}, NO_POST),
    ("lgbm, plain", {"head": "lgbm", **PLAIN}, NO_POST),
    ("**default**", {}, {}),
    ("default, zero-shot prior off", {"zero_shot": "off"}, {}),
    ("default, weak negatives off", {"weak_negatives": 0.0}, {}),
    ("default, prior chosen per class (shrunk)", {"prior_per_class": True}, {}),
    (PRIOR_CV, {"prior_choice": "cv"}, {}),
    ("default, head logreg", {"head": "logreg"}, {}),
    ("default, head logreg C=1 unbalanced (older)", {"head": "logreg", "params": WEAK_LOGREG}, {}),
    ("default, head mil", {"head": "mil"}, {}),
    ("default, head lgbm", {"head": "lgbm"}, {}),
    ("default, 1 prototype per class", {"params": {"prototypes": 1}}, {}),
    ("default, self-training 1 round", {"pseudo": 1}, {}),
    ("default, self-training 1 round, BirdNET-gated", GATED, {}),
    ("default, TTA off", {}, {"tta": ()}),
    ("default, TTA maximum over the shifts", {}, {"tta_reduce": "max"}),
    ("default, no smoothing", {}, {"smooth": 0.0}),
    ("default, smoothing 0.25", {}, {"smooth": 0.25}),
    ("default, file-max blend 0.25", {}, {"file_max": 0.25}),
    ("default, TTA off, prior & smoothing learned on soundscapes", {}, {"tune": True, "tta": ()}),
    ("default, augmented K=2", AUGMENTED, {}),
    ("default, augmented K=2 + mixup 0.5", {**AUGMENTED, **MIXUP}, {}),
    (MIL_MIXED, {"head": "mil", **AUGMENTED, **MIXUP}, {}),
    ("default, training windows: best half by the label's logit", {"window_keep": 0.5}, {}),
    ("default, training windows: best half by the top logit of other classes", OTHER_HALF, {}),
    ("default, training windows: best 75% by the top logit of other classes",
     {**OTHER_HALF, "window_keep": 0.75}, {}),
    ("default, training windows: weighted by the label's logit (share 0.8)", {"confidence_weight": 0.8}, {}),
    ("default, training windows: weighted by the top logit of other classes (share 0.8)",
     {"confidence_weight": 0.8, "window_score": "other"}, {}),
    (f"{MIL_MIXED}, training windows: best half by other classes",
     {"head": "mil", **AUGMENTED, **MIXUP, **OTHER_HALF}, {}),
    (MEAN_POOLED, MEAN, {}),
    ("default, chunks and time steps mean-pooled, head logreg (the default before issue 23)",
     {**MEAN, "head": "logreg"}, {}),
    ("default, time steps mean-pooled: BirdNET's embedding (extract.py --time-pool mean, the default before)",
     TIME_MEAN, {}),
    ("default, time steps max-pooled (extract.py --time-pool max)", TIME_MAX, {}),
    (f"ensemble: default + {MIL_MIXED[9:]}", {"ensemble": ["**default**", MIL_MIXED]}, {}),
]

"""Training room: stored embeddings + ``train.csv`` → cross-validated, saved model.

* :mod:`.run` — ``fit.py``: load the training set, folds, CV scores, refit, save (:func:`~.run.run_fit`).
* :mod:`.cv` — cross-validation; the zero-shot prior learned (and cross-fitted) on out-of-fold predictions.
* :mod:`.recipe` — the quality switches of one fit: class/confidence weights, weak negatives, self-training.
* :mod:`.data` — what a fit reads besides one backbone's embeddings: fused backbones, logits, unlabelled sets.

Training sits above :mod:`embedkit.predict` (it saves models and scores them with the same code inference
uses); inference never imports training.
"""

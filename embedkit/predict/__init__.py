"""Prediction room: saved model folders applied to windows, and ``infer.py``.

* :mod:`.model` — the model folder: save, load (checked), :func:`~.model.predict_model`.
* :mod:`.apply` — :class:`~.apply.Windows`, a head's input and the zero-shot prior blend.
* :mod:`.fusion` — models fitted on several backbones' embeddings concatenated.
* :mod:`.post` — smoothing, file-max, model blending, submission columns.
* :mod:`.infer` — soundscapes → backbone(s) → model(s) → a validated ``submission.csv``.
* :mod:`.output` — what infer writes: the checked submission (or ``*.invalid.csv``), test embedding shards.

Nothing here imports :mod:`embedkit.train`: a Kaggle scoring notebook needs only this room and below.
"""

import sys as _sys
import types as _types


class _CallablePackage(_types.ModuleType):
    """``embedkit.predict(files, model, **kw)`` is :func:`embedkit.predict.frame.predict_frame` (the API)."""

    def __call__(self, files, model, **kw):
        from embedkit.predict.frame import predict_frame

        return predict_frame(files, model, **kw)


_sys.modules[__name__].__class__ = _CallablePackage

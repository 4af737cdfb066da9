"""embedkit: frozen pretrained audio embeddings + light classifier heads for species identification.

The Python API (README, "Python API"); everything is imported on first use, so ``import embedkit`` stays
cheap (no torch, LightGBM or backbone is loaded until a function runs):

* ``embedkit.load_model(path)`` — a saved model folder, its files checked against their hashes.
* ``embedkit.embed(files, backbone, **kw)`` — DataFrame ``file, start, end, emb``, one row per window.
* ``embedkit.predict(files, model, **kw)`` — DataFrame ``file, start, end, label, score``, one row per window
  and label. ``embedkit.predict`` is also the prediction package (``embedkit.predict.model`` ...); calling it
  runs :func:`embedkit.predict.frame.predict_frame`.
"""

__version__ = "0.1.0"

_API = {
    "load_model": ("embedkit.predict.frame", "load"),
    "embed": ("embedkit.extract.frame", "embed_frame"),
}


def __getattr__(name: str):
    import importlib

    if name in _API:
        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    if name == "predict":  # the package; it is callable (embedkit/predict/__init__.py)
        return importlib.import_module("embedkit.predict")
    raise AttributeError(f"module 'embedkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API, "predict"])


__all__ = ["__version__", "embed", "load_model", "predict"]

"""Head registry: light multi-label classifiers fitted on frozen embeddings (scikit-learn conventions).

A head is registered with :func:`register` and built with :func:`get_head`. Heavy imports (torch, lightgbm)
happen inside each head's methods, so importing this package is cheap.

Every head maps ``X float32 [N, D]`` to per-class probabilities ``float32 [N, C]``::

    head = get_head("logreg", C=0.5).fit(X, Y)   # Y: [N, C] multi-hot (soft targets allowed)
    proba = head.predict_proba(X_test)
    head.save("models/logreg"); Head.load("models/logreg")

Adding a head: write one file in this package with a :class:`~embedkit.heads.base.Head` subclass decorated
with ``@register("name")``, and add its module name to ``_MODULES`` below.
"""

from __future__ import annotations

import importlib

from embedkit.heads.base import Head

_REGISTRY: dict[str, type[Head]] = {}
_MODULES = ("logreg", "mlp", "lgbm", "mil")
_loaded = False


def register(name: str):
    """Class decorator that registers a :class:`Head` subclass under ``name``."""

    def deco(cls: type[Head]) -> type[Head]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"head {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for mod in _MODULES:
            importlib.import_module(f"embedkit.heads.{mod}")
        _loaded = True


def available() -> list[str]:
    """Names of all registered heads, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def head_class(name: str) -> type[Head]:
    """The class registered under ``name``.

    Raises:
        UsageError: unknown name (a ``ValueError``; the message lists the choices).
    """
    from embedkit.errors import UsageError

    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown head {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}") from None


def get_head(name: str, **params) -> Head:
    """Build an unfitted head registered under ``name`` with constructor parameters ``params``."""
    return head_class(name)(**params)


__all__ = ["Head", "available", "get_head", "head_class", "register"]

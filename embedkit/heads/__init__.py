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

from embedkit.errors import UsageError
from embedkit.heads.base import Head
from embedkit.registry import Registry

#: the modules of this package that hold heads (imported on the first lookup)
_MODULES = ("logreg", "mlp", "lgbm", "mil")
_registry = Registry("head", __name__, _MODULES, UsageError)

#: class decorator: ``@register("name")`` registers a :class:`Head` subclass
register = _registry.register
#: names of all registered heads, sorted
available = _registry.available
#: the class registered under a name (:class:`~embedkit.errors.UsageError` for an unknown name)
head_class = _registry.get


def get_head(name: str, **params) -> Head:
    """Build an unfitted head registered under ``name`` with constructor parameters ``params``."""
    return head_class(name)(**params)


__all__ = ["Head", "available", "get_head", "head_class", "register"]

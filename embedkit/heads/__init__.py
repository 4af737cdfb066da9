"""Head registry: light multi-label classifiers fitted on frozen embeddings (scikit-learn conventions).

A head is registered with :func:`register` and built with :func:`get_head`. Heavy imports (torch, lightgbm)
happen inside each head's methods, so importing this package is cheap.

Every head maps ``X float32 [N, D]`` to per-class probabilities ``float32 [N, C]``::

    head = get_head("logreg", C=0.5).fit(X, Y)   # Y: [N, C] multi-hot (soft targets allowed)
    proba = head.predict_proba(X_test)
    head.save("models/logreg"); Head.load("models/logreg")   # JSON + safetensors (+ LightGBM text): no pickle

Adding a head: write one file in this package with a :class:`~embedkit.heads.base.Head` subclass decorated
with ``@register("name")``, and add its module name to ``MODULES`` in :mod:`embedkit.heads._registry`.
"""

from __future__ import annotations

from embedkit.heads._registry import registry as _registry
from embedkit.heads.base import Head

#: class decorator: ``@register("name")`` registers a :class:`Head` subclass
register = _registry.register
#: names of all registered heads, sorted
available = _registry.available
#: the class registered under a name (:class:`~embedkit.errors.UsageError` for an unknown name)
head_class = _registry.get


#: an unfitted head: ``get_head(name, **params)``
get_head = _registry.build


__all__ = ["Head", "available", "get_head", "head_class", "register"]

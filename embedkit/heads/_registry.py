"""The head registry instance.

Its own module, so that :mod:`embedkit.heads.base` can look a class up by name without importing the package
that imports it.
"""

from __future__ import annotations

from embedkit.errors import UsageError
from embedkit.registry import Registry

#: the modules of :mod:`embedkit.heads` that hold heads (imported on the first lookup)
MODULES = ("logreg", "mlp", "lgbm", "mil", "proto")
registry = Registry("head", "embedkit.heads", MODULES, UsageError)

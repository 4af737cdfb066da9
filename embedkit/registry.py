"""One registry class for every pluggable kind (backbones, heads).

A registry maps names to classes. Classes register themselves with a decorator when their module is
imported; the registry imports its package's modules (listed once, in the package's ``__init__``) the first
time a name is looked up, so importing a package stays cheap and heavy dependencies load only with the
class that needs them.

Your own classes: ``EMBEDKIT_PLUGINS=mypkg.backbones,other`` (comma-separated importable modules) are
imported at that first lookup too, so a backbone or head registered there is found by name in every process
that runs embedkit: ``extract.py --backbone mine``, and the Ray workers of ``--engine ray`` (set the variable
where each node starts).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable


class Registry:
    """Names → classes for one kind of plug-in.

    Args:
        kind: what is registered, for messages (``"backbone"``, ``"head"``).
        package: dotted package whose ``modules`` hold the registered classes.
        modules: module names (in ``package``) imported on the first lookup.
        error: exception class raised for an unknown name (its message lists the choices).
    """

    def __init__(self, kind: str, package: str, modules: tuple[str, ...], error: type[Exception]):
        self.kind, self.package, self.modules, self.error = kind, package, modules, error
        self._classes: dict[str, type] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[type], type]:
        """Class decorator registering ``cls`` under ``name`` (and setting ``cls.name``)."""

        def deco(cls: type) -> type:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            cls.name = name
            self._classes[name] = cls
            return cls

        return deco

    def _load_all(self) -> None:
        if not self._loaded:
            for mod in self.modules:
                importlib.import_module(f"{self.package}.{mod}")
            for mod in filter(None, (m.strip() for m in os.environ.get("EMBEDKIT_PLUGINS", "").split(","))):
                try:
                    importlib.import_module(mod)
                except ImportError as e:
                    raise self.error(f"EMBEDKIT_PLUGINS: cannot import {mod!r} ({e})") from None
            self._loaded = True

    def available(self) -> list[str]:
        """Names of all registered classes, sorted."""
        self._load_all()
        return sorted(self._classes)

    def get(self, name: str) -> type:
        """The class registered under ``name``; ``self.error`` naming the choices for an unknown name."""
        self._load_all()
        try:
            return self._classes[name]
        except KeyError:
            raise self.error(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(sorted(self._classes))}"
            ) from None

    def build(self, name: str, **kwargs):
        """An instance of the class registered under ``name``, built with ``kwargs``."""
        return self.get(name)(**kwargs)

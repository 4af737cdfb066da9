"""Backbone registry: one interface for every frozen audio model.

A backbone is registered with :func:`register` and built with :func:`get_backbone`. Heavy imports (torch,
transformers, ai-edge-litert) happen inside each class, so importing this package is cheap.

Adding a backbone: write one file in this package with a :class:`~embedkit.backbones.base.Backbone`
subclass decorated with ``@register("name")``, and add its module name to ``_MODULES`` below.
"""

from __future__ import annotations

import importlib

from embedkit.backbones.base import Backbone, BackboneError, MissingDependency

_REGISTRY: dict[str, type[Backbone]] = {}
_MODULES = ("birdnet", "panns", "wav2vec2")
_loaded = False


def register(name: str):
    """Class decorator that registers a :class:`Backbone` subclass under ``name``."""

    def deco(cls: type[Backbone]) -> type[Backbone]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"backbone {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for mod in _MODULES:
            importlib.import_module(f"embedkit.backbones.{mod}")
        _loaded = True


def available() -> list[str]:
    """Names of all registered backbones, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def backbone_class(name: str) -> type[Backbone]:
    """The class registered under ``name``; a clear error for an unknown name."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BackboneError(
            f"unknown backbone {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}"
        ) from None


def get_backbone(name: str, **kwargs) -> Backbone:
    """Build the backbone registered under ``name`` with constructor keyword arguments ``kwargs``."""
    return backbone_class(name)(**kwargs)


__all__ = [
    "Backbone",
    "BackboneError",
    "MissingDependency",
    "available",
    "backbone_class",
    "get_backbone",
    "register",
]

"""Backbone registry: one interface for every frozen audio model.

A backbone is registered with :func:`register` and built with :func:`get_backbone`. Heavy imports (torch,
transformers, ai-edge-litert) happen inside each class, so importing this package is cheap.

Adding a backbone: write one file in this package with a :class:`~embedkit.backbones.base.Backbone`
subclass decorated with ``@register("name")``, and add its module name to ``_MODULES`` below.
"""

from __future__ import annotations

from embedkit.backbones.base import Backbone, BackboneError, MissingDependency
from embedkit.registry import Registry

#: the modules of this package that hold backbones (imported on the first lookup)
_MODULES = ("birdnet", "panns", "wav2vec2", "onnx", "tflite", "perch")
_registry = Registry("backbone", __name__, _MODULES, BackboneError)

#: class decorator: ``@register("name")`` registers a :class:`Backbone` subclass
register = _registry.register
#: names of all registered backbones, sorted
available = _registry.available
#: the class registered under a name (:class:`BackboneError` for an unknown name, listing the choices)
backbone_class = _registry.get


#: a backbone: ``get_backbone(name, **options)``
get_backbone = _registry.build


__all__ = [
    "Backbone",
    "BackboneError",
    "MissingDependency",
    "available",
    "backbone_class",
    "get_backbone",
    "register",
]

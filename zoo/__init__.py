"""zoo: a Keras 3 model zoo.

``import zoo`` is cheap: the public functions below are imported on first use (PEP 562), so
``zoo list`` answers without importing Keras or a backend. The built-in architectures register
themselves on the registry's first lookup, the way plugins of the ``zoo.models`` entry points do.
A ``.keras`` file of a zoo model needs zoo's layers registered with Keras first: ``import
zoo.layers`` (``zoo.create``/``zoo.load`` do it) before ``keras.saving.load_model``.

Example:
    >>> import zoo
    >>> zoo.list_models()
    ['cnn', 'resnet18', 'resnet34', 'xception_localizer']
    >>> model = zoo.create("resnet34", num_classes=5)
"""

from __future__ import annotations

import importlib
from typing import Any

from zoo._version import __version__

#: Public name -> the module that defines it.
_EXPORTS = {
    "create": "zoo.api",
    "load": "zoo.api",
    "info": "zoo.api",
    "list_models": "zoo.registry",
    "register_model": "zoo.registry",
    "save_weights": "zoo.weights",
    "load_weights": "zoo.weights",
    "push": "zoo.hub",
    "pull": "zoo.hub",
    "predict": "zoo.prediction",
    "DefaultConv2D": "zoo.layers",
    "CNNConv2D": "zoo.layers",
    "ResNetConv2D": "zoo.layers",
    "ResidualUnit": "zoo.layers",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    try:  # a submodule, e.g. zoo.evaluation after a plain `import zoo`
        return importlib.import_module(f"zoo.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"zoo.{name}":
            raise
        raise AttributeError(f"module 'zoo' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

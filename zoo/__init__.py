"""zoo: a Keras 3 model zoo.

Example:
    >>> import zoo
    >>> zoo.list_models()
    ['cnn', 'resnet18', 'resnet34', 'xception_localizer']
    >>> model = zoo.create("resnet34", num_classes=5)
"""

from zoo._version import __version__
from zoo.api import create, info, load
from zoo.hub import pull, push
from zoo.layers import CNNConv2D, DefaultConv2D, ResidualUnit, ResNetConv2D
from zoo.registry import list_models, register_model
from zoo.weights import load_weights, save_weights

# The built-in architectures register themselves, through this one explicit import (as plugins
# do through the ``zoo.models`` entry points): the registry itself imports no model.
import zoo.models  # noqa: E402,F401  isort: skip

__all__ = [
    "__version__",
    "create",
    "load",
    "info",
    "list_models",
    "register_model",
    "save_weights",
    "load_weights",
    "push",
    "pull",
    "DefaultConv2D",
    "CNNConv2D",
    "ResNetConv2D",
    "ResidualUnit",
]

"""Built-in architectures; importing this package registers them."""

from zoo.models import cnn, resnet, xception  # noqa: F401

"""Reusable layers: the tutorial's ``DefaultConv2D`` factories and ``ResidualUnit``.

Every layer here is serializable (``get_config`` returns all constructor arguments) and gives
its sublayers fixed names, because safetensors weight keys are built from those names.
"""

from __future__ import annotations

import numbers
from functools import partial
from typing import Any

import keras

__all__ = ["DATA_FORMAT", "CNNConv2D", "ResNetConv2D", "DefaultConv2D", "ResidualUnit"]

#: Every zoo model is channels-last whatever ``keras.config.image_data_format()`` says: their
#: ``input_shape`` is (height, width, channels) and their batch-norm layers normalise axis -1.
DATA_FORMAT = "channels_last"

#: The CNN tutorial's convolution: 3x3, "same" padding, ReLU, He-normal initialisation.
#:
#: Example: ``CNNConv2D(filters=64, kernel_size=7, name="conv1")``
CNNConv2D = partial(
    keras.layers.Conv2D,
    kernel_size=3,
    padding="same",
    activation="relu",
    kernel_initializer="he_normal",
    data_format=DATA_FORMAT,
)

#: The ResNet tutorial's convolution: 3x3, stride 1, "same", He-normal, no bias, no activation.
#:
#: Example: ``ResNetConv2D(128, strides=2, name="conv1")``
ResNetConv2D = partial(
    keras.layers.Conv2D,
    kernel_size=3,
    strides=1,
    padding="same",
    kernel_initializer="he_normal",
    use_bias=False,
    data_format=DATA_FORMAT,
)

#: The tutorial's name for the CNN flavour.
DefaultConv2D = CNNConv2D


def _positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1 (a NumPy integer too: get_config then records a plain int)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def _activation_name(activation: Any) -> str:
    """The name of a Keras activation, given by name or as one of ``keras.activations``' functions.

    Looked up by attribute, not with ``keras.activations.serialize``, which imports TensorFlow
    through Keras' serialization helpers even on the JAX and torch backends.

    Example:
        >>> _activation_name("relu"), _activation_name(keras.activations.gelu)
        ('relu', 'gelu')
    """
    if isinstance(activation, str):
        name = activation
    else:
        name = getattr(activation, "__name__", None)
        if not (isinstance(name, str) and getattr(keras.activations, name, None) is activation):
            name = None
    if name is not None:
        try:
            keras.activations.get(name)
            return name
        except ValueError:
            pass
    raise ValueError(
        "`activation` must be the name of a Keras activation (e.g. 'relu', 'gelu') or one of "
        "keras.activations' functions, so that the layer's config rebuilds it; a custom function "
        f"could not be loaded back. Received: activation={activation!r}"
    )


@keras.saving.register_keras_serializable(package="zoo")
class ResidualUnit(keras.layers.Layer):
    """The basic ResNet block: conv-BN-act-conv-BN plus a (projected) skip, then act.

    The skip path is a 1x1 convolution + batch norm when ``strides > 1`` or when the number
    of input channels differs from ``filters``; otherwise it is the identity.

    Example:
        >>> unit = ResidualUnit(128, strides=2, name="stage2_unit1")
        >>> tuple(unit(keras.ops.zeros((1, 8, 8, 64))).shape)
        (1, 4, 4, 128)
    """

    def __init__(self, filters: int, strides: int = 1, activation: str = "relu", **kwargs: Any):
        super().__init__(**kwargs)
        self.filters = _positive_int("filters", filters)
        self.strides = _positive_int("strides", strides)
        # Kept by name: the layer's config must rebuild it (a custom function would not load back).
        self.activation = _activation_name(activation)
        self._activation_fn = keras.activations.get(self.activation)
        # Every sublayer computes in this layer's dtype policy (as Keras' own composite layers do):
        # a unit built with "mixed_bfloat16" runs its main path and its skip in bfloat16.
        policy = self.dtype_policy
        self.conv1 = ResNetConv2D(self.filters, strides=self.strides, name="conv1", dtype=policy)
        self.bn1 = keras.layers.BatchNormalization(name="bn1", dtype=policy)
        self.conv2 = ResNetConv2D(self.filters, name="conv2", dtype=policy)
        self.bn2 = keras.layers.BatchNormalization(name="bn2", dtype=policy)
        self.skip_conv: keras.layers.Layer | None = None
        self.skip_bn: keras.layers.Layer | None = None

    def build(self, input_shape: tuple) -> None:
        in_channels = input_shape[-1]
        self.conv1.build(input_shape)
        main_shape = self.conv1.compute_output_shape(input_shape)
        self.bn1.build(main_shape)
        self.conv2.build(main_shape)
        self.bn2.build(main_shape)
        if self.strides > 1 or in_channels != self.filters:
            self.skip_conv = ResNetConv2D(
                self.filters, kernel_size=1, strides=self.strides, name="skip_conv", dtype=self.dtype_policy
            )
            self.skip_bn = keras.layers.BatchNormalization(name="skip_bn", dtype=self.dtype_policy)
            self.skip_conv.build(input_shape)
            self.skip_bn.build(main_shape)

    def call(self, inputs, training=None):
        z = self.conv1(inputs)
        z = self.bn1(z, training=training)
        z = self._activation_fn(z)
        z = self.conv2(z)
        z = self.bn2(z, training=training)
        skip = inputs
        if self.skip_conv is not None:
            skip = self.skip_bn(self.skip_conv(inputs), training=training)
        return self._activation_fn(z + skip)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return self.conv1.compute_output_shape(input_shape)[:-1] + (self.filters,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(filters=self.filters, strides=self.strides, activation=self.activation)
        return config

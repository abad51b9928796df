"""The tutorial's plain Keras code for the three architectures: the baseline zoo is measured against.

This is the code of the seed tutorial (``shared/seed/000_*.txt``, after Geron's "Hands-On Machine
Learning", chapter 14), with the smallest changes needed to build the same networks as
``zoo.create(...)`` under Keras 3 on any backend:

* ``tf.keras`` becomes ``keras`` (Keras 3, any backend), and ``input_shape=`` on the first layer
  becomes a ``keras.Input`` (Keras 3 warns about the former).
* Every model gets the input rescaling that zoo models carry inside them (``Rescaling(1/255)``,
  or ``Rescaling(1/127.5, offset=-1)`` = ``xception.preprocess_input`` for Xception). The tutorial
  rescales in the data pipeline instead; moving it into the model makes both sides do the same
  arithmetic on the same raw pixels.
* ResNet-34 uses zoo's ``stem="small"`` (a 3x3/1 convolution, batch norm, ReLU, no max-pool) instead
  of the tutorial's 7x7/2 convolution + 3x3/2 max-pool, for 28x28x1 inputs. The rest is the
  tutorial's ``ResidualUnit`` and loop, unchanged (including its ``Flatten`` after pooling).
* The localizer's ``box`` head gets zoo's sigmoid (the tutorial's is linear; same cost), and the
  Xception base is built without ImageNet weights (no download, any channel count).

Nothing here imports zoo: this is what a user would write without the zoo.
"""

from __future__ import annotations

from functools import partial

import keras

__all__ = ["BUILDERS", "ResidualUnit", "cnn", "resnet34", "xception_localizer"]


def cnn(input_shape=(28, 28, 1), num_classes=10):
    """The tutorial's Sequential CNN with the ``functools.partial`` ``DefaultConv2D``."""
    DefaultConv2D = partial(
        keras.layers.Conv2D, kernel_size=3, padding="same", activation="relu", kernel_initializer="he_normal"
    )
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Rescaling(1.0 / 255.0),
            DefaultConv2D(filters=64, kernel_size=7),
            keras.layers.MaxPool2D(),
            DefaultConv2D(filters=128),
            DefaultConv2D(filters=128),
            keras.layers.MaxPool2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(units=128, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(units=64, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(units=num_classes, activation="softmax"),
        ]
    )


# The tutorial's ResNet convolution.
DefaultConv2D = partial(
    keras.layers.Conv2D, kernel_size=3, strides=1, padding="same", kernel_initializer="he_normal", use_bias=False
)


class ResidualUnit(keras.layers.Layer):
    """The tutorial's residual unit, unchanged but for ``tf.keras`` -> ``keras``."""

    def __init__(self, filters, strides=1, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.main_layers = [
            DefaultConv2D(filters, strides=strides),
            keras.layers.BatchNormalization(),
            self.activation,
            DefaultConv2D(filters),
            keras.layers.BatchNormalization(),
        ]
        self.skip_layers = []
        if strides > 1:
            self.skip_layers = [
                DefaultConv2D(filters, kernel_size=1, strides=strides),
                keras.layers.BatchNormalization(),
            ]

    def call(self, inputs):
        Z = inputs
        for layer in self.main_layers:
            Z = layer(Z)
        skip_Z = inputs
        for layer in self.skip_layers:
            skip_Z = layer(skip_Z)
        return self.activation(Z + skip_Z)


def resnet34(input_shape=(28, 28, 1), num_classes=10):
    """The tutorial's ResNet-34 with zoo's small stem (3x3/1 conv, BN, ReLU, no max-pool)."""
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Rescaling(1.0 / 255.0),
            DefaultConv2D(64, kernel_size=3, strides=1),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
        ]
    )
    prev_filters = 64
    for filters in [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3:
        strides = 1 if filters == prev_filters else 2
        model.add(ResidualUnit(filters, strides=strides))
        prev_filters = filters
    model.add(keras.layers.GlobalAvgPool2D())
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(num_classes, activation="softmax"))
    return model


def xception_localizer(input_shape=(96, 96, 1), num_classes=10):
    """The tutorial's Xception + a softmax class head and a 4-unit box head (list outputs)."""
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)  # = xception.preprocess_input
    base_model = keras.applications.xception.Xception(weights=None, include_top=False, input_tensor=x)
    avg = keras.layers.GlobalAveragePooling2D()(base_model.output)
    class_output = keras.layers.Dense(num_classes, activation="softmax")(avg)
    loc_output = keras.layers.Dense(4, activation="sigmoid")(avg)
    return keras.Model(inputs=inputs, outputs=[class_output, loc_output])


BUILDERS = {"cnn": cnn, "resnet34": resnet34, "xception_localizer": xception_localizer}

"""Softmax outputs and the logits behind them: what training computes its cross-entropy from.

The zoo's classifiers end in a ``Dense`` layer without activation (the logits, keeping the
``predictions`` weight names) followed by a separate softmax ``Activation``; their outputs are
probabilities. Training fits :func:`logits_view` instead -- the same layers and weights, each
softmax output replaced by its logits -- with ``from_logits=True`` losses. Keras'
cross-entropy on probabilities is exact only under TensorFlow (which finds the logits behind
a softmax); under PyTorch and JAX it clips the probabilities to ``[1e-7, 1 - 1e-7]``, so a
class whose probability underflows gets no gradient at all: a confidently wrong example
stops being learnt from, and label smoothing stops bounding the logits.

Example:
    >>> import keras
    >>> inputs = keras.Input((3,))
    >>> logits = keras.layers.Dense(2, name="predictions")(inputs)
    >>> model = keras.Model(inputs, keras.layers.Activation("softmax", name="probabilities")(logits))
    >>> outputs_are_logits(model), outputs_are_logits(logits_view(model))
    (False, True)
"""

from __future__ import annotations

from typing import Any

import keras

__all__ = ["is_softmax_layer", "logits_view", "outputs_are_logits"]


def is_softmax_layer(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` ends in a softmax: a ``Softmax`` layer, or any layer (``Activation``,
    ``Dense``, ...) whose ``activation`` is ``keras.activations.softmax``.

    Example:
        >>> is_softmax_layer(keras.layers.Activation("softmax")), is_softmax_layer(keras.layers.Dense(2))
        (True, False)
    """
    if isinstance(layer, keras.layers.Softmax):
        return True
    return getattr(layer, "activation", None) is keras.activations.softmax


def _output_structure(model: keras.Model) -> Any:
    """``model.output`` (a tensor or a dict of them); a ``Sequential`` model has only ``outputs``."""
    return model.outputs[0] if isinstance(model, keras.Sequential) else model.output


def _input_structure(model: keras.Model) -> Any:
    return model.inputs[0] if isinstance(model, keras.Sequential) else model.input


def _producers(model: keras.Model) -> dict[int, keras.layers.Layer]:
    """The layer that produces each output tensor of ``model``, keyed by the tensor's ``id``."""
    outputs = {id(tensor) for tensor in keras.tree.flatten(_output_structure(model))}
    producers = {}
    for layer in model.layers:
        try:
            output = layer.output
        except (AttributeError, ValueError):  # a layer called more than once has no single output
            continue
        for tensor in keras.tree.flatten(output):
            if id(tensor) in outputs:
                producers[id(tensor)] = layer
    return producers


def _bypassable(layer: keras.layers.Layer) -> bool:
    """A softmax-only layer, whose input is the logits of its output."""
    return isinstance(layer, (keras.layers.Softmax, keras.layers.Activation)) and is_softmax_layer(layer)


def outputs_are_logits(model: keras.Model, output: str | None = None) -> bool:
    """Whether ``model``'s output (the only one, or the dict output named ``output``) is not made by
    a softmax layer -- so a cross-entropy on it takes ``from_logits=True``.

    Example:
        >>> import zoo
        >>> outputs_are_logits(zoo.create("cnn")), outputs_are_logits(logits_view(zoo.create("cnn")))
        (False, True)
    """
    structure = _output_structure(model)
    if output is not None:
        if not isinstance(structure, dict) or output not in structure:
            names = sorted(structure) if isinstance(structure, dict) else []
            raise ValueError(f"{model.name!r} has no output named {output!r}; its named outputs: {names}. "
                             f"Received: output={output!r}")
        structure = structure[output]
    tensors = keras.tree.flatten(structure)
    if len(tensors) != 1:
        raise ValueError(f"{model.name!r} has {len(tensors)} outputs; name one of them. Received: output={output!r}")
    producer = _producers(model).get(id(tensors[0]))
    return producer is None or not is_softmax_layer(producer)


def logits_view(model: keras.Model) -> keras.Model:
    """``model`` with each output made by a softmax layer replaced by that layer's input (its
    logits): a model of the same name, sharing every layer and weight, so that training it trains
    ``model`` and the weight files of both have the same keys. A model with no such output is
    returned as it is; a ``Dense(activation="softmax")`` output stays (it has no logits tensor).

    Example:
        >>> import zoo
        >>> model = zoo.create("cnn")
        >>> view = logits_view(model)
        >>> view.name == model.name, view.get_layer("predictions") is model.get_layer("predictions")
        (True, True)
    """
    swaps: dict[int, Any] = {
        key: layer.input for key, layer in _producers(model).items() if _bypassable(layer)
    }
    if not swaps:
        return model
    outputs = keras.tree.map_structure(lambda tensor: swaps.get(id(tensor), tensor), _output_structure(model))
    return keras.Model(_input_structure(model), outputs, name=model.name)

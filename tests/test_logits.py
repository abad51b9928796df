"""Training computes the cross-entropy from logits, so that its gradient is the same under every
backend (zoo.logits; issue 11, session 26): Keras' cross-entropy on probabilities clips them to
[1e-7, 1 - 1e-7] under PyTorch and JAX, which gave an underflowed class no gradient at all.

Runs in each backend's suite."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import zoo
from zoo.logits import is_softmax_layer, logits_view, outputs_are_logits
from zoo.tasks import get_task
from zoo.training.fit import compile_model
from zoo.training.recipes import get_recipe

SMOOTHING = 0.1


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def test_every_classifier_outputs_probabilities_and_trains_its_logits():
    for name, kwargs, output in [("cnn", {}, None), ("resnet34", {"input_shape": (32, 32, 1), "num_classes": 10,
                                 "stem": "small"}, None), ("xception_localizer", {"input_shape": (71, 71, 1)}, "class")]:
        model = zoo.create(name, **kwargs)
        view = logits_view(model)
        assert not outputs_are_logits(model, output) and outputs_are_logits(view, output), name
        assert view.name == model.name and view is not model
        assert sorted(id(v) for v in view.weights) == sorted(id(v) for v in model.weights), name  # the same variables
        if output is None:
            continue
        assert outputs_are_logits(model, "box") and outputs_are_logits(view, "box")  # the box head is untouched
        with pytest.raises(ValueError, match=r"named outputs: \['box', 'class'\]\. Received: output='boxes'"):
            outputs_are_logits(model, "boxes")


def test_the_view_s_softmax_is_the_model_s_output():
    model = zoo.create("cnn")
    x = np.random.default_rng(0).uniform(0, 255, (3, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(_numpy(keras.ops.softmax(logits_view(model)(x))), _numpy(model(x)), atol=1e-6)


def test_compile_model_fits_the_logits_view_with_a_from_logits_loss():
    model = zoo.create("cnn")
    trainer = compile_model(model, get_recipe("cnn"), steps_per_epoch=10)
    assert trainer is not model and trainer.get_layer("fc1") is model.get_layer("fc1")
    assert trainer.loss.get_config()["from_logits"] is True
    assert model.get_layer("probabilities") not in trainer.layers


def test_models_without_a_softmax_layer_are_left_as_they_are():
    inputs = keras.Input((3,))
    logits = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    fused = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))  # no logits tensor to take
    assert logits_view(logits) is logits and logits_view(fused) is fused
    assert outputs_are_logits(logits) and not outputs_are_logits(fused)
    assert is_softmax_layer(keras.layers.Softmax()) and not is_softmax_layer(keras.layers.Activation("relu"))
    compiled = get_task("classification").compile(fused, keras.optimizers.SGD(0.1), label_smoothing=SMOOTHING)
    assert compiled.loss.get_config()["from_logits"] is False


def test_an_underflowed_true_class_gets_its_exact_gradient_under_this_backend():
    """The true class's logit is 200 below the others (its probability underflows to 0 in float32):
    one SGD step at rate 1 moves each bias by minus the exact gradient, p - y."""
    model = zoo.create("cnn", dropout=0.0)
    head = model.get_layer("predictions")
    head.kernel.assign(np.zeros(head.kernel.shape, "float32"))
    head.bias.assign(np.array([-200.0] + [0.0] * 9, "float32"))
    assert _numpy(model(np.zeros((1, 28, 28, 1), "float32")))[0, 0] == 0.0  # underflowed
    trainer = get_task("classification").compile(logits_view(model), keras.optimizers.SGD(1.0), label_smoothing=SMOOTHING)
    x = np.random.default_rng(1).uniform(0, 255, (4, 28, 28, 1)).astype("float32")
    y = np.zeros((4, 10), "float32")
    y[:, 0] = 1.0
    before = _numpy(head.bias).copy()
    trainer.train_on_batch(x, y)
    step = _numpy(head.bias) - before
    target = (1 - SMOOTHING) * y[0] + SMOOTHING / 10  # the smoothed one-hot target
    probabilities = np.array([0.0] + [1 / 9] * 9)
    np.testing.assert_allclose(step, target - probabilities, rtol=1e-4, atol=1e-6)

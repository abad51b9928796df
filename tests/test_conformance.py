"""Keras conformance (issue 15): zoo layers pass Keras' own layer harness, and every
architecture honours a per-model dtype policy without touching the global one."""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
from conftest import sample_batch, small_overrides
from keras.src.testing import TestCase

import zoo
import zoo.training
from zoo.layers import ResidualUnit

BACKEND = keras.backend.backend()
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
#: Largest difference of a mixed-precision model's softmax outputs from the float32 model's,
#: for the same weights (half precision keeps 8-11 bits of mantissa).
TOLERANCE = {"float32": 1e-6, "mixed_float16": 0.02, "mixed_bfloat16": 0.06}


class _Harness(TestCase):
    def runTest(self):  # pragma: no cover - unittest needs one test method to instantiate
        pass


@pytest.mark.parametrize("strides, in_channels, trainable, non_trainable", [(1, 8, 6, 4), (2, 8, 9, 6), (1, 4, 9, 6)])
def test_residual_unit_passes_keras_layer_harness(strides, in_channels, trainable, non_trainable):
    harness = _Harness()
    harness.run_layer_test(
        ResidualUnit,
        init_kwargs={"filters": 8, "strides": strides},
        input_shape=(2, 6, 6, in_channels),
        expected_output_shape=(2, 6 // strides, 6 // strides, 8),
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=non_trainable,
        supports_masking=False,
    )
    harness.run_class_serialization_test(ResidualUnit(8, strides=strides, activation="elu", name="unit"))


def test_residual_unit_hands_its_policy_to_every_sublayer():
    unit = ResidualUnit(8, strides=2, dtype="mixed_bfloat16")
    out = unit(keras.ops.ones((1, 4, 4, 4)))
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    for layer in (unit.conv1, unit.bn1, unit.conv2, unit.bn2, unit.skip_conv, unit.skip_bn):
        assert layer.dtype_policy.name == "mixed_bfloat16", layer.name
        assert all(v.dtype == "float32" for v in layer.weights)


@functools.lru_cache(maxsize=None)
def _float32_reference(name: str) -> keras.Model:
    """One float32 model per architecture, shared by the policies' tests (only read by them)."""
    return zoo.create(name, **small_overrides(name))


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", ["cnn", "resnet34", "xception_localizer"])
def test_architectures_take_a_dtype_policy(name, policy):
    before = keras.config.dtype_policy().name
    reference = _float32_reference(name)
    model = zoo.create(name, dtype=policy, **small_overrides(name))
    assert keras.config.dtype_policy().name == before  # the global policy is left alone
    model.set_weights(reference.get_weights())
    assert all(v.dtype == "float32" for v in model.weights)
    # Every layer with weights (nested models are containers, not layers of their own), but the
    # float32 output heads, computes in the policy's dtype.
    layers = [
        layer for layer in model._flatten_layers(include_self=False)
        if layer.weights and not isinstance(layer, keras.Model)
    ]
    compute = {layer.name: layer.dtype_policy.compute_dtype for layer in layers}
    compute_inner = {dtype for name, dtype in compute.items() if name not in {"predictions", "class", "box"}}
    expected = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}[policy]
    assert compute_inner == {expected}, compute
    x = sample_batch(model, batch=2)
    got, want = model(x, training=False), reference(x, training=False)
    for key in (sorted(got) if isinstance(got, dict) else [None]):
        a = keras.ops.convert_to_numpy(got[key] if key else got)
        b = keras.ops.convert_to_numpy(want[key] if key else want)
        assert a.dtype == np.float32  # outputs stay float32
        assert np.max(np.abs(a - b)) <= TOLERANCE[policy], (key, np.max(np.abs(a - b)))
    config = model.zoo_config["config"]
    assert config["dtype"] == policy
    again = zoo.create(name, **config)
    policies = {layer.name: layer.dtype_policy.name for layer in model.layers}
    assert {layer.name: layer.dtype_policy.name for layer in again.layers} == policies
    assert set(policies.values()) >= {policy}  # the inner layers, not only the float32 heads


def test_dtype_policy_round_trips_through_keras_files_and_zoo_folders(tmp_path):
    model = zoo.create("resnet18", input_shape=(28, 28, 1), dtype="mixed_bfloat16")
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    unit = reloaded.get_layer("stage2_unit1")
    assert unit.dtype_policy.name == "mixed_bfloat16" and unit.conv1.dtype_policy.name == "mixed_bfloat16"
    zoo.format.save_folder(model, tmp_path / "folder")
    loaded = zoo.load(tmp_path / "folder")
    assert loaded.get_layer("stage2_unit1").conv1.dtype_policy.name == "mixed_bfloat16"
    float32 = zoo.load(tmp_path / "folder", dtype="float32")
    assert float32.get_layer("stage2_unit1").conv1.dtype_policy.name == "float32"
    # Released float32 weights load into a mixed-precision model of the same architecture.
    released, mixed = zoo.load("cnn"), zoo.load("cnn", dtype="mixed_bfloat16")
    assert all(v.dtype == "float32" for v in mixed.weights)
    x = sample_batch(released, batch=4)
    diff = np.max(np.abs(keras.ops.convert_to_numpy(mixed(x)) - keras.ops.convert_to_numpy(released(x))))
    assert diff <= TOLERANCE["mixed_bfloat16"], diff


def test_bad_dtype_is_refused_clearly():
    with pytest.raises(ValueError, match="Received: dtype='float8'"):
        zoo.create("cnn", dtype="float8")


@pytest.mark.skipif(zoo.data.find_data_dir() is None, reason="needs Fashion-MNIST")
def test_mixed_precision_training_uses_the_models_policy_not_the_global_one(tmp_path):
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((keras.config.dtype_policy().name, self.model.get_layer("conv1").dtype_policy.name))

    run = zoo.training.train(
        "cnn", output_dir=tmp_path / "run", epochs=1, batch_size=32, limit=96, mixed_precision=True,
        verbose=0, callbacks=[Watch()],
    )
    assert seen and set(seen) == {("float32", "mixed_bfloat16")}
    exported = zoo.load(run)  # the exported model is float32 (its config has no mixed policy)
    assert exported.get_layer("conv1").dtype_policy.name == "float32"

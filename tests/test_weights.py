"""Safetensors I/O: strictness, head re-initialisation, sharding, storage dtype, no overwrite."""

import json

import keras
import numpy as np
import pytest
from conftest import predict, run_python, sample_batch

import zoo
from zoo.weights import INDEX_NAME, WeightsMismatchError, read_weights


@pytest.fixture
def cnn():
    return zoo.create("cnn")


def test_weights_with_wrong_shapes_are_refused_with_every_key_listed(tmp_path, cnn):
    zoo.save_weights(zoo.create("cnn", input_shape=(32, 32, 1)), tmp_path / "w.safetensors")
    with pytest.raises(WeightsMismatchError) as error:
        zoo.load_weights(cnn, tmp_path / "w.safetensors")
    assert "Shape mismatch for 'fc1/kernel': model (6272, 128), file (8192, 128)" in str(error.value)


def test_missing_and_unexpected_keys_are_listed(tmp_path, cnn):
    zoo.save_weights(zoo.create("resnet18"), tmp_path / "w.safetensors")
    with pytest.raises(WeightsMismatchError) as error:
        zoo.load_weights(cnn, tmp_path / "w.safetensors")
    message = str(error.value)
    assert "Missing keys (10)" in message and "'conv1/kernel'" in message
    assert "Unexpected keys" in message and "stage1_unit1/conv1/kernel" in message


def test_other_num_classes_loads_all_but_the_head(tmp_path, cnn):
    zoo.save_weights(cnn, tmp_path / "w.safetensors")
    five = zoo.create("cnn", num_classes=5)
    head_before = keras.ops.convert_to_numpy(five.get_layer("predictions").kernel)
    with pytest.warns(UserWarning, match="fresh initialisation"):
        report = zoo.load_weights(five, tmp_path / "w.safetensors", head=("predictions",))
    assert report.reinitialized == ["predictions/bias", "predictions/kernel"]
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(five.get_layer("conv1").kernel),
        keras.ops.convert_to_numpy(cnn.get_layer("conv1").kernel),
    )
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(five.get_layer("predictions").kernel), head_before)


def test_sharded_weights_with_index_round_trip(tmp_path, cnn):
    files = zoo.save_weights(cnn, tmp_path, max_shard_size=1_000_000)
    assert len(files) > 2 and files[-1].name == INDEX_NAME
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    assert set(index["weight_map"]) == {w.path.removeprefix("cnn/") for w in cnn.weights}
    for shard in files[:-1]:
        arrays = read_weights(shard)
        assert len(arrays) == 1 or sum(a.nbytes for a in arrays.values()) <= 1_000_000
    other = zoo.create("cnn")
    zoo.load_weights(other, tmp_path)
    x = sample_batch(cnn)
    np.testing.assert_array_equal(predict(other, x), predict(cnn, x))


@pytest.mark.parametrize("dtype, tolerance", [("float16", 1e-3), ("bfloat16", 1e-2)])
def test_storage_dtype_loads_back_into_float32(tmp_path, cnn, dtype, tolerance):
    zoo.save_weights(cnn, tmp_path / "w.safetensors", storage_dtype=dtype)
    stored = read_weights(tmp_path / "w.safetensors")
    assert str(stored["conv1/kernel"].dtype) == dtype
    assert (tmp_path / "w.safetensors").stat().st_size < 0.6 * 4 * cnn.count_params()
    other = zoo.create("cnn")
    zoo.load_weights(other, tmp_path / "w.safetensors")
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in other.weights)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(other.get_layer("fc1").kernel),
        keras.ops.convert_to_numpy(cnn.get_layer("fc1").kernel),
        rtol=tolerance,
        atol=tolerance,
    )


def test_a_storage_dtype_that_overflows_a_weight_is_refused(tmp_path, cnn):
    bias = cnn.get_layer("predictions").bias
    bias.assign(np.full(bias.shape, 1e5, "float32"))  # float16 holds up to 65504, bfloat16 ~3e38
    with pytest.raises(ValueError, match=r"'predictions/bias' holds values up to 1e\+05, beyond what float16 .*"
                                         r"Received: storage_dtype='float16'"):
        zoo.save_weights(cnn, tmp_path / "w.safetensors", storage_dtype="float16")
    assert not list(tmp_path.iterdir())  # nothing written
    zoo.save_weights(cnn, tmp_path / "w.safetensors", storage_dtype="bfloat16")
    assert np.isfinite(read_weights(tmp_path / "w.safetensors")["predictions/bias"].astype("float32")).all()


def test_existing_weights_are_never_overwritten_silently(tmp_path, cnn):
    zoo.save_weights(cnn, tmp_path / "w.safetensors")
    before = (tmp_path / "w.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        zoo.save_weights(zoo.create("cnn"), tmp_path / "w.safetensors")
    assert (tmp_path / "w.safetensors").read_bytes() == before
    zoo.save_weights(zoo.create("cnn"), tmp_path / "w.safetensors", overwrite=True)
    assert (tmp_path / "w.safetensors").read_bytes() != before


def test_bad_storage_dtype_and_missing_file_are_clear(tmp_path, cnn):
    with pytest.raises(ValueError, match="Received: storage_dtype='int8'"):
        zoo.save_weights(cnn, tmp_path / "w.safetensors", storage_dtype="int8")
    with pytest.raises(FileNotFoundError, match="No weights file"):
        zoo.load_weights(cnn, tmp_path / "nope.safetensors")


def test_a_file_name_of_another_format_is_refused_not_made_a_folder(tmp_path, cnn):
    with pytest.raises(ValueError, match="Received: path='.*model.weights.h5'"):
        zoo.save_weights(cnn, tmp_path / "model.weights.h5")
    assert list(tmp_path.iterdir()) == []
    # A folder whose name has a dot (a release folder: cnn.fmnist) is still a folder.
    assert [p.name for p in zoo.save_weights(cnn, tmp_path / "cnn.fmnist")] == ["model.safetensors"]


def test_head_is_a_sequence_of_layer_names(tmp_path, cnn):
    zoo.save_weights(cnn, tmp_path / "w.safetensors")
    with pytest.raises(TypeError, match="Received: head='predictions'"):
        zoo.load_weights(cnn, tmp_path / "w.safetensors", head="predictions")
    with pytest.raises(TypeError, match="Received: head='predictions'"):
        zoo.register_model(name="headless", head="predictions")


def test_a_registered_name_is_not_shadowed_by_a_folder_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cnn").mkdir()  # e.g. a SavedModel export: no zoo folder
    (tmp_path / "cnn" / "saved_model.pb").write_bytes(b"")
    with pytest.warns(UserWarning, match="registered model name and also a folder here.*'./cnn'"):
        model = zoo.load("cnn")
    assert model.zoo_metadata["metrics"]["accuracy"] > 0.9  # the released weights, not the folder
    with pytest.raises(FileNotFoundError, match="config.json"):
        zoo.load("./cnn")  # the folder, when asked for: it holds no zoo model


def test_paths_under_the_home_folder_are_expanded(tmp_path, monkeypatch, cnn):
    monkeypatch.setenv("HOME", str(tmp_path))
    zoo.save_weights(cnn, "~/w.safetensors")
    assert (tmp_path / "w.safetensors").is_file()
    loaded = zoo.load("cnn", weights="~/w.safetensors")
    assert np.array_equal(loaded.get_layer("predictions").get_weights()[0], cnn.get_layer("predictions").get_weights()[0])
    cnn.save(tmp_path / "m.keras")
    assert zoo.load("~/m.keras").count_params() == cnn.count_params()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="crosses backends in subprocesses whatever the suite's backend: TensorFlow suite only")
def test_weights_saved_under_tensorflow_load_under_jax(tmp_path):
    """Cross-backend: save in a TensorFlow process, load in a JAX process, compare predictions."""
    pytest.importorskip("tensorflow", reason="saves in a TensorFlow process: pip install 'keras-zoo[test]'")
    pytest.importorskip("jax", reason="loads in a JAX process: pip install 'keras-zoo[test]'")
    save = f"""
import numpy as np, keras, zoo
model = zoo.create("resnet18", input_shape=(32, 32, 1))
x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 1)).astype("float32")
zoo.save_weights(model, {str(tmp_path / 'w.safetensors')!r})
np.save({str(tmp_path / 'x.npy')!r}, x)
np.save({str(tmp_path / 'tf.npy')!r}, keras.ops.convert_to_numpy(model(x, training=False)))
print(keras.backend.backend())
"""
    load = f"""
import numpy as np, keras, zoo
model = zoo.load("resnet18", weights={str(tmp_path / 'w.safetensors')!r}, input_shape=(32, 32, 1))
out = keras.ops.convert_to_numpy(model(np.load({str(tmp_path / 'x.npy')!r}), training=False))
np.save({str(tmp_path / 'jax.npy')!r}, out)
print(keras.backend.backend())
"""
    assert run_python(save, env={"KERAS_BACKEND": "tensorflow"}).strip().endswith("tensorflow")
    assert run_python(load, env={"KERAS_BACKEND": "jax"}).strip().endswith("jax")
    np.testing.assert_allclose(np.load(tmp_path / "jax.npy"), np.load(tmp_path / "tf.npy"), atol=1e-5)

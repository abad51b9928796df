"""The folder format (issue 12): config.json builds the model, metadata.json holds the rest;
version-1 folders still load; every handle goes through one resolve -> build -> load path."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import predict, sample_batch

import zoo
from zoo.api import build, resolve
from zoo.format import FORMAT_VERSION, IntegrityError, read_folder, save_folder


def _v1_copy(folder, target):
    """Rewrite a current folder the way format version 1 stored it: one config.json."""
    current = read_folder(folder)
    shutil.copytree(folder, target)
    legacy = {**current.build, "format_version": 1, "keras_config": {}, **current.metadata}
    (target / "config.json").write_text(json.dumps(legacy))
    (target / "metadata.json").unlink()
    return target


def test_config_json_holds_only_the_builder_arguments(tmp_path):
    model = zoo.create("cnn", num_classes=4)
    save_folder(model, tmp_path / "m", metadata={"metrics": {"accuracy": 0.5}, "seed": 3})
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config == {"format": "keras-zoo", "format_version": FORMAT_VERSION, "architecture": "cnn",
                      "tag": "fmnist", "config": {"input_shape": [28, 28, 1], "num_classes": 4, "dropout": 0.25,
                                                       "include_top": True, "dtype": None}}
    metadata = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert metadata["metrics"] == {"accuracy": 0.5} and metadata["seed"] == 3
    assert set(metadata["weights"]["files"]) == {"model.safetensors"}
    assert not list((tmp_path / "m").glob(".*.tmp"))  # atomic writes leave no temporary files
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_folder(model, tmp_path / "m")


def test_a_save_that_cannot_be_written_leaves_the_folder_as_it_was(tmp_path):
    """A dtype policy object is recorded by its name; a builder argument that is no JSON value is
    refused before any file is replaced (it used to replace the weights, then fail on config.json)."""
    import keras

    save_folder(zoo.create("cnn", num_classes=5), tmp_path / "m")
    save_folder(zoo.create("cnn", num_classes=3, dtype=keras.DTypePolicy("float32")), tmp_path / "m", overwrite=True)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["config"]["dtype"] == "float32"
    assert zoo.load(tmp_path / "m").output_shape == (None, 3)
    before = {path.name: path.read_bytes() for path in (tmp_path / "m").iterdir()}
    model = zoo.create("cnn", num_classes=7)
    model.zoo_config["config"]["dropout"] = object()
    with pytest.raises(ValueError, match=r"cannot be written as config.json.*Received: config=.*'dropout': <object"):
        save_folder(model, tmp_path / "m", overwrite=True)
    assert {path.name: path.read_bytes() for path in (tmp_path / "m").iterdir()} == before
    with pytest.raises(ValueError, match="cannot be written"):
        save_folder(model, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_version_1_folders_still_load_and_are_written_back_as_version_2(tmp_path):
    model = zoo.create("cnn", num_classes=4)
    save_folder(model, tmp_path / "new", metadata={"metrics": {"accuracy": 0.5}})
    old = _v1_copy(tmp_path / "new", tmp_path / "old")
    folder = read_folder(old)
    assert folder.build["format_version"] == 1 and folder.metadata["metrics"] == {"accuracy": 0.5}
    x = sample_batch(model)
    loaded = zoo.load(old)
    np.testing.assert_array_equal(predict(loaded, x), predict(model, x))
    save_folder(loaded, tmp_path / "again")
    assert read_folder(tmp_path / "again").build["format_version"] == FORMAT_VERSION


def test_unknown_or_future_formats_are_refused_clearly(tmp_path):
    save_folder(zoo.create("cnn"), tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ValueError, match=f"format_version={FORMAT_VERSION + 1}"):
        zoo.load(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        zoo.load(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="not a zoo model folder"):
        read_folder(tmp_path)


def test_every_kind_of_handle_takes_the_same_weights_argument(tmp_path, monkeypatch):
    model = zoo.create("cnn", num_classes=4)
    save_folder(model, tmp_path / "m")
    x = sample_batch(model)
    expected = predict(model, x)
    for handle in (tmp_path / "m", str(tmp_path / "m"), tmp_path / "m" / "model.safetensors"):
        np.testing.assert_array_equal(predict(zoo.load(handle), x), expected)
        untrained = zoo.load(handle, weights=None)
        assert untrained.output_shape == (None, 4)
        assert not np.array_equal(predict(untrained, x), expected)
    np.testing.assert_array_equal(predict(zoo.load("cnn", weights=tmp_path / "m", num_classes=4), x), expected)
    resolved = resolve(tmp_path / "m", weights=None)
    assert resolved.name == "cnn.fmnist" and resolved.weights is None
    assert build(resolved, num_classes=6).output_shape == (None, 6)
    # An empty string would be Path(""), the current folder: refused, whatever folder the caller is in.
    monkeypatch.chdir(tmp_path / "m")
    with pytest.raises(ValueError, match=r"`handle` is empty.*Received: handle=''"):
        zoo.load("")
    with pytest.raises(ValueError, match=r"`weights` is empty.*Received: weights=' '"):
        zoo.load("cnn", weights=" ", num_classes=4)


def test_a_weights_file_without_a_config_and_bad_hashes_are_refused(tmp_path):
    model = zoo.create("cnn")
    zoo.save_weights(model, tmp_path / "alone.safetensors")
    with pytest.raises(ValueError, match="no config.json next to it"):
        zoo.load(tmp_path / "alone.safetensors")
    np.testing.assert_array_equal(
        predict(zoo.load("cnn", weights=tmp_path / "alone.safetensors"), sample_batch(model)),
        predict(model, sample_batch(model)),
    )
    save_folder(model, tmp_path / "m")
    data = bytearray((tmp_path / "m" / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "m" / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="Integrity check failed for 'model.safetensors'"):
        zoo.load(tmp_path / "m")
    assert zoo.load(tmp_path / "m", weights=None).output_shape == (None, 10)  # no weights, no check


def test_weights_given_by_path_bring_their_own_record_and_are_checked(tmp_path):
    """``weights=`` a zoo folder, or a recorded file in one: its metadata.json says what the weights
    are (label names, preprocessing: what predict applies) and its hashes are checked. A bare file
    keeps only the handle's input conventions. A file handle is checked like its folder."""
    from conftest import ROOT

    from zoo.preprocess import preprocessing_of

    released = zoo.load("cnn")
    picture = ROOT / "examples" / "ankle-boot-on-white.jpg"
    [expected] = zoo.predict(released, picture)
    folder = ROOT / "weights" / "cnn.fmnist"
    for weights in (folder, folder / "model.safetensors"):
        model = zoo.load("cnn", weights=weights)
        assert model.zoo_metadata["label_names"] == list(released.zoo_metadata["label_names"])
        assert preprocessing_of(model.zoo_metadata) == preprocessing_of(released.zoo_metadata)
        [found] = zoo.predict(model, picture)
        assert found.top_k[0][0] == expected.top_k[0][0] == "Ankle boot" and found.notes == expected.notes
    zoo.save_weights(released, tmp_path / "alone.safetensors")
    bare = zoo.load("cnn", weights=tmp_path / "alone.safetensors")
    assert set(bare.zoo_metadata) == {"dataset", "preprocessing"}  # no labels or metrics of other weights
    [found] = zoo.predict(bare, picture)
    assert found.top_k[0][0] == "class_9" and found.notes == expected.notes
    copy = shutil.copytree(folder, tmp_path / "cnn.fmnist")
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    for handle, weights in ((copy / "model.safetensors", "default"), ("cnn", copy), ("cnn", copy / "model.safetensors")):
        with pytest.raises(IntegrityError, match="Integrity check failed for 'model.safetensors'"):
            zoo.load(handle, weights=weights)


def test_a_file_beside_the_recorded_ones_and_a_foreign_folder_load_with_what_is_known(tmp_path):
    """A run folder's last.safetensors (not in metadata.json): loaded, unverified, with a warning
    attributed to the caller, the folder's config and labels, not its metrics. A folder that is no
    zoo folder (another library's config.json) given as weights= keeps the handle's preprocessing."""
    three = zoo.create("cnn", num_classes=3)
    save_folder(three, tmp_path / "run", metadata={"label_names": ["a", "b", "c"], "metrics": {"accuracy": 0.9}})
    zoo.save_weights(three, tmp_path / "run" / "last.safetensors")
    with pytest.warns(UserWarning, match="'last.safetensors' is not one of the weight files") as warned:
        last = zoo.load(tmp_path / "run" / "last.safetensors")
    assert warned[0].filename == __file__
    assert last.output_shape == (None, 3) and last.zoo_metadata["label_names"] == ["a", "b", "c"]
    assert "metrics" not in last.zoo_metadata
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({"model_type": "custom", "hidden_size": 3}))
    zoo.save_weights(zoo.create("cnn"), tmp_path / "ckpt" / "model.safetensors")
    loaded = zoo.load("cnn", weights=tmp_path / "ckpt")
    assert loaded.zoo_metadata == {key: zoo.load("cnn").zoo_metadata[key] for key in ("dataset", "preprocessing")}


def test_a_folder_mixed_from_two_saves_is_refused(tmp_path):
    """A save over an earlier one, killed after metadata.json and the weights but before config.json,
    left a folder that built the earlier model and re-initialised its head; now it is refused."""
    save_folder(zoo.create("cnn"), tmp_path / "m")
    save_folder(zoo.create("cnn", num_classes=3), tmp_path / "n", metadata={"label_names": ["a", "b", "c"]})
    for name in ("metadata.json", "model.safetensors"):
        shutil.copy(tmp_path / "n" / name, tmp_path / "m" / name)
    with pytest.raises(IntegrityError, match="mixes two saves"):
        zoo.load(tmp_path / "m")


def test_weights_of_another_head_need_num_classes(tmp_path):
    """Weights given by path whose head has another size are refused, not loaded with a random
    head; asking for their num_classes loads them."""
    from zoo.weights import WeightsMismatchError

    three = zoo.create("cnn", num_classes=3)
    save_folder(three, tmp_path / "n", metadata={"label_names": ["a", "b", "c"]})
    with pytest.raises(WeightsMismatchError, match="Shape mismatch for 'predictions/kernel'"):
        zoo.load("cnn", weights=tmp_path / "n")
    loaded = zoo.load("cnn", weights=tmp_path / "n", num_classes=3)
    np.testing.assert_array_equal(predict(loaded, sample_batch(three)), predict(three, sample_batch(three)))
    assert loaded.zoo_metadata["label_names"] == ["a", "b", "c"]

"""zoo.export's errors keep their class: under JAX and torch ``export_model`` runs the export in a
TensorFlow subprocess, and what it refuses there comes back as the error the caller would have got
in process. Not marked `pipeline` (tests/test_export.py is), so that every suite runs it: in process
under TensorFlow, through the subprocess under JAX and PyTorch.
"""

import importlib.util

import pytest

from zoo.api import create
from zoo.export import export_model
from zoo.weights import WeightsMismatchError, save_weights


def test_weights_of_another_model_are_refused_with_zoos_own_error(tmp_path):
    for module in ("tensorflow", "tf2onnx"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f'{module} missing: pip install "keras-zoo[export]"')
    save_weights(create("resnet18"), tmp_path / "resnet18.safetensors")
    with pytest.raises(WeightsMismatchError, match="conv1/kernel"):
        export_model("cnn", "onnx", tmp_path / "m.onnx", weights=tmp_path / "resnet18.safetensors")
    assert not (tmp_path / "m.onnx").exists()


def test_a_keras_file_is_refused_with_the_way_to_export_it(tmp_path):
    for module in ("tensorflow", "tf2onnx"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f'{module} missing: pip install "keras-zoo[export]"')
    create("cnn").save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match=r"is a \.keras file.*zoo\.format\.save_folder.*Received: handle="):
        export_model(tmp_path / "m.keras", "onnx", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()

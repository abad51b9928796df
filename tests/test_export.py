"""zoo.export (issue 13, item 5): ONNX, LiteRT and SavedModel files checked against Keras, with a
sidecar JSON, no overwriting without ``overwrite=True`` and clear errors.

Exports run in-process under the TensorFlow backend; under JAX and torch ``export_model`` runs
them in a TensorFlow subprocess. The module is marked `pipeline`: CI runs it in the TensorFlow
suite, where the subprocess path is taken by a JAX child process
(``test_the_file_does_not_depend_on_the_callers_backend``);
``KERAS_BACKEND=torch python -m pytest -m pipeline tests/test_export.py`` runs the whole module
through it. ``tests/test_export_errors.py`` (every suite) checks that its errors keep their class.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
import warnings

import keras
import numpy as np
import pytest
from conftest import ROOT, run_python
from conftest_hub import hub_env, local_hub  # noqa: F401

#: The JAX and PyTorch suites check the model layer; zoo's pipeline above it runs in the TensorFlow
#: suite (pyproject.toml's `pipeline` marker).
pytestmark = pytest.mark.pipeline

from zoo import export_check, hub
from zoo.api import create, load
from zoo.data import LABEL_NAMES, find_data_dir
from zoo.export import (
    DEFAULT_TOLERANCE,
    FORMATS,
    ExportMismatchError,
    MissingExportPackageError,
    export_model,
    sidecar_path,
)
from zoo.format import read_folder, save_folder
from zoo.registry import get_spec

ON_TF = keras.backend.backend() == "tensorflow"
in_process = pytest.mark.skipif(not ON_TF, reason="runs in-process under TensorFlow; the TensorFlow suite runs it")
NAMES = {"onnx": "cnn.onnx", "litert": "cnn.tflite", "saved_model": "cnn_saved_model"}
NUM_IMAGES = 8


def _need_export_packages() -> None:
    for module in ("tensorflow", "tf2onnx", "onnxruntime", "ai_edge_litert"):
        pytest.importorskip(module, reason=f'{module} missing: pip install "keras-zoo[export]"')


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The released cnn exported once in each format (TensorFlow suite only)."""
    if not ON_TF:
        pytest.skip("exports run in-process under TensorFlow; the TensorFlow suite runs these")
    _need_export_packages()
    folder = tmp_path_factory.mktemp("export")
    return {fmt: export_model("cnn", fmt, folder / NAMES[fmt], num_check_images=NUM_IMAGES) for fmt in FORMATS}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_each_format_runs_and_matches_keras(exported, fmt):
    result = exported[fmt]
    assert result.path.exists() and result.format == fmt
    assert 0 <= result.max_abs_diff <= DEFAULT_TOLERANCE
    assert result.images == f"Fashion-MNIST test[:{NUM_IMAGES}]"
    # Run the file again here, independently of the check inside export_model.
    model = load("cnn")
    x, _ = export_check.check_images(model, NUM_IMAGES)
    want = model.predict(x, verbose=0)
    (got,) = export_check.RUNNERS[fmt](str(result.path), x).values()
    assert np.abs(got - want).max() <= DEFAULT_TOLERANCE
    assert (got.argmax(-1) == want.argmax(-1)).all()
    assert _leftovers(result.path.parent) == []


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_sidecar_records_labels_preprocessing_specs_and_the_release_sha256(exported, fmt):
    result = exported[fmt]
    assert result.sidecar == sidecar_path(result.path) == result.path.with_name(result.path.name + ".json")
    data = json.loads(result.sidecar.read_text())
    weight = get_spec("cnn").weight("fmnist")
    released = {f.name: f.sha256 for f in weight.release.files}
    assert data["source"]["weights_sha256"] == {"model.safetensors": released["model.safetensors"]}
    assert data["source"]["handle"] == "cnn" and data["source"]["tag"] == "fmnist"
    assert data["label_names"] == list(LABEL_NAMES)
    assert data["preprocessing"] == json.loads(json.dumps(dict(weight.preprocessing)))
    assert data["inputs"] == [{"name": "image", "shape": [None, 28, 28, 1], "dtype": "float32"}]
    assert [(o["name"], o["shape"]) for o in data["outputs"]] == [("probabilities", [None, 10])]
    assert data["export_format"] == fmt and data["file"] == result.path.name
    assert data["check"]["max_abs_diff"] == result.max_abs_diff
    assert data["check"]["num_images"] == NUM_IMAGES and data["check"]["tolerance"] == DEFAULT_TOLERANCE
    assert data["versions"]["keras"] == keras.__version__


def test_unknown_format_names_what_was_received(tmp_path):
    with pytest.raises(ValueError, match=r"Accepted: \['litert', 'onnx', 'saved_model'\]\. Received: format='xyz'"):
        export_model("cnn", "xyz", tmp_path / "m.xyz")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_refused_before_anything_is_loaded(tmp_path):
    with pytest.raises(ValueError, match=r"ends in '\.tflite'\. Received: path="):
        export_model("cnn", "litert", tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="is a folder; name the file"):
        export_model("cnn", "onnx", tmp_path)
    with pytest.raises(ValueError, match="tolerance"):
        export_model("cnn", "onnx", tmp_path / "m.onnx", tolerance=-1)
    (tmp_path / "keep" / "notes.txt").parent.mkdir()
    (tmp_path / "keep" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no SavedModel; it is never replaced"):
        export_model("cnn", "saved_model", tmp_path / "keep", overwrite=True)
    assert (tmp_path / "keep" / "notes.txt").read_text() == "mine"


def test_a_missing_export_package_is_named_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    assert importlib.util.find_spec("onnxruntime") is None
    with pytest.raises(MissingExportPackageError, match=r"'onnxruntime'.*pip install \"keras-zoo\[export\]\"") as info:
        export_model("cnn", "onnx", tmp_path / "m.onnx")
    assert isinstance(info.value, ImportError)
    assert list(tmp_path.iterdir()) == []


def test_existing_files_are_refused_without_overwrite(tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"someone else's")
    with pytest.raises(FileExistsError, match=r"m\.onnx' exists; pass overwrite=True \(--overwrite\)"):
        export_model("cnn", "onnx", target)
    assert target.read_bytes() == b"someone else's"
    target.unlink()
    sidecar_path(target).write_text("{}")
    with pytest.raises(FileExistsError, match=r"m\.onnx\.json' exists"):
        export_model("cnn", "onnx", target)
    assert sidecar_path(target).read_text() == "{}" and not target.exists()


@pytest.mark.parametrize("fmt", ["litert", "saved_model"])
def test_overwrite_refused_then_allowed(exported, tmp_path, fmt):
    target = tmp_path / NAMES[fmt]
    copy = shutil.copytree if fmt == "saved_model" else shutil.copy2
    copy(exported[fmt].path, target)
    shutil.copy2(exported[fmt].sidecar, sidecar_path(target))
    before = {p.relative_to(tmp_path): p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_model("cnn", fmt, target, num_check_images=2)
    assert {p.relative_to(tmp_path): p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before
    result = export_model("cnn", fmt, target, num_check_images=2, overwrite=True)
    assert json.loads(result.sidecar.read_text())["check"]["num_images"] == 2
    assert {p.relative_to(tmp_path) for p in tmp_path.rglob("*")} == set(before) and _leftovers(tmp_path) == []


@in_process
def test_an_export_that_differs_from_keras_is_refused_and_removed(tmp_path, monkeypatch):
    _need_export_packages()
    run_onnx = export_check.RUNNERS["onnx"]

    def perturbed(path, x):  # a broken export: every output off by 0.01
        return {name: value + 0.01 for name, value in run_onnx(path, x).items()}

    monkeypatch.setitem(export_check.RUNNERS, "onnx", perturbed)
    with pytest.raises(ExportMismatchError, match=r"differs from Keras by 0\.01 .*above the tolerance 0\.001"):
        export_model("cnn", "onnx", tmp_path / "new" / "m.onnx", num_check_images=2)
    assert list(tmp_path.iterdir()) == []  # neither the file nor the folder made for it


def test_tolerance_zero_refuses_exactly_a_nonzero_difference(tmp_path):
    """Run under torch (through the subprocess), the refusal comes back as the same error."""
    _need_export_packages()
    try:
        result = export_model("cnn", "onnx", tmp_path / "m.onnx", tolerance=0.0, num_check_images=4)
    except ExportMismatchError as error:
        assert "above the tolerance 0." in str(error) and "probabilities: " in str(error)
        assert list(tmp_path.iterdir()) == []
        worst = float(re.search(r"differs from Keras by ([0-9.e+-]+)", str(error)).group(1))
        assert worst > 0  # refused for a difference that exists
        if ON_TF:  # ... and passes a tolerance just above that difference (the check is `<=`, not `<`); once
            result = export_model("cnn", "onnx", tmp_path / "m.onnx", tolerance=worst * 1.01, num_check_images=4)
            assert 0 < result.max_abs_diff <= worst * 1.01
    else:  # onnxruntime matched Keras bit for bit: nothing to refuse
        assert result.max_abs_diff == 0.0


def test_the_file_does_not_depend_on_the_callers_backend(tmp_path):
    """LiteRT bytes are the same from this backend and another (one of them through the subprocess)."""
    _need_export_packages()
    here = export_model("cnn", "litert", tmp_path / "here.tflite", num_check_images=2)
    other = "jax" if ON_TF else "tensorflow"
    run_python(
        f"from zoo.export import export_model; export_model('cnn', 'litert', {str(tmp_path / 'other.tflite')!r}, "
        "num_check_images=2)",
        env={"KERAS_BACKEND": other},
    )
    assert here.path.read_bytes() == (tmp_path / "other.tflite").read_bytes()
    ours, theirs = (json.loads(p.read_text()) for p in (here.sidecar, tmp_path / "other.tflite.json"))
    assert {**ours, "file": None} == {**theirs, "file": None}


@in_process
@pytest.mark.slow
def test_the_localizer_is_compared_output_by_output(tmp_path):
    """A folder handle (metadata.json) of a small untrained localizer: ``class`` and ``box`` each
    checked. SavedModel: the quickest of the three here (17 s against 35 s for ONNX)."""
    _need_export_packages()
    folder = save_folder(
        create("xception_localizer", input_shape=(71, 71, 1)), tmp_path / "loc",
        metadata={"label_names": ["a"] * 10, "preprocessing": {"resize": "fit_and_pad"}},
    )
    result = export_model(folder, "saved_model", tmp_path / "loc_saved_model", num_check_images=4)
    assert set(result.diffs) == {"class", "box"} and result.max_abs_diff <= DEFAULT_TOLERANCE
    assert "71x71 localization canvases" in result.images
    data = json.loads(result.sidecar.read_text())
    assert {o["name"]: o["exported_name"] for o in data["outputs"]} == {"class": "class", "box": "box"}
    assert data["label_names"] == ["a"] * 10 and data["preprocessing"] == {"resize": "fit_and_pad"}
    recorded = {r.name: r.sha256 for r in read_folder(folder).records}
    assert data["source"]["weights_sha256"] == recorded


@in_process
def test_a_hub_handle_is_exported_with_its_metadata_and_hashes(local_hub, monkeypatch, tmp_path):
    _need_export_packages()
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    labels = [f"class {i}" for i in range(10)]
    sha = hub.push(create("cnn"), "tester/cnn", metadata={"label_names": labels, "preprocessing": {"trim": False}})
    handle = f"hf://tester/cnn@{sha}"
    result = export_model(handle, "litert", tmp_path / "hub.tflite", num_check_images=2)
    data = json.loads(result.sidecar.read_text())
    assert data["source"]["handle"] == handle and result.max_abs_diff <= DEFAULT_TOLERANCE
    assert data["label_names"] == labels and data["preprocessing"] == {"trim": False, "resize": "fit_and_pad"}
    recorded = {r.name: r.sha256 for r in read_folder(hub.pull("tester/cnn", revision=sha)).records}
    assert data["source"]["weights_sha256"] == recorded and "model.safetensors" in recorded


def test_the_sidecar_describes_the_loaded_weights_whatever_the_handle(tmp_path, monkeypatch):
    """Label names and preprocessing come from what zoo.load resolved, not from the handle read
    again: a folder named like a model in the current folder, a '~' path, a release folder
    (whose record predates polarity and trim: the sidecar gives them, as predict applies them)."""
    from zoo.export import _describe_source, _load
    from zoo.preprocess import preprocessing_of

    released = load("cnn").zoo_metadata
    save_folder(create("cnn", num_classes=3), tmp_path / "cnn", metadata={"label_names": ["cat", "dog", "fox"]})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for handle, labels in (("cnn", list(LABEL_NAMES)), ("~/cnn", ["cat", "dog", "fox"]),
                           (str(ROOT / "weights" / "cnn.fmnist"), list(LABEL_NAMES))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # 'cnn' is also a folder here: the registered model
            model, resolved = _load(handle, "default")
        data = _describe_source(handle, model, resolved)
        assert data["label_names"] == labels and len(labels) == model.output_shape[-1], handle
        expected = preprocessing_of(released) if len(labels) == 10 else {"resize": "fit_and_pad"}
        assert data["preprocessing"] == expected, handle


def test_compare_pairs_outputs_by_name_else_by_position_and_flags_bad_values():
    ref = {"class": np.zeros((2, 3)), "box": np.ones((2, 4))}
    by_name = export_check.compare(ref, {"box": np.ones((2, 4)), "class": np.full((2, 3), 0.5)})
    assert (by_name["class"].max_abs_diff, by_name["box"].max_abs_diff) == (0.5, 0.0)
    by_position = export_check.compare(ref, {"output_1": np.ones((2, 4)), "output_0": np.zeros((2, 3))})
    assert by_position["class"].artefact_name == "output_0" and by_position["box"].max_abs_diff == 0.0
    assert export_check.compare({"p": np.zeros(2)}, {"x": np.array([0.0, np.nan])})["p"].max_abs_diff == np.inf
    assert export_check.compare({"p": np.zeros(2)}, {"x": np.zeros(3)})["p"].max_abs_diff == np.inf
    with pytest.raises(ValueError, match="2 output"):
        export_check.compare({"p": np.zeros(2)}, {"a": np.zeros(2), "b": np.zeros(2)})


def test_check_images_fall_back_to_seeded_random_pixels_when_the_data_does_not_fit():
    model = create("cnn", input_shape=(32, 40, 3))  # no square input: Fashion-MNIST is not resized for it
    x, what = export_check.check_images(model, 3)
    assert x.shape == (3, 32, 40, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255
    assert what == "uniform random pixels in [0, 255] (seed 0)"
    again, _ = export_check.check_images(model, 3)
    assert np.array_equal(x, again)
    if find_data_dir() is not None:  # a square input of another size and RGB: the test images, fitted to it
        x, what = export_check.check_images(create("cnn", input_shape=(32, 32, 3)), 3)
        assert x.shape == (3, 32, 32, 3) and what == "Fashion-MNIST test[:3] resized to 32x32, gray repeated as RGB"


def test_the_documented_formats_are_the_ones_tested_and_sidecars_follow_the_file_name():
    # The format tests above are parametrized by FORMATS: a format dropped from it would drop its tests.
    assert sorted(FORMATS) == ["litert", "onnx", "saved_model"]  # README's `zoo export` formats
    assert os.path.basename(sidecar_path("a/b.tflite")) == "b.tflite.json"

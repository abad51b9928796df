"""Run an exported model file and measure how far its outputs are from Keras'.

:func:`check_images` picks the images (Fashion-MNIST test images, or canvases for the
localizer, shaped by the model's task; deterministic random pixels when the data is missing or
does not fit the input), :data:`RUNNERS` run an artefact with the runtime that serves it
(``onnxruntime``, ``ai_edge_litert``, ``tf.saved_model``) and :func:`compare` pairs the outputs
with Keras' by name (else by position) and measures the largest absolute difference of each.

Example:
    >>> reference = {"class": np.zeros((2, 3), np.float32)}
    >>> compare(reference, {"class": np.full((2, 3), 0.25, np.float32)})["class"].max_abs_diff
    0.25
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import keras
import numpy as np

from zoo.evaluation import evaluation_data
from zoo.tasks import LOCALIZATION_TEST_SEED, task_of

__all__ = [
    "PACKAGES",
    "RUNNERS",
    "MissingExportPackageError",
    "OutputDiff",
    "check_images",
    "compare",
    "import_runtime",
    "missing_packages",
    "output_tensors",
    "reference_outputs",
]

#: The modules each format needs (module name -> the PyPI name to install).
PACKAGES: dict[str, dict[str, str]] = {
    "saved_model": {"tensorflow": "tensorflow"},
    "onnx": {"tensorflow": "tensorflow", "tf2onnx": "tf2onnx", "onnxruntime": "onnxruntime"},
    "litert": {"tensorflow": "tensorflow", "ai_edge_litert": "ai-edge-litert"},
}
INSTALL_HINT = 'pip install "keras-zoo[export]"'
RANDOM_SEED = 0


class MissingExportPackageError(ImportError):
    """A package that an export format needs is not installed."""


def missing_packages(format: str) -> list[str]:
    """The PyPI names of the packages ``format`` needs that are not installed.

    Example:
        >>> missing_packages("saved_model")
        []
    """
    return [pypi for module, pypi in PACKAGES[format].items() if importlib.util.find_spec(module) is None]


def import_runtime(module: str, format: str) -> Any:
    """Import ``module`` for ``format``, or raise :class:`MissingExportPackageError` saying what to install.

    Example:
        >>> import_runtime("numpy", "onnx").__name__
        'numpy'
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        pypi = PACKAGES[format].get(module.split(".")[0], module)
        raise MissingExportPackageError(
            f"Exporting to {format!r} needs the package {pypi!r}, which could not be imported "
            f"({error}). Install it with: {INSTALL_HINT}",
            name=module,
        ) from error


def check_images(model: keras.Model, count: int) -> tuple[np.ndarray, str]:
    """``count`` float32 images in [0, 255] shaped for ``model`` and a description of them.

    Real test data when it fits: Fashion-MNIST test images, or for a localizer the canvases its
    task builds from them (``zoo.tasks``); otherwise uniform random pixels with a fixed seed
    (a missing data set, another input shape).

    Example:
        >>> x, what = check_images(zoo.create("cnn"), 4)  # doctest: +SKIP
        >>> x.shape, what  # doctest: +SKIP
        ((4, 28, 28, 1), 'Fashion-MNIST test[:4]')
    """
    shape = tuple(model.inputs[0].shape[1:])
    if None not in shape:
        try:
            x, _ = evaluation_data(model, limit=count)
        except (FileNotFoundError, ValueError):
            x = None
        if x is not None and tuple(x.shape[1:]) == shape:
            what = f"Fashion-MNIST test[:{count}]"
            if task_of(model).name == "localization":
                what += f" as {shape[0]}x{shape[1]} localization canvases (seed {LOCALIZATION_TEST_SEED})"
            elif shape[:2] != (28, 28):
                what += f" resized to {shape[0]}x{shape[1]}"
            if len(shape) == 3 and shape[2] == 3:
                what += ", gray repeated as RGB"
            return np.asarray(x, np.float32), what
    concrete = tuple(32 if dim is None else int(dim) for dim in shape)
    x = np.random.default_rng(RANDOM_SEED).uniform(0, 255, size=(count, *concrete)).astype(np.float32)
    return x, f"uniform random pixels in [0, 255] (seed {RANDOM_SEED})"


def output_tensors(model: keras.Model) -> dict[str, Any]:
    """The model's symbolic outputs by name: dict keys, else the output layers' names.

    Example:
        >>> list(output_tensors(zoo.create("cnn")))  # doctest: +SKIP
        ['probabilities']
    """
    if isinstance(model, keras.Sequential):  # one output, its last layer's
        return {model.layers[-1].name: model.outputs[0]}
    output = model.output
    if isinstance(output, Mapping):
        return dict(output)
    outputs = list(output) if isinstance(output, (list, tuple)) else [output]
    return dict(zip(model.output_names, outputs))


def reference_outputs(model: keras.Model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Keras' inference outputs of ``x``, by output name (``probabilities``; ``class`` and ``box``).

    Example:
        >>> import zoo
        >>> {k: v.shape for k, v in reference_outputs(zoo.load("cnn"), np.zeros((2, 28, 28, 1), "float32")).items()}
        {'probabilities': (2, 10)}
    """
    out = model.predict(x, batch_size=len(x), verbose=0)
    if isinstance(out, Mapping):
        return {str(name): np.asarray(value) for name, value in out.items()}
    values = list(out) if isinstance(out, (list, tuple)) else [out]
    return {name: np.asarray(value) for name, value in zip(output_tensors(model), values)}


def run_onnx(path: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs of an ONNX file under onnxruntime's CPU provider, by the file's output names.

    Example:
        >>> run_onnx("exports/cnn.onnx", x)["output_0"].shape                  # doctest: +SKIP
        (4, 10)
    """
    ort = import_runtime("onnxruntime", "onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))


def run_litert(path: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs of a ``.tflite`` file under ``ai_edge_litert``'s interpreter (its signature runner).

    Example:
        >>> run_litert("exports/cnn.tflite", x)["output_0"].shape               # doctest: +SKIP
        (4, 10)
    """
    interpreter_module = import_runtime("ai_edge_litert.interpreter", "litert")
    interpreter = interpreter_module.Interpreter(model_path=path)
    signatures = interpreter.get_signature_list()
    key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
    runner = interpreter.get_signature_runner(key)
    (input_name,) = signatures[key]["inputs"]
    return {name: np.asarray(value) for name, value in runner(**{input_name: x}).items()}


def run_saved_model(path: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs of a SavedModel's ``serving_default`` signature, loaded by ``tf.saved_model.load``.

    Example:
        >>> run_saved_model("exports/cnn_savedmodel", x)["output_0"].shape      # doctest: +SKIP
        (4, 10)
    """
    tf = import_runtime("tensorflow", "saved_model")
    function = tf.saved_model.load(path).signatures["serving_default"]
    (input_name,) = function.structured_input_signature[1]
    return {name: value.numpy() for name, value in function(**{input_name: tf.constant(x)}).items()}


#: How each format's artefact is run: ``runner(path, images) -> {output name: array}``.
RUNNERS: dict[str, Callable[[str, np.ndarray], dict[str, np.ndarray]]] = {
    "onnx": run_onnx,
    "litert": run_litert,
    "saved_model": run_saved_model,
}
RUNTIMES = {"onnx": "onnxruntime", "litert": "ai-edge-litert", "saved_model": "tensorflow"}


@dataclass(frozen=True)
class OutputDiff:
    """One Keras output against the artefact's: the artefact's name for it and the largest |difference|."""

    artefact_name: str
    max_abs_diff: float


def _order_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _pair(reference: Mapping[str, np.ndarray], produced: Mapping[str, np.ndarray]) -> dict[str, str]:
    """Keras output name -> artefact output name: by name when all match, else by position."""
    if set(reference) <= set(produced):
        return {name: name for name in reference}
    if len(reference) != len(produced):
        raise ValueError(
            f"The exported model has {len(produced)} output(s) {sorted(produced)}, Keras "
            f"{len(reference)} {sorted(reference)}."
        )
    names = list(produced)
    if all(re.fullmatch(r"output_\d+", name) for name in names):  # SavedModel/LiteRT signatures
        names.sort(key=_order_key)
    return dict(zip(reference, names))


def compare(reference: Mapping[str, np.ndarray], produced: Mapping[str, np.ndarray]) -> dict[str, OutputDiff]:
    """The largest absolute difference of each Keras output from the artefact's output.

    A shape mismatch or a NaN/inf anywhere counts as an infinite difference.

    Example:
        >>> compare({"p": np.ones(2)}, {"output_0": np.array([1.0, 1.5])})["p"]
        OutputDiff(artefact_name='output_0', max_abs_diff=0.5)
    """
    diffs = {}
    for name, artefact_name in _pair(reference, produced).items():
        want = np.asarray(reference[name], np.float64)
        got = np.asarray(produced[artefact_name], np.float64)
        if want.shape != got.shape:
            diff = float("inf")
        elif want.size == 0:
            diff = 0.0
        else:
            delta = np.abs(want - got)
            diff = float(delta.max()) if np.isfinite(delta).all() else float("inf")
        diffs[name] = OutputDiff(artefact_name, diff)
    return diffs

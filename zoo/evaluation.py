"""Evaluation of zoo models on Fashion-MNIST (classifiers) and its localization canvases.

Classifiers report ``accuracy``. The localizer reports ``accuracy`` (= ``class_accuracy``),
``class_accuracy``, ``box_iou`` (mean IoU of predicted vs true boxes) and ``iou_50`` (share
of boxes with IoU >= 0.5). The localization test canvases are built from the test split with
the fixed seed :data:`LOCALIZATION_TEST_SEED`, so every evaluation sees the same canvases.

Example:
    >>> metrics = evaluate_name("runs/cnn-0", limit=1000)       # doctest: +SKIP
    >>> sorted(metrics)                                              # doctest: +SKIP
    ['accuracy']
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import keras
import numpy as np

from zoo.api import load

__all__ = [
    "LOCALIZATION_TEST_SEED",
    "confusion_matrix",
    "evaluate",
    "evaluate_name",
    "evaluation_data",
    "is_localizer",
    "metrics_from_predictions",
    "predict",
]

#: Seed of the localization canvases used for evaluation (train canvases use the run's seed).
LOCALIZATION_TEST_SEED = 1
DEFAULT_BATCH_SIZE = 256
_DIGITS = 6


def is_localizer(model: keras.Model) -> bool:
    """Whether ``model`` has the localizer's ``{"class", "box"}`` outputs.

    Example:
        >>> is_localizer(zoo.create("cnn"))                          # doctest: +SKIP
        False
    """
    output = model.output if len(model.outputs) > 1 else None
    return isinstance(output, dict) and "box" in output


def predict(model: keras.Model, x: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
    """Inference-mode predictions as numpy: an array, or a dict for the localizer.

    Example:
        >>> predict(model, x_test[:8]).shape                         # doctest: +SKIP
        (8, 10)
    """
    out = model.predict(x, batch_size=batch_size, verbose=0)
    return keras.tree.map_structure(np.asarray, out)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Counts ``[true, predicted]`` (int64) of integer labels.

    Example:
        >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0])).tolist()
        [[1, 0], [1, 1]]
    """
    y_true = np.asarray(y_true, np.int64).ravel()
    y_pred = np.asarray(y_pred, np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"Labels and predictions differ in length: {y_true.shape} vs {y_pred.shape}")
    n = num_classes or int(max(y_true.max(initial=0), y_pred.max(initial=0)) + 1)
    return np.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n)


def _labels(y: Any) -> np.ndarray:
    return np.asarray(y["class"] if isinstance(y, Mapping) else y).astype(np.int64).ravel()


def metrics_from_predictions(y: Any, outputs: Any) -> dict[str, float]:
    """Metrics of predictions ``outputs`` (from :func:`predict`) against targets ``y``.

    ``y`` holds integer labels, or ``{"class": labels, "box": boxes}`` for the localizer.

    Example:
        >>> metrics_from_predictions(np.array([1, 0]), np.array([[0.2, 0.8], [0.6, 0.4]]))
        {'accuracy': 1.0}
    """
    from zoo.metrics import box_iou

    labels = _labels(y)
    probs = outputs["class"] if isinstance(outputs, Mapping) else outputs
    accuracy = float(np.mean(np.argmax(probs, axis=-1) == labels))
    if not isinstance(outputs, Mapping):
        return {"accuracy": round(accuracy, _DIGITS)}
    iou = np.asarray(keras.ops.convert_to_numpy(box_iou(np.asarray(y["box"], np.float32), outputs["box"])))
    return {
        "accuracy": round(accuracy, _DIGITS),
        "class_accuracy": round(accuracy, _DIGITS),
        "box_iou": round(float(np.mean(iou, dtype=np.float64)), _DIGITS),
        "iou_50": round(float(np.mean(iou >= 0.5)), _DIGITS),
    }


def evaluate(model: keras.Model, x: np.ndarray, y: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, float]:
    """Predict ``x`` and score it against ``y`` (labels, or ``{"class", "box"}``).

    Example:
        >>> x, y = load_fashion_mnist("test", limit=256)             # doctest: +SKIP
        >>> evaluate(zoo.load("cnn"), x, y)                          # doctest: +SKIP
        {'accuracy': 0.93}
    """
    return metrics_from_predictions(y, predict(model, x, batch_size=batch_size))


def evaluation_data(
    model: keras.Model,
    split: str = "test",
    limit: int | None = None,
    data_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, Any]:
    """Fashion-MNIST ``split`` shaped for ``model``: images + labels, or canvases + targets.

    Example:
        >>> x, y = evaluation_data(zoo.create("xception_localizer"), limit=8)  # doctest: +SKIP
        >>> x.shape, sorted(y)                                                  # doctest: +SKIP
        ((8, 96, 96, 1), ['box', 'class'])
    """
    from zoo.data import load_fashion_mnist, make_localization_set

    x, y = load_fashion_mnist(split, data_dir=data_dir, limit=limit)
    if not is_localizer(model):
        return x, y
    size = int(model.inputs[0].shape[1])
    canvases, labels, boxes = make_localization_set(x, y, canvas_size=size, seed=LOCALIZATION_TEST_SEED)
    return canvases, {"class": labels, "box": boxes}


def evaluate_name(
    name_or_path_or_hf: str | os.PathLike,
    split: str = "test",
    limit: int | None = None,
    data_dir: str | os.PathLike | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, float]:
    """Load a model with :func:`zoo.load` (name, run/release folder or ``hf://`` handle), evaluate.

    Example:
        >>> evaluate_name("runs/cnn-0", limit=256)               # doctest: +SKIP
        {'accuracy': 0.9258}
    """
    model = load(name_or_path_or_hf)
    x, y = evaluation_data(model, split=split, limit=limit, data_dir=data_dir)
    return evaluate(model, x, y, batch_size=batch_size)

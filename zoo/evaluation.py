"""Evaluation of zoo models on Fashion-MNIST: the test data and metrics of the model's task.

Classifiers report ``accuracy``; the localizer ``accuracy`` (= ``class_accuracy``), ``box_iou``
and ``iou_50`` on canvases built from the test split with a fixed seed (``zoo.tasks``).

Example:
    >>> metrics = evaluate_name("runs/cnn-0", limit=1000)       # doctest: +SKIP
    >>> sorted(metrics)                                              # doctest: +SKIP
    ['accuracy']
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np

from zoo.api import load
from zoo.data import load_fashion_mnist
from zoo.metrics import confusion_matrix
from zoo.tasks import LOCALIZATION_TEST_SEED, task_of

__all__ = [
    "LOCALIZATION_TEST_SEED",
    "confusion_matrix",
    "evaluate",
    "evaluate_name",
    "evaluation_data",
    "predict",
]

DEFAULT_BATCH_SIZE = 256


def predict(model: keras.Model, x: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
    """Inference-mode predictions as numpy: an array, or a dict for the localizer.

    Example:
        >>> predict(model, x_test[:8]).shape                         # doctest: +SKIP
        (8, 10)
    """
    out = model.predict(x, batch_size=batch_size, verbose=0)
    return keras.tree.map_structure(np.asarray, out)


def evaluate(model: keras.Model, x: np.ndarray, y: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, float]:
    """Predict ``x`` and score it against ``y`` with the metrics of ``model``'s task.

    Example:
        >>> x, y = load_fashion_mnist("test", limit=256)             # doctest: +SKIP
        >>> evaluate(zoo.load("cnn"), x, y)                          # doctest: +SKIP
        {'accuracy': 0.93}
    """
    return task_of(model).metrics_from_predictions(y, predict(model, x, batch_size=batch_size))


def evaluation_data(
    model: keras.Model,
    split: str = "test",
    limit: int | None = None,
    data_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, Any]:
    """Fashion-MNIST ``split`` shaped for ``model``'s task: images + labels, or canvases + targets.

    Example:
        >>> x, y = evaluation_data(zoo.create("xception_localizer"), limit=8)  # doctest: +SKIP
        >>> x.shape, sorted(y)                                                  # doctest: +SKIP
        ((8, 96, 96, 1), ['box', 'class'])
    """
    x, y = load_fashion_mnist(split, data_dir=data_dir, limit=limit)
    return task_of(model).evaluation_data(x, y, tuple(model.inputs[0].shape[1:]))


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

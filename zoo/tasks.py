"""Tasks: what a model's outputs mean, and everything that follows from that.

A :class:`Task` owns its losses and metrics (one ``compile`` path, ``optimizer="auto"`` like
keras-hub's ``ImageClassifier.compile``), its evaluation data, the metrics computed from
predictions, the figures of a finished run and the Hub pipeline tag of its model cards.
Every registered architecture names its task (``register_model(task=...)``) and every recipe
states one; nothing guesses a task from a model's outputs or name.

* ``classification``: softmax over classes; ``accuracy``; a confusion matrix.
* ``localization``: ``{"class": softmax, "box": (cx, cy, w, h)}``; cross-entropy + box MSE
  weighted :data:`LocalizationTask.loss_weights` (the tutorial's 0.8/0.2 unless a recipe says
  otherwise); ``accuracy``/``class_accuracy``, ``box_iou`` (mean IoU) and ``iou_50`` (share of
  boxes with IoU >= 0.5) on canvases built from the test split with a fixed seed.

Example:
    >>> task = get_task("classification")
    >>> task.pipeline_tag, task.metrics_from_predictions(np.array([1]), np.array([[0.3, 0.7]]))
    ('image-classification', {'accuracy': 1.0})
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import keras
import numpy as np

from zoo import plots
from zoo.data import make_localization_set
from zoo.data.resize import resize_batch
from zoo.logits import outputs_are_logits
from zoo.metrics import BoxIoUAbove, MeanBoxIoU, box_iou, confusion_matrix
from zoo.recipe import PIPELINE_TAGS, TASKS
from zoo.registry import get_spec

__all__ = ["LOCALIZATION_TEST_SEED", "ClassificationTask", "LocalizationTask", "Task", "get_task", "task_of"]

#: Seed of the localization canvases used for evaluation (train canvases use the run's seed).
LOCALIZATION_TEST_SEED = 1
_DIGITS = 6


def _class_loss_and_accuracy(label_smoothing: float, from_logits: bool) -> tuple[Any, Any]:
    """Smoothed losses need one-hot targets (``zoo.training.data.make_targets``). ``from_logits``:
    the class output is logits (:func:`zoo.logits.outputs_are_logits`), not probabilities."""
    if label_smoothing > 0:
        return (
            keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing),
            keras.metrics.CategoricalAccuracy(name="accuracy"),
        )
    return (
        keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
    )


def _auto_optimizer(optimizer: Any) -> Any:
    """``"auto"``: the tutorial's SGD with momentum 0.9 at 0.01 (training recipes pass their own)."""
    if isinstance(optimizer, str) and optimizer == "auto":
        return keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    return optimizer


def _accuracy(labels: Any, probs: Any) -> float:
    if isinstance(probs, (dict, list, tuple)):  # np.asarray would argmax over a dict object: a number that means nothing
        raise ValueError(
            "Classification accuracy needs one array of class scores (N, classes). Received: outputs of type "
            f"{type(probs).__name__}" + (f" with keys {sorted(probs)}" if isinstance(probs, dict) else "")
        )
    labels, probs = np.asarray(labels), np.asarray(probs)
    if probs.ndim != 2 or labels.shape not in ((len(probs),), (len(probs), 1)):
        raise ValueError(
            "Classification accuracy compares one integer label per image with that image's class scores: labels of "
            "shape (N,) and scores of shape (N, classes). Received: labels of shape "
            f"{labels.shape}, scores of shape {probs.shape}"
        )
    return round(float(np.mean(np.argmax(probs, axis=-1) == labels.astype(np.int64).ravel())), _DIGITS)


def _image_input(input_shape: Sequence[int | None], task: str) -> tuple[int | None, int | None, int | None]:
    """``(height, width, channels)`` of an image model's input, refusing other inputs; channels
    0 for an input without a channel axis (``keras.Input((28, 28))``, Keras' own tutorial)."""
    shape = tuple(input_shape)
    if len(shape) == 2:
        shape = (*shape, 0)
    if len(shape) != 3 or shape[2] not in (0, 1, 3, None):
        raise ValueError(
            f"A {task} model is evaluated on Fashion-MNIST pictures: its input must be (height, width), or "
            f"(height, width, 1 or 3). Received: input_shape={tuple(input_shape)}"
        )
    if (shape[0] is None) != (shape[1] is None):
        raise ValueError(f"An input of fixed height and free width (or the reverse) cannot be fed Fashion-MNIST "
                         f"images. Received: input_shape={tuple(input_shape)}")
    return shape  # type: ignore[return-value]


def _as_channels(x: np.ndarray, channels: int | None) -> np.ndarray:
    """Gray images ``(N, H, W, 1)`` as the model's channels (gray repeated as RGB for 3, no
    channel axis for 0)."""
    return np.repeat(x, 3, axis=-1) if channels == 3 else x[..., 0] if channels == 0 else x


@dataclass(frozen=True)
class Task:
    """The behaviour shared by every task; subclasses fill in the task-specific parts."""

    name: str = ""
    #: The training figures :meth:`compile` makes Keras log (each also as ``val_<name>``).
    logged_figures: tuple[str, ...] = ()
    #: Whether :meth:`evaluation_data` of the first n test images is the first n examples of a
    #: larger evaluation (true of plain images; localization canvases are drawn per set).
    nested_evaluation: bool = True

    @property
    def pipeline_tag(self) -> str:
        """The Hugging Face Hub ``pipeline_tag`` of model cards of this task."""
        return PIPELINE_TAGS[self.name]

    def compile(
        self,
        model: keras.Model,
        optimizer: Any = "auto",
        *,
        label_smoothing: float = 0.0,
        loss_weights: Mapping[str, float] | None = None,
    ) -> keras.Model:
        """Compile ``model`` with this task's losses and metrics; returns it.

        The cross-entropy reads the class output as probabilities when a softmax layer makes it,
        else as logits; training compiles :func:`zoo.logits.logits_view` of a model, so that the
        loss is computed from logits on every backend."""
        raise NotImplementedError

    def evaluation_data(self, x: np.ndarray, y: np.ndarray, input_shape: Sequence[int | None]) -> tuple[np.ndarray, Any]:
        """Test images and targets shaped for a model of this task (``input_shape`` = H, W, C)."""
        raise NotImplementedError

    def metrics_from_predictions(self, y: Any, outputs: Any) -> dict[str, float]:
        """The task's metrics of predictions ``outputs`` against targets ``y``."""
        raise NotImplementedError

    def plot_results(
        self, folder: str | os.PathLike, x: np.ndarray, y: Any, outputs: Any, label_names: Sequence[str]
    ) -> list[str]:
        """Write the figures of a finished run into ``folder``; returns their file names."""
        raise NotImplementedError


@dataclass(frozen=True)
class ClassificationTask(Task):
    """Softmax over classes, scored by accuracy.

    Example:
        >>> ClassificationTask().metrics_from_predictions(np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]]))
        {'accuracy': 0.5}
    """

    name: str = "classification"
    logged_figures: tuple[str, ...] = ("loss", "accuracy")

    def compile(self, model, optimizer="auto", *, label_smoothing=0.0, loss_weights=None):
        loss, accuracy = _class_loss_and_accuracy(label_smoothing, outputs_are_logits(model))
        model.compile(optimizer=_auto_optimizer(optimizer), loss=loss, metrics=[accuracy])
        return model

    def evaluation_data(self, x, y, input_shape):
        height, width, channels = _image_input(input_shape, self.name)
        if height is not None and (height, width) != tuple(np.shape(x)[1:3]):
            if height != width:
                raise ValueError(
                    f"Fashion-MNIST images are square: they are resized for a model of a square input only. "
                    f"Received: input_shape={tuple(input_shape)}"
                )
            x = resize_batch(x, height)  # the resampling of progressive-resizing training
        return _as_channels(x, channels), y

    def metrics_from_predictions(self, y, outputs):
        return {"accuracy": _accuracy(y, outputs)}

    def plot_results(self, folder, x, y, outputs, label_names):
        probs = np.asarray(outputs)
        matrix = confusion_matrix(np.asarray(y), np.argmax(probs, axis=-1), num_classes=probs.shape[-1])
        return [plots.plot_confusion_matrix(matrix, label_names, os.path.join(folder, plots.CONFUSION_NAME)).name]


@dataclass(frozen=True)
class LocalizationTask(Task):
    """One item per image: its class (softmax ``class``) and box (``box``: cx, cy, w, h in [0, 1]).

    Example:
        >>> boxes = np.array([[0.5, 0.5, 0.2, 0.2]], np.float32)
        >>> LocalizationTask().metrics_from_predictions(
        ...     {"class": np.array([1]), "box": boxes}, {"class": np.array([[0.3, 0.7]]), "box": boxes})
        {'accuracy': 1.0, 'class_accuracy': 1.0, 'box_iou': 1.0, 'iou_50': 1.0}
    """

    name: str = "localization"
    nested_evaluation: bool = False  # the canvases of test[:n] are not the first n canvases of test[:m]
    logged_figures: tuple[str, ...] = ("loss", "class_loss", "box_loss", "class_accuracy", "box_box_iou", "box_iou_50")
    #: The tutorial's weights of the class and box losses, used unless a recipe gives its own.
    loss_weights: tuple[tuple[str, float], ...] = (("class", 0.8), ("box", 0.2))

    def compile(self, model, optimizer="auto", *, label_smoothing=0.0, loss_weights=None):
        loss, accuracy = _class_loss_and_accuracy(label_smoothing, outputs_are_logits(model, "class"))
        model.compile(
            optimizer=_auto_optimizer(optimizer),
            loss={"class": loss, "box": keras.losses.MeanSquaredError()},
            loss_weights=dict(loss_weights or dict(self.loss_weights)),
            metrics={"class": [accuracy], "box": [MeanBoxIoU(), BoxIoUAbove(0.5)]},
        )
        return model

    def evaluation_data(self, x, y, input_shape):
        height, width, channels = _image_input(input_shape, self.name)
        if height is None or height != width:
            raise ValueError(
                "The localization canvases are square, of the model's fixed input size: a localizer is "
                "evaluated at an input of shape (size, size, 1 or 3) or (size, size). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        canvases, labels, boxes = make_localization_set(x, y, canvas_size=height, seed=LOCALIZATION_TEST_SEED)
        return _as_channels(canvases, channels), {"class": labels, "box": boxes}

    def metrics_from_predictions(self, y, outputs):
        accuracy = _accuracy(y["class"], outputs["class"])
        truth, predicted = np.asarray(y["box"], np.float32), np.asarray(outputs["box"], np.float32)
        if truth.shape != predicted.shape or truth.shape != (len(truth), 4):
            raise ValueError(
                "Box IoU compares one (cx, cy, w, h) box per image with the predicted one: both of shape (N, 4). "
                f"Received: boxes of shape {truth.shape}, predicted boxes of shape {predicted.shape}"
            )
        iou = np.asarray(keras.ops.convert_to_numpy(box_iou(truth, predicted)))
        return {
            "accuracy": accuracy,
            "class_accuracy": accuracy,
            "box_iou": round(float(np.mean(iou, dtype=np.float64)), _DIGITS),
            "iou_50": round(float(np.mean(iou >= 0.5)), _DIGITS),
        }

    def plot_results(self, folder, x, y, outputs, label_names):
        count = min(16, len(x))
        labels = np.asarray(y["class"])
        predicted = np.argmax(outputs["class"], axis=-1)
        path = plots.plot_boxes(
            x[:count], y["box"][:count], outputs["box"][:count], os.path.join(folder, plots.BOXES_NAME),
            true_labels=labels[:count], pred_labels=predicted[:count], label_names=label_names,
        )
        # the class head's confusion matrix, drawn as a classifier's
        return [path.name, *_TASKS["classification"].plot_results(folder, x, labels, outputs["class"], label_names)]


_TASKS: dict[str, Task] = {"classification": ClassificationTask(), "localization": LocalizationTask()}
assert set(_TASKS) == set(TASKS)


def get_task(name: str) -> Task:
    """The :class:`Task` called ``name`` (``"classification"`` or ``"localization"``).

    Example:
        >>> get_task("localization").pipeline_tag
        'object-detection'
    """
    if name not in _TASKS:
        raise ValueError(f"Unknown task. Accepted: {sorted(_TASKS)}. Received: task={name!r}")
    return _TASKS[name]


def task_of(model: keras.Model) -> Task:
    """The task of a model built by the zoo (its registered architecture's); classification
    for any other Keras model with one output. A model without a zoo record and with several
    outputs (a localizer saved as a ``.keras`` file) is refused: its task is not guessed.

    Example:
        >>> task_of(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])).name
        'classification'
    """
    architecture = (getattr(model, "zoo_config", None) or {}).get("architecture")
    if architecture:
        return get_task(get_spec(architecture).task)
    if len(model.outputs) != 1:
        names = list(getattr(model, "output_names", None) or ())
        raise ValueError(
            f"Model {model.name!r} carries no zoo record and has {len(model.outputs)} outputs {names}: zoo "
            "does not guess what they mean. Accepted: a model loaded by zoo.load from a registered name, "
            "a zoo folder (zoo.save_folder) or an hf:// handle, or a Keras model with one class output. "
            f"Received: outputs={names}"
        )
    return _TASKS["classification"]

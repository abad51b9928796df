"""Box metrics for the localizer, written with ``keras.ops`` so they run on every backend.

Boxes are ``(center_x, center_y, width, height)``, normalised to [0, 1].
The tutorial's ``MeanIoU`` is a segmentation metric over class labels; these measure boxes.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops


def box_iou(y_true: Any, y_pred: Any) -> Any:
    """Intersection over union of matching boxes, shape ``(batch,)``.

    Example:
        >>> round(float(box_iou([[0.5, 0.5, 0.2, 0.2]], [[0.5, 0.5, 0.2, 0.2]])[0]), 4)
        1.0
    """
    y_true = ops.convert_to_tensor(y_true, dtype="float32")
    y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    t_min, t_max = y_true[..., :2] - y_true[..., 2:] / 2, y_true[..., :2] + y_true[..., 2:] / 2
    p_size = ops.maximum(y_pred[..., 2:], 0.0)
    p_min, p_max = y_pred[..., :2] - p_size / 2, y_pred[..., :2] + p_size / 2
    overlap = ops.maximum(ops.minimum(t_max, p_max) - ops.maximum(t_min, p_min), 0.0)
    intersection = overlap[..., 0] * overlap[..., 1]
    union = (
        y_true[..., 2] * y_true[..., 3] + p_size[..., 0] * p_size[..., 1] - intersection
    )
    return intersection / ops.maximum(union, 1e-7)


def _iou_at_least(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Any:
    return ops.cast(box_iou(y_true, y_pred) >= threshold, "float32")


@keras.saving.register_keras_serializable(package="zoo")
class MeanBoxIoU(keras.metrics.MeanMetricWrapper):
    """Mean IoU between true and predicted boxes.

    Example:
        >>> metric = MeanBoxIoU()
        >>> metric.update_state([[0.5, 0.5, 0.2, 0.2]], [[0.5, 0.5, 0.2, 0.2]])
    """

    def __init__(self, name: str = "box_iou", dtype: Any = None):
        super().__init__(fn=box_iou, name=name, dtype=dtype)

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="zoo")
class BoxIoUAbove(keras.metrics.MeanMetricWrapper):
    """Share of boxes whose IoU with the truth is at least ``threshold`` (default 0.5).

    Example:
        >>> metric = BoxIoUAbove(0.5)
    """

    def __init__(self, threshold: float = 0.5, name: str | None = None, dtype: Any = None):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"`threshold` must be in (0, 1]. Received: threshold={threshold!r}")
        self.threshold = float(threshold)
        name = name or f"iou_{int(round(self.threshold * 100))}"
        super().__init__(fn=_iou_at_least, name=name, dtype=dtype, threshold=self.threshold)

    def get_config(self) -> dict:
        return {"threshold": self.threshold, "name": self.name, "dtype": self.dtype}


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
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        outside = labels[(labels < 0) | (labels >= n)]
        if outside.size:  # counted in another cell, or a numpy error, otherwise
            raise ValueError(f"Labels must be in [0, {n}) for {n} classes. Received: {name} holding {sorted(set(outside.tolist()))[:5]}")
    return np.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n)

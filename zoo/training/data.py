"""Datasets of a training run: Fashion-MNIST train/validation batches and the test arrays.

The validation set is carved out of the training split (``zoo.data.train_val_split``,
stratified, seeded); the test split is only used for the final evaluation. For the localizer
the splits become canvases (``zoo.data.make_localization_set``): train canvases from the train
part (seed ``seed``), validation canvases from the held-out part (seed ``seed + 1``) and test
canvases from the test split (``zoo.tasks.LOCALIZATION_TEST_SEED``); with the recipe's
``fresh_canvases`` the train canvases are drawn again in every batch (``zoo.data.FreshCanvases``). Augmentation is
the recipe's ``zoo.data.Augmenter`` inside ``zoo.data.ArrayDataset`` (numpy, per batch).

Example:
    >>> data = load_training_data(get_recipe("cnn"), input_shape=(28, 28, 1), limit=512)  # doctest: +SKIP
    >>> data.counts                                                                     # doctest: +SKIP
    {'train': 461, 'val': 51, 'test': 512}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.data import ArrayDataset, FreshCanvases, load_fashion_mnist, make_localization_set, train_val_split
from zoo.data.fashion_mnist import SPLIT_SIZES, check_limit
from zoo.tasks import LOCALIZATION_TEST_SEED
from zoo.training.recipes import Recipe

__all__ = ["TrainingData", "check_limit_leaves_training", "load_training_data", "make_targets", "validation_size"]

NUM_CLASSES = 10


@dataclass
class TrainingData:
    """Batched train/validation datasets and the raw test arrays of one run."""

    train: Any
    val: Any
    x_test: np.ndarray
    y_test: Any
    counts: dict[str, int]


def make_targets(labels: np.ndarray, recipe: Recipe, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Integer labels, or float32 one-hot rows when the recipe smooths labels.

    ``keras.losses.CategoricalCrossentropy(label_smoothing=...)`` needs one-hot targets.

    Example:
        >>> from zoo.training import get_recipe
        >>> make_targets(np.array([2]), get_recipe("cnn"), num_classes=3).tolist()
        [[0.0, 0.0, 1.0]]
    """
    labels = np.asarray(labels).astype(np.int64)
    if recipe.label_smoothing <= 0:
        return labels
    return np.eye(num_classes, dtype=np.float32)[labels]


def validation_size(recipe: Recipe, num_train: int) -> int:
    """``recipe.val_size``, capped at a tenth of the (possibly limited) training split.

    Example:
        >>> from zoo.training import get_recipe
        >>> validation_size(get_recipe("cnn"), 256), validation_size(get_recipe("cnn"), 60000)
        (25, 5000)
    """
    return max(1, min(recipe.val_size, num_train // 10))


def check_limit_leaves_training(recipe: Recipe, limit: int | None) -> None:
    """Refuse a ``limit`` that leaves no training image once the validation images are taken from it.

    Example:
        >>> from zoo.training import get_recipe
        >>> check_limit_leaves_training(get_recipe("cnn"), 2)
        >>> check_limit_leaves_training(get_recipe("cnn"), 1)
        Traceback (most recent call last):
        ...
        ValueError: `limit` keeps 1 training image(s), all taken by the validation split (1). Accepted: limit >= 2. Received: limit=1
    """
    check_limit(limit)
    if limit is None:
        return
    images = min(int(limit), SPLIT_SIZES["train"])
    if images - validation_size(recipe, images) < 1:
        raise ValueError(
            f"`limit` keeps {images} training image(s), all taken by the validation split "
            f"({validation_size(recipe, images)}). Accepted: limit >= 2. Received: limit={limit!r}"
        )


def load_training_data(
    recipe: Recipe,
    *,
    input_shape: tuple[int, ...],
    seed: int = 0,
    limit: int | None = None,
    data_dir: str | os.PathLike | None = None,
    num_replicas: int = 1,
) -> TrainingData:
    """Load, split, (for the localizer) synthesize canvases, and batch the data of ``recipe``.

    ``limit`` keeps the first ``limit`` images of each split. With ``num_replicas > 1`` the
    validation batches drop their incomplete last batch (every batch must split evenly
    across devices).

    Example:
        >>> load_training_data(get_recipe("cnn"), input_shape=(28, 28, 1), limit=256).counts  # doctest: +SKIP
        {'train': 231, 'val': 25, 'test': 256}
    """

    x, y = load_fashion_mnist("train", data_dir=data_dir, limit=limit)
    x_test, y_test = load_fashion_mnist("test", data_dir=data_dir, limit=limit)
    x_train, y_train, x_val, y_val = train_val_split(x, y, val_size=validation_size(recipe, len(x)), seed=seed)
    augmenter = recipe.augmenter()
    if recipe.task == "localization":
        size = int(input_shape[0])
        if recipe.fresh_canvases:  # raw items; FreshCanvases draws their canvases in every batch
            b_train = np.zeros((len(x_train), 4), np.float32)
            augmenter = FreshCanvases(size, then=augmenter)
        else:
            x_train, y_train, b_train = make_localization_set(x_train, y_train, canvas_size=size, seed=seed)
        x_val, y_val, b_val = make_localization_set(x_val, y_val, canvas_size=size, seed=seed + 1)
        x_test, labels, boxes = make_localization_set(x_test, y_test, canvas_size=size, seed=LOCALIZATION_TEST_SEED)
        y_test = {"class": labels, "box": boxes}
        train_targets: Any = {"class": make_targets(y_train, recipe), "box": b_train}
        val_targets: Any = {"class": make_targets(y_val, recipe), "box": b_val}
    else:
        train_targets, val_targets = make_targets(y_train, recipe), make_targets(y_val, recipe)
    batch = recipe.batch_size
    train = ArrayDataset(
        x_train, train_targets, batch_size=batch, shuffle=True, seed=seed, augmenter=augmenter,
        dtype="uint8", drop_remainder=len(x_train) >= batch,
    )
    val_batch = min(batch, len(x_val))
    if num_replicas > 1:
        val_batch = max(num_replicas, val_batch - val_batch % num_replicas)
    val = ArrayDataset(
        x_val, val_targets, batch_size=val_batch, shuffle=False, dtype="uint8",
        drop_remainder=num_replicas > 1 and len(x_val) >= val_batch,
    )
    counts = {"train": len(x_train), "val": len(x_val), "test": len(x_test)}
    return TrainingData(train=train, val=val, x_test=x_test, y_test=y_test, counts=counts)

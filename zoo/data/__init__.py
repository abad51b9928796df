"""Data utilities: Fashion-MNIST loading, synthetic localization, augmentation, batching.

``ArrayDataset`` (which imports keras) is loaded lazily on first access.

Example:
    >>> from zoo.data import load_fashion_mnist, make_localization_set  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from zoo.data.augment import (
    Augmenter,
    random_crop_with_padding,
    random_erasing,
    random_flip_left_right,
    random_flip_with_boxes,
)
from zoo.data.fashion_mnist import (
    LABEL_NAMES,
    find_data_dir,
    load_fashion_mnist,
    read_idx,
    train_val_indices,
    train_val_split,
)
from zoo.data.localization import (
    FreshCanvases,
    box_to_corners,
    corners_to_box,
    make_localization_set,
    tight_boxes,
)

__all__ = [
    "LABEL_NAMES",
    "ArrayDataset",
    "Augmenter",
    "FreshCanvases",
    "box_to_corners",
    "corners_to_box",
    "find_data_dir",
    "load_fashion_mnist",
    "make_localization_set",
    "random_crop_with_padding",
    "random_erasing",
    "random_flip_left_right",
    "random_flip_with_boxes",
    "read_idx",
    "tight_boxes",
    "train_val_indices",
    "train_val_split",
]


def __getattr__(name: str) -> Any:
    if name == "ArrayDataset":
        # Lazy: the pipeline imports Keras; the rest of zoo.data is numpy only.
        from zoo.data.pipeline import ArrayDataset

        return ArrayDataset
    raise AttributeError(f"module 'zoo.data' has no attribute {name!r}")

"""Antialiased image resizing in numpy, for progressive-resolution training.

``resize_batch`` resamples a batch ``(N, H, W, C)`` to ``(N, size, size, C)`` with a separable
triangle (linear) filter widened by the scale factor when shrinking, like PIL's ``BILINEAR``
with antialiasing. The filter is a small matrix per axis, so a batch costs two matrix
products; the result keeps the input's dtype (integers are rounded and clipped).

Example:
    >>> batch = np.full((2, 28, 28, 1), 200, np.uint8)
    >>> small = resize_batch(batch, 16)
    >>> small.shape, small.dtype, int(small.min()), int(small.max())
    ((2, 16, 16, 1), dtype('uint8'), 200, 200)
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

__all__ = ["check_resolutions", "resize_batch", "resize_matrix"]


@lru_cache(maxsize=32)
def resize_matrix(source: int, target: int) -> np.ndarray:
    """The ``(target, source)`` float32 matrix that resamples one axis of length ``source``.

    Each row holds the weights of a triangle filter centred on the output pixel's position in
    input coordinates (pixel centres aligned, as in ``align_corners=False``); its half-width is
    1 input pixel when enlarging and ``source / target`` when shrinking (antialiasing). Rows
    sum to 1, so constant images stay constant.

    Example:
        >>> [[round(float(w), 3) for w in row] for row in resize_matrix(4, 2)]
        [[0.429, 0.429, 0.143, 0.0], [0.0, 0.143, 0.429, 0.429]]
    """
    for name, value in (("source", source), ("target", target)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an int >= 1. Received: {name}={value!r}")
    scale = source / target
    support = max(scale, 1.0)
    centres = (np.arange(target) + 0.5) * scale - 0.5
    positions = np.arange(source)
    weights = np.maximum(0.0, 1.0 - np.abs(positions[None, :] - centres[:, None]) / support)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights.astype(np.float32)


def resize_batch(batch: np.ndarray, size: int) -> np.ndarray:
    """Resize a batch of square or rectangular images ``(N, H, W, C)`` to ``(N, size, size, C)``.

    Returns the batch itself when it already has that size.

    Example:
        >>> resize_batch(np.zeros((1, 28, 28, 1), np.float32), 20).shape
        (1, 20, 20, 1)
    """
    batch = np.asarray(batch)
    if batch.ndim != 4:
        raise ValueError(f"Expected a batch of shape (N, H, W, C). Received: shape={batch.shape}")
    height, width = batch.shape[1:3]
    if height == size and width == size:
        return batch
    rows, cols = resize_matrix(int(height), int(size)), resize_matrix(int(width), int(size))
    resized = np.einsum("ih,nhwc,jw->nijc", rows, batch.astype(np.float32), cols, optimize=True)
    if np.issubdtype(batch.dtype, np.integer):
        info = np.iinfo(batch.dtype)
        return np.clip(np.rint(resized), info.min, info.max).astype(batch.dtype)
    return resized.astype(batch.dtype)


def check_resolutions(resolutions: Sequence[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    """Validate a progressive-resizing schedule: ``((first_epoch, size), ...)``.

    The first epochs must start at 0 and increase; sizes are ints >= 1.

    Example:
        >>> check_resolutions([(0, 16), (18, 22), (30, 28)])
        ((0, 16), (18, 22), (30, 28))
    """
    try:
        pairs = tuple((int(first), int(size)) for first, size in resolutions)
        exact = all(
            not isinstance(v, bool) and int(v) == v for pair in resolutions for v in pair
        ) and all(len(pair) == 2 for pair in resolutions)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        pairs, exact = (), False
    firsts = [first for first, _ in pairs]
    ok = exact and (not pairs or (
        firsts[0] == 0
        and all(b > a for a, b in zip(firsts, firsts[1:]))
        and all(size >= 1 for _, size in pairs)
    ))
    if not ok:
        raise ValueError(
            "`resolutions` must be (first_epoch, size) pairs of ints, the first starting at epoch 0, "
            f"epochs increasing, sizes >= 1. Received: resolutions={resolutions!r}"
        )
    return pairs

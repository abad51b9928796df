"""Cheap, vectorised numpy augmentation for image batches of shape (N, H, W, C).

Every function takes an explicit ``np.random.Generator``, never mutates its
input, and preserves shape and dtype.

Example:
    >>> rng = np.random.default_rng(0)
    >>> batch = np.zeros((8, 28, 28, 1), np.uint8)
    >>> Augmenter(pad=4, flip=True, erasing_p=0.5)(batch, rng).shape
    (8, 28, 28, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "Augmenter",
    "random_crop_with_padding",
    "random_erasing",
    "random_flip_left_right",
    "random_flip_with_boxes",
]


def _check_batch(batch: np.ndarray) -> np.ndarray:
    batch = np.asarray(batch)
    if batch.ndim != 4:
        raise ValueError(
            f"Expected a batch of shape (N, H, W, C). Received: shape={batch.shape}"
        )
    return batch


def random_crop_with_padding(
    batch: np.ndarray,
    rng: np.random.Generator,
    pad: int = 4,
    mode: Literal["reflect", "constant"] = "reflect",
) -> np.ndarray:
    """Pad each side by ``pad`` (reflect or zeros) and randomly crop back to (H, W).

    Each sample gets an independent offset in ``[0, 2*pad]`` per axis.

    Example:
        >>> b = np.arange(2 * 4 * 4).reshape(2, 4, 4, 1).astype(np.uint8)
        >>> random_crop_with_padding(b, np.random.default_rng(0), pad=1).shape
        (2, 4, 4, 1)
    """
    batch = _check_batch(batch)
    if pad < 0 or mode not in ("reflect", "constant"):
        raise ValueError(
            "Need pad >= 0 and mode in ('reflect', 'constant'). "
            f"Received: pad={pad!r}, mode={mode!r}"
        )
    if pad == 0:
        return batch.copy()
    n, h, w, _ = batch.shape
    padded = np.pad(batch, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=mode)
    oy = rng.integers(0, 2 * pad + 1, n)
    ox = rng.integers(0, 2 * pad + 1, n)
    rows = (oy[:, None] + np.arange(h))[:, :, None]
    cols = (ox[:, None] + np.arange(w))[:, None, :]
    return padded[np.arange(n)[:, None, None], rows, cols]


def random_flip_left_right(
    batch: np.ndarray, rng: np.random.Generator, p: float = 0.5
) -> np.ndarray:
    """Mirror each sample horizontally with probability ``p``.

    Example:
        >>> b = np.arange(6).reshape(1, 1, 6, 1)
        >>> random_flip_left_right(b, np.random.default_rng(0), p=1.0)[0, 0, :, 0].tolist()
        [5, 4, 3, 2, 1, 0]
    """
    return _flip(_check_batch(batch), rng.random(len(batch)) < p)


def _flip(batch: np.ndarray, flags: np.ndarray) -> np.ndarray:
    out = batch.copy()
    out[flags] = batch[flags, :, ::-1]
    return out


def random_flip_with_boxes(
    images: np.ndarray,
    boxes: np.ndarray,
    rng: np.random.Generator,
    p: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip images left-right with probability ``p`` and mirror their boxes.

    Boxes are normalized ``(cx, cy, w, h)``; a flip maps ``cx -> 1 - cx``.

    Example:
        >>> imgs, bxs = np.zeros((1, 4, 4, 1)), np.array([[0.2, 0.5, 0.1, 0.1]])
        >>> random_flip_with_boxes(imgs, bxs, np.random.default_rng(0), p=1.0)[1].tolist()
        [[0.8, 0.5, 0.1, 0.1]]
    """
    images = _check_batch(images)
    boxes = np.asarray(boxes)
    if boxes.shape != (len(images), 4):
        raise ValueError(
            f"`boxes` must have shape ({len(images)}, 4). Received: shape={boxes.shape}"
        )
    flags = rng.random(len(images)) < p
    new_boxes = boxes.copy()
    new_boxes[flags, 0] = 1 - boxes[flags, 0]
    return _flip(images, flags), new_boxes


def random_erasing(
    batch: np.ndarray,
    rng: np.random.Generator,
    p: float = 0.5,
    area: tuple[float, float] = (0.02, 0.25),
    aspect: tuple[float, float] = (0.3, 3.3),
    fill: Literal["noise", "zero"] = "noise",
) -> np.ndarray:
    """Random erasing: with probability ``p`` overwrite one rectangle per sample.

    The rectangle covers a fraction ``U(area)`` of the image with aspect ratio
    (h/w) log-uniform in ``aspect``, clipped to the image, at a uniform random
    position. ``fill="noise"`` writes uniform random values (0..255 for uint8,
    [0, 1) for floats); ``fill="zero"`` writes zeros.

    Example:
        >>> b = np.full((4, 28, 28, 1), 255, np.uint8)
        >>> out = random_erasing(b, np.random.default_rng(0), p=1.0, fill="zero")
        >>> bool((out == 0).any(axis=(1, 2, 3)).all())
        True
    """
    batch = _check_batch(batch)
    if fill not in ("noise", "zero"):
        raise ValueError(f"`fill` must be 'noise' or 'zero'. Received: fill={fill!r}")
    n, h, w, c = batch.shape
    apply = rng.random(n) < p
    frac = rng.uniform(area[0], area[1], n)
    ratio = np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1]), n))
    eh = np.clip(np.round(np.sqrt(frac * h * w * ratio)), 1, h).astype(np.int64)
    ew = np.clip(np.round(np.sqrt(frac * h * w / ratio)), 1, w).astype(np.int64)
    top = np.floor(rng.random(n) * (h - eh + 1)).astype(np.int64)
    left = np.floor(rng.random(n) * (w - ew + 1)).astype(np.int64)
    r, col = np.arange(h), np.arange(w)
    in_r = (r[None] >= top[:, None]) & (r[None] < (top + eh)[:, None])
    in_c = (col[None] >= left[:, None]) & (col[None] < (left + ew)[:, None])
    mask = (in_r[:, :, None] & in_c[:, None, :] & apply[:, None, None])[..., None]
    if fill == "zero":
        values = np.zeros((), batch.dtype)
    elif np.issubdtype(batch.dtype, np.integer):
        values = rng.integers(0, 256, batch.shape, dtype=np.int64).astype(batch.dtype)
    else:
        values = rng.random(batch.shape).astype(batch.dtype)
    return np.where(mask, values, batch)


@dataclass(frozen=True)
class Augmenter:
    """Composable augmentation: crop-with-padding, then flip, then erasing.

    ``pad=0``, ``flip=False`` or ``erasing_p=0`` disable a step. With
    ``boxes`` (localization), only flips are allowed (they mirror ``cx``);
    padding-crops and erasing would make the tight boxes wrong.

    Example:
        >>> aug = Augmenter(pad=0, flip=True)
        >>> x, b = aug(np.zeros((2, 8, 8, 1), np.uint8), np.random.default_rng(0),
        ...            boxes=np.full((2, 4), 0.5))
        >>> x.shape, b.shape
        ((2, 8, 8, 1), (2, 4))
    """

    pad: int = 4
    flip: bool = True
    erasing_p: float = 0.0
    pad_mode: Literal["reflect", "constant"] = "reflect"
    erasing_fill: Literal["noise", "zero"] = "noise"

    def __call__(
        self,
        batch: np.ndarray,
        rng: np.random.Generator,
        boxes: np.ndarray | None = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Augment ``batch``; returns ``(batch, boxes)`` when boxes are given."""
        if boxes is not None:
            if self.pad or self.erasing_p:
                raise ValueError(
                    "With box targets only flips are supported; use "
                    f"Augmenter(pad=0, erasing_p=0). Received: pad={self.pad}, "
                    f"erasing_p={self.erasing_p}"
                )
            if self.flip:
                return random_flip_with_boxes(batch, boxes, rng)
            return _check_batch(batch).copy(), np.array(boxes, copy=True)
        out = _check_batch(batch)
        if self.pad:
            out = random_crop_with_padding(out, rng, self.pad, self.pad_mode)
        if self.flip:
            out = random_flip_left_right(out, rng)
        if self.erasing_p:
            out = random_erasing(out, rng, p=self.erasing_p, fill=self.erasing_fill)
        return out if out is not batch else out.copy()

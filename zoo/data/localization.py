"""Synthetic single-object localization set built from Fashion-MNIST.

Procedure of :func:`make_localization_set` (all randomness from ``seed``):

1. **Item choice.** Canvas ``i`` shows source image ``i % len(images)``
   (each image once, in order, when ``num_items`` is None).
2. **Resize.** Each item is scaled by ``s ~ U(scale_range)`` to
   ``round(h*s) x round(w*s)`` pixels with nearest-neighbour sampling
   (pixel centres mapped back to the source), so no new intensities appear.
3. **Placement.** The resized item is pasted at a uniform random integer
   position fully inside a black ``canvas_size x canvas_size`` canvas.
4. **Box.** The target is the *tight* box around the pasted item's pixels
   with intensity ``> threshold`` (default 0), in pixel-edge coordinates
   normalised by the canvas size: ``(cx, cy, w, h)`` in ``[0, 1]``, i.e.
   ``x_min = col_first / S`` and ``x_max = (col_last + 1) / S``. If an item has
   no such pixel (only possible with scales < 1 or large thresholds) the box
   of its placed rectangle is used instead.
5. **Clutter.** ``clutter`` fragments are added per canvas: random crops of
   6-10 px per side from OTHER images of the input (a different index, when
   more than one image is given), dimmed by a factor ``U(0.3, 0.6)``, and
   placed uniformly at random among positions whose rectangle stays at least
   1 px away from the item's tight box (32 candidate positions are drawn;
   a fragment with no valid candidate is dropped). Fragments are combined with
   ``maximum``; they never touch the box, so the box and every pixel inside
   it are independent of ``clutter`` (separate random streams are used for
   the item and the clutter, so the same seed gives the same item/box for
   any ``clutter``). With ``threshold > 0``, fragments may overlap the item's
   faint (``<= threshold``) pixels outside the box.

Same inputs and seed give bit-identical outputs (independent of ``chunk_size``).
Build train canvases from the train split and test canvases from the test split.

Example:
    >>> imgs = np.zeros((4, 28, 28), np.uint8); imgs[:, 10:18, 8:20] = 200
    >>> x, y, b = make_localization_set(imgs, np.arange(4), canvas_size=96)
    >>> x.shape, x.dtype, b.shape, b.dtype
    ((4, 96, 96, 1), dtype('uint8'), (4, 4), dtype('float32'))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "FreshCanvases",
    "box_to_corners",
    "corners_to_box",
    "make_localization_set",
    "tight_boxes",
]

_FRAG_MIN, _FRAG_MAX = 6, 10
_DIM_RANGE = (0.3, 0.6)
_CANDIDATES = 32
_GAP = 1


def box_to_corners(boxes: np.ndarray) -> np.ndarray:
    """Convert ``(cx, cy, w, h)`` boxes to ``(x_min, y_min, x_max, y_max)``.

    Example:
        >>> box_to_corners(np.array([[0.5, 0.5, 0.2, 0.4]])).round(3).tolist()
        [[0.4, 0.3, 0.6, 0.7]]
    """
    b = np.asarray(boxes)
    half = b[..., 2:4] / 2
    return np.concatenate([b[..., 0:2] - half, b[..., 0:2] + half], axis=-1)


def corners_to_box(corners: np.ndarray) -> np.ndarray:
    """Convert ``(x_min, y_min, x_max, y_max)`` to ``(cx, cy, w, h)`` boxes.

    Example:
        >>> corners_to_box(np.array([[0.4, 0.3, 0.6, 0.7]])).round(3).tolist()
        [[0.5, 0.5, 0.2, 0.4]]
    """
    c = np.asarray(corners)
    return np.concatenate(
        [(c[..., 0:2] + c[..., 2:4]) / 2, c[..., 2:4] - c[..., 0:2]], axis=-1
    )


def _mask_extent(mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pixel extent ``(y0, y1, x0, x1, nonempty)`` (inclusive) of (N,H,W) masks."""
    rows, cols = mask.any(axis=2), mask.any(axis=1)
    h, w = mask.shape[1], mask.shape[2]
    y0 = rows.argmax(axis=1)
    y1 = h - 1 - rows[:, ::-1].argmax(axis=1)
    x0 = cols.argmax(axis=1)
    x1 = w - 1 - cols[:, ::-1].argmax(axis=1)
    return y0, y1, x0, x1, rows.any(axis=1)


def tight_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight normalized ``(cx, cy, w, h)`` boxes (float32) of (N,H,W) boolean masks.

    Empty masks give all-zero boxes.

    Example:
        >>> m = np.zeros((1, 10, 10), bool); m[0, 2:4, 5:10] = True
        >>> tight_boxes(m).tolist()
        [[0.75, 0.30000001192092896, 0.5, 0.20000000298023224]]
    """
    masks = np.asarray(masks, bool)
    y0, y1, x0, x1, ok = _mask_extent(masks)
    h, w = masks.shape[1], masks.shape[2]
    corners = np.stack([x0 / w, y0 / h, (x1 + 1) / w, (y1 + 1) / h], axis=1)
    return np.where(ok[:, None], corners_to_box(corners), 0.0).astype(np.float32)


def _gather_paste(
    images: np.ndarray,
    idx: np.ndarray,
    top: np.ndarray,
    left: np.ndarray,
    out_h: np.ndarray,
    out_w: np.ndarray,
    size: int,
) -> np.ndarray:
    """Paste ``images[idx]`` resized (nearest) to out_h x out_w at (top, left) on size x size."""
    src_h, src_w = images.shape[1], images.shape[2]
    grid = np.arange(size)
    rel_r = grid[None, :] - top[:, None]
    rel_c = grid[None, :] - left[:, None]
    ok_r = (rel_r >= 0) & (rel_r < out_h[:, None])
    ok_c = (rel_c >= 0) & (rel_c < out_w[:, None])
    src_r = ((2 * rel_r + 1) * src_h) // (2 * out_h[:, None])
    src_c = ((2 * rel_c + 1) * src_w) // (2 * out_w[:, None])
    src_r = np.clip(src_r, 0, src_h - 1)
    src_c = np.clip(src_c, 0, src_w - 1)
    out = images[idx[:, None, None], src_r[:, :, None], src_c[:, None, :]]
    out *= ok_r[:, :, None] & ok_c[:, None, :]
    return out


def _paste_fragment(
    canvas: np.ndarray,
    images: np.ndarray,
    idx: np.ndarray,
    crop_y: np.ndarray,
    crop_x: np.ndarray,
    fh: np.ndarray,
    fw: np.ndarray,
    pos_y: np.ndarray,
    pos_x: np.ndarray,
    dim: np.ndarray,
    keep: np.ndarray,
) -> None:
    """Max-combine dimmed crops into ``canvas`` (padded by _FRAG_MAX), in place."""
    k = np.arange(_FRAG_MAX)
    rr = crop_y[:, None] + k[None, :]
    cc = crop_x[:, None] + k[None, :]
    valid = (k[None, :] < fh[:, None])[:, :, None] & (k[None, :] < fw[:, None])[:, None, :]
    valid &= keep[:, None, None]
    src_h, src_w = images.shape[1], images.shape[2]
    patch = images[
        idx[:, None, None],
        np.minimum(rr, src_h - 1)[:, :, None],
        np.minimum(cc, src_w - 1)[:, None, :],
    ]
    patch = np.where(valid, patch * dim[:, None, None], 0).astype(np.uint8)
    b = np.arange(canvas.shape[0])[:, None, None]
    ys = (pos_y[:, None] + k[None, :])[:, :, None]
    xs = (pos_x[:, None] + k[None, :])[:, None, :]
    canvas[b, ys, xs] = np.maximum(canvas[b, ys, xs], patch)


def make_localization_set(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    canvas_size: int = 96,
    num_items: int | None = None,
    seed: int = 0,
    scale_range: tuple[float, float] = (1.0, 2.5),
    clutter: int = 2,
    threshold: int = 0,
    return_masks: bool = False,
    chunk_size: int = 2048,
) -> tuple[np.ndarray, ...]:
    """Build ``(canvases uint8 (N,S,S,1), labels (N,), boxes float32 (N,4))``.

    Boxes are tight normalized ``(cx, cy, w, h)``; see the module docstring for
    the exact procedure. With ``return_masks=True`` a fourth array, the bool
    item masks (N,S,S) (pasted item pixels ``> threshold``), is returned.

    Example:
        >>> imgs = np.zeros((2, 28, 28), np.uint8); imgs[:, 4:9, 4:9] = 255
        >>> x, y, b, m = make_localization_set(imgs, [3, 7], canvas_size=80,
        ...                                    return_masks=True)
        >>> bool(np.allclose(tight_boxes(m), b)), y.tolist()
        (True, [3, 7])
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            "`images` must be uint8 of shape (N, H, W) or (N, H, W, 1). "
            f"Received: shape={images.shape}, dtype={images.dtype}"
        )
    m, src_h, src_w = images.shape
    if m == 0 or labels.shape != (m,):
        raise ValueError(
            f"Need N >= 1 images and labels of shape (N,). Received: images "
            f"{images.shape}, labels {labels.shape}"
        )
    lo, hi = (float(v) for v in scale_range)
    if not 0 < lo <= hi:
        raise ValueError(f"Need 0 < low <= high. Received: scale_range={scale_range!r}")
    if int(round(max(src_h, src_w) * hi)) > canvas_size:
        raise ValueError(
            f"canvas_size={canvas_size} is too small for items up to "
            f"{max(src_h, src_w)}*{hi} px. Received: canvas_size={canvas_size!r}"
        )
    if clutter < 0:
        raise ValueError(f"`clutter` must be >= 0. Received: clutter={clutter!r}")
    n = m if num_items is None else int(num_items)
    if n < 1:
        raise ValueError(f"`num_items` must be >= 1. Received: num_items={num_items!r}")
    s = canvas_size
    item_ss, clutter_ss = np.random.SeedSequence(seed).spawn(2)

    # Item stream: scale and position.
    rng = np.random.default_rng(item_ss)
    idx = np.arange(n) % m
    scale = rng.uniform(lo, hi, n)
    out_h = np.clip(np.round(src_h * scale).astype(np.int64), 1, s)
    out_w = np.clip(np.round(src_w * scale).astype(np.int64), 1, s)
    top = np.floor(rng.random(n) * (s - out_h + 1)).astype(np.int64)
    left = np.floor(rng.random(n) * (s - out_w + 1)).astype(np.int64)

    # Clutter stream: drawn up front, independent of the item stream.
    crng = np.random.default_rng(clutter_ss)
    shape = (n, clutter)
    other = (idx[:, None] + crng.integers(1, max(m, 2), shape)) % m
    fh = crng.integers(_FRAG_MIN, _FRAG_MAX + 1, shape)
    fw = crng.integers(_FRAG_MIN, _FRAG_MAX + 1, shape)
    crop_y = np.floor(crng.random(shape) * np.maximum(src_h - fh + 1, 1)).astype(np.int64)
    crop_x = np.floor(crng.random(shape) * np.maximum(src_w - fw + 1, 1)).astype(np.int64)
    dim = crng.uniform(*_DIM_RANGE, shape).astype(np.float32)
    cand_shape = shape + (_CANDIDATES,)
    cand_y = np.floor(crng.random(cand_shape) * (s - fh + 1)[..., None]).astype(np.int64)
    cand_x = np.floor(crng.random(cand_shape) * (s - fw + 1)[..., None]).astype(np.int64)

    canvases = np.zeros((n, s, s, 1), np.uint8)
    boxes = np.zeros((n, 4), np.float32)
    masks = np.zeros((n, s, s), bool) if return_masks else None
    for a in range(0, n, chunk_size):
        sl = slice(a, min(a + chunk_size, n))
        item = _gather_paste(images, idx[sl], top[sl], left[sl], out_h[sl], out_w[sl], s)
        mask = item > threshold
        y0, y1, x0, x1, ok = _mask_extent(mask)
        # Fall back to the placed rectangle for items without any pixel > threshold.
        y0 = np.where(ok, y0, top[sl])
        y1 = np.where(ok, y1, top[sl] + out_h[sl] - 1)
        x0 = np.where(ok, x0, left[sl])
        x1 = np.where(ok, x1, left[sl] + out_w[sl] - 1)
        corners = np.stack([x0 / s, y0 / s, (x1 + 1) / s, (y1 + 1) / s], axis=1)
        boxes[sl] = corners_to_box(corners)
        work = np.zeros((item.shape[0], s + _FRAG_MAX, s + _FRAG_MAX), np.uint8)
        work[:, :s, :s] = item
        for j in range(clutter):
            cy, cx = cand_y[sl, j], cand_x[sl, j]
            h_, w_ = fh[sl, j][:, None], fw[sl, j][:, None]
            free = (
                (cy + h_ - 1 < y0[:, None] - _GAP)
                | (cy > y1[:, None] + _GAP)
                | (cx + w_ - 1 < x0[:, None] - _GAP)
                | (cx > x1[:, None] + _GAP)
            )
            first = free.argmax(axis=1)
            rows = np.arange(first.shape[0])
            _paste_fragment(
                work, images, other[sl, j], crop_y[sl, j], crop_x[sl, j],
                fh[sl, j], fw[sl, j], cy[rows, first], cx[rows, first],
                dim[sl, j], free.any(axis=1),
            )
        canvases[sl, :, :, 0] = work[:, :s, :s]
        if masks is not None:
            masks[sl] = mask
    out = (canvases, labels[idx], boxes)
    return out + (masks,) if masks is not None else out


@dataclass(frozen=True)
class FreshCanvases:
    """Batch augmentation that synthesizes new canvases from raw items every time it is called.

    Given a batch of source items ``(N, h, w[, 1])`` uint8 it returns ``(canvases, boxes)`` from
    :func:`make_localization_set` seeded by ``rng`` (scale, position and clutter drawn again;
    clutter cut from the other items of the batch), then applies ``then`` (e.g. flips, which mirror
    the boxes). Inside ``zoo.data.ArrayDataset`` (``rng = default_rng([seed, epoch, batch])``)
    every epoch sees new canvases of the same items in the same order of labels, reproducibly.

    Example:
        >>> items = np.zeros((3, 28, 28, 1), np.uint8); items[:, 8:20, 8:20] = 200
        >>> x, boxes = FreshCanvases(72)(items, np.random.default_rng(0), boxes=np.zeros((3, 4)))
        >>> x.shape, boxes.shape
        ((3, 72, 72, 1), (3, 4))
    """

    canvas_size: int
    then: Callable[..., Any] | None = None

    def __call__(self, items: np.ndarray, rng: np.random.Generator, boxes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        canvases, _, new_boxes = make_localization_set(
            items, np.zeros(len(items), np.int64), canvas_size=self.canvas_size, seed=int(rng.integers(2**63 - 1)),
        )
        if self.then is not None:
            canvases, new_boxes = self.then(canvases, rng, boxes=new_boxes)
        return canvases, new_boxes

"""Tests for zoo.data.localization (synthetic Fashion-MNIST localization set)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.data.localization import (
    box_to_corners,
    corners_to_box,
    make_localization_set,
    tight_boxes,
)


def fake_items(n: int, seed: int) -> np.ndarray:
    """Sparse random blobs on 28x28 (some single pixels, some touching edges)."""
    rng = np.random.default_rng(seed)
    imgs = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        y0, x0 = rng.integers(0, 28, 2)
        y1, x1 = rng.integers(y0, 28), rng.integers(x0, 28)
        block = rng.integers(0, 256, (y1 - y0 + 1, x1 - x0 + 1))
        block[rng.random(block.shape) < 0.5] = 0
        block[rng.integers(0, block.shape[0]), rng.integers(0, block.shape[1])] = 255
        imgs[i, y0 : y1 + 1, x0 : x1 + 1] = block
    return imgs


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    clutter=st.integers(0, 4),
    canvas=st.sampled_from([70, 96]),
    threshold=st.sampled_from([0, 100]),
)
def test_boxes_tight_and_valid(seed, clutter, canvas, threshold):
    imgs = fake_items(6, seed % 1000)
    x, y, b, m = make_localization_set(
        imgs, np.arange(6), canvas_size=canvas, seed=seed, clutter=clutter,
        threshold=threshold, return_masks=True, num_items=9, chunk_size=4,
    )
    assert x.shape == (9, canvas, canvas, 1) and x.dtype == np.uint8
    assert b.dtype == np.float32 and np.all(b >= 0) and np.all(b <= 1)
    c = box_to_corners(b)
    assert np.all(c >= -1e-6) and np.all(c <= 1 + 1e-6)
    has = m.any(axis=(1, 2))
    assert has.all()  # scale >= 1 keeps every pixel above threshold
    assert np.allclose(tight_boxes(m), b, atol=1e-6)
    # Mask equals the canvas pixels above threshold inside the box; nothing from
    # clutter reaches into (or touches) the box.
    px = np.rint(c * canvas).astype(int)
    for i in range(9):
        x0, y0, x1, y1 = px[i]
        inside = x[i, y0:y1, x0:x1, 0]
        assert np.array_equal(inside > threshold, m[i, y0:y1, x0:x1])
        outside = m[i].copy()
        outside[y0:y1, x0:x1] = False
        assert not outside.any()
        # Every border row/column of the box holds an item pixel (tightness).
        mb = m[i, y0:y1, x0:x1]
        assert mb[0].any() and mb[-1].any() and mb[:, 0].any() and mb[:, -1].any()
    assert y.tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2]


def test_deterministic_and_chunk_invariant():
    imgs = fake_items(20, 0)
    a = make_localization_set(imgs, np.arange(20), seed=5)
    b = make_localization_set(imgs, np.arange(20), seed=5, chunk_size=3)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)
    c = make_localization_set(imgs, np.arange(20), seed=6)
    assert not np.array_equal(a[2], c[2])


def test_clutter_never_changes_box_or_box_content():
    imgs = fake_items(30, 1)
    x0, _, b0 = make_localization_set(imgs, np.arange(30), seed=2, clutter=0)
    x3, _, b3 = make_localization_set(imgs, np.arange(30), seed=2, clutter=3)
    assert np.array_equal(b0, b3)
    assert not np.array_equal(x0, x3)  # clutter did draw something
    px = np.rint(box_to_corners(b0) * 96).astype(int)
    for i in range(30):
        xa, ya, xb, yb = px[i]
        assert np.array_equal(x0[i, ya:yb, xa:xb], x3[i, ya:yb, xa:xb])
    # Clutter only adds dimmed pixels outside the box.
    assert np.all(x3 >= x0)


def test_clutter_from_other_items():
    imgs = np.zeros((2, 28, 28), np.uint8)
    imgs[0] = 200  # full bright square
    # Item 1 is a single pixel: its clutter comes from item 0 (dimmed 200).
    imgs[1, 14, 14] = 100
    x, _, b = make_localization_set(imgs, np.array([0, 1]), seed=0, clutter=4,
                                    scale_range=(1.0, 1.0))
    outside = x[1, :, :, 0].copy()
    xa, ya, xb, yb = np.rint(box_to_corners(b[1]) * 96).astype(int)
    assert (outside[ya:yb, xa:xb] > 0).sum() == 1  # the item pixel only
    outside[ya:yb, xa:xb] = 0
    frag = outside[outside > 0]
    assert frag.size >= 4 * 36 * 0.5  # 4 fragments of >= 6x6 (some may overlap)
    assert frag.min() >= int(200 * 0.3) - 1 and frag.max() <= int(200 * 0.6)


def test_box_helpers_roundtrip():
    rng = np.random.default_rng(0)
    boxes = rng.random((50, 4))
    assert np.allclose(corners_to_box(box_to_corners(boxes)), boxes)


def test_tight_boxes_empty_mask():
    m = np.zeros((2, 8, 8), bool)
    m[1, 0, 7] = True
    assert tight_boxes(m).tolist()[0] == [0, 0, 0, 0]
    assert np.allclose(tight_boxes(m)[1], [15 / 16, 1 / 16, 1 / 8, 1 / 8])


def test_accepts_channel_dim_and_validates():
    imgs = fake_items(3, 2)[..., None]
    x, y, b = make_localization_set(imgs, np.arange(3), canvas_size=80)
    assert x.shape == (3, 80, 80, 1)
    with pytest.raises(ValueError, match="canvas_size"):
        make_localization_set(imgs, np.arange(3), canvas_size=60)
    with pytest.raises(ValueError, match="uint8"):
        make_localization_set(imgs.astype(np.float32), np.arange(3))
    with pytest.raises(ValueError, match="labels"):
        make_localization_set(imgs, np.arange(4))
    with pytest.raises(ValueError, match="scale_range"):
        make_localization_set(imgs, np.arange(3), scale_range=(2.0, 1.0))


def _items(n: int) -> np.ndarray:
    """Solid blocks of different sizes and places (N, 28, 28, 1), item ``i`` at intensity ``200 + i``:
    resizing is nearest-neighbour (no new intensities), and no pixel of a dimmed clutter fragment
    (<= 60% of its source) reaches 200, so the pixels equal to ``200 + i`` are item ``i``'s."""
    items = np.zeros((n, 28, 28, 1), np.uint8)
    for i in range(n):
        items[i, 2 + i : 12 + 2 * i, 4 : 10 + i] = 200 + i
    return items


def test_fresh_canvases_draw_new_canvases_per_epoch_reproducibly():
    from zoo.data import ArrayDataset, Augmenter, FreshCanvases

    items = _items(8)
    labels = np.arange(8)
    ds = ArrayDataset(items, {"class": labels, "box": np.zeros((8, 4), np.float32)}, batch_size=4, seed=3,
                      augmenter=FreshCanvases(72, then=Augmenter(pad=0, flip=True)), dtype="uint8")
    x0, y0 = ds[0]
    assert x0.shape == (4, 72, 72, 1) and x0.dtype == np.uint8
    again_x, again_y = ds[0]
    assert np.array_equal(x0, again_x) and np.array_equal(y0["box"], again_y["box"])  # same epoch, same batch
    ds.on_epoch_end()
    x1, y1 = ds[0]
    assert not np.array_equal(x0, x1)  # a new epoch: new scales, positions, clutter
    for x, y in ((x0, y0), (x1, y1)):
        # each box is exactly the tight box of the item its label names (item i is drawn at 200 + i), flips included
        corners = np.rint(box_to_corners(y["box"]) * 72).astype(int)
        for canvas, label, (x_min, y_min, x_max, y_max) in zip(x[..., 0], y["class"], corners):
            assert not (canvas > 200 + label).any()  # no other item on the canvas, no brighter pixel
            rows, cols = np.nonzero(canvas == 200 + label)
            assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x_min, y_min, x_max, y_max)
    # an epoch shows every item once
    epoch = np.concatenate([ds[0][1]["class"], ds[1][1]["class"]])
    assert sorted(epoch.tolist()) == labels.tolist()


def test_a_fresh_canvases_recipe_is_a_localization_recipe():
    from zoo.recipe import Recipe

    assert Recipe(arch="x", task="localization", pad_crop=0, fresh_canvases=True).fresh_canvases
    with pytest.raises(ValueError, match="for localization recipes"):
        Recipe(arch="x", fresh_canvases=True)
    with pytest.raises(ValueError, match="fresh_canvases"):
        Recipe(arch="x", task="localization", pad_crop=0, fresh_canvases="yes")

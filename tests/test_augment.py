"""Tests for zoo.data.augment and zoo.data.pipeline.ArrayDataset."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.data.augment import (
    Augmenter,
    random_crop_with_padding,
    random_erasing,
    random_flip_left_right,
    random_flip_with_boxes,
)


def batch(n: int = 16, h: int = 12, w: int = 10, c: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 256, (n, h, w, c), dtype=np.uint8)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("c", [1, 3])
def test_shapes_dtypes_preserved_and_input_untouched(c):
    b = batch(c=c)
    orig = b.copy()
    as_float = b.astype(np.float32) / 255
    float_orig = as_float.copy()
    for given, out in (
        (b, random_crop_with_padding(b, rng(), pad=3)),
        (b, random_crop_with_padding(b, rng(), pad=3, mode="constant")),
        (as_float, random_crop_with_padding(as_float, rng(), pad=3)),
        (b, random_flip_left_right(b, rng())),
        (b, random_erasing(b, rng(), p=1.0)),
        (b, random_erasing(b, rng())),
        (as_float, random_erasing(as_float, rng(), p=1.0)),
        (b, Augmenter(pad=2, flip=True, erasing_p=0.5)(b, rng())),
        (as_float, Augmenter(pad=2, flip=True, erasing_p=0.5)(as_float, rng())),
        (b, Augmenter(pad=0, flip=False)(b, rng())),
    ):
        assert out.shape == given.shape
        assert out.dtype == given.dtype, (given.dtype, out.dtype)
    assert np.array_equal(b, orig) and np.array_equal(as_float, float_orig)


def test_flip_inverts():
    b = batch()
    once = random_flip_left_right(b, rng(3))
    twice = random_flip_left_right(once, rng(3))  # same flags again
    assert np.array_equal(twice, b)
    flipped = random_flip_left_right(b, rng(), p=1.0)
    assert np.array_equal(flipped, b[:, :, ::-1])
    assert np.array_equal(random_flip_left_right(b, rng(), p=0.0), b)
    mixed = random_flip_left_right(b, rng(1))
    per = [np.array_equal(mixed[i], b[i, :, ::-1]) for i in range(len(b))]
    assert any(per) and not all(per)


def test_flip_with_boxes():
    imgs = np.zeros((8, 10, 10, 1), np.uint8)
    boxes = np.zeros((8, 4), np.float32)
    for i in range(8):  # one-pixel item at column i
        imgs[i, 5, i] = 255
        boxes[i] = [(i + 0.5) / 10, 0.55, 0.1, 0.1]
    out, ob = random_flip_with_boxes(imgs, boxes, rng(2))
    for i in range(8):
        col = int(np.flatnonzero(out[i, 5, :, 0])[0])
        assert np.isclose(ob[i, 0], (col + 0.5) / 10)
    assert np.array_equal(ob[:, 1:], boxes[:, 1:])
    back, bb = random_flip_with_boxes(out, ob, rng(2))
    assert np.array_equal(back, imgs) and np.allclose(bb, boxes)


def test_crop_keeps_content():
    b = batch(n=32)
    out = random_crop_with_padding(b, rng(), pad=2, mode="constant")
    for i in range(len(b)):
        # Find the shift: the crop is a translated copy of the original.
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                shifted = np.zeros_like(b[i])
                ys, yd = slice(max(0, -dy), 12 - max(0, dy)), slice(max(0, dy), 12 - max(0, -dy))
                xs, xd = slice(max(0, -dx), 10 - max(0, dx)), slice(max(0, dx), 10 - max(0, -dx))
                shifted[yd, xd] = b[i][ys, xs]
                found |= np.array_equal(shifted, out[i])
        assert found
    assert np.array_equal(random_crop_with_padding(b, rng(), pad=0), b)
    refl = random_crop_with_padding(b, rng(), pad=4)
    assert refl.min() >= 1  # reflect padding introduces no zeros


def test_erasing_changes_only_a_rectangle():
    b = np.full((64, 20, 16, 2), 7, np.uint8)
    for fill in ("zero", "noise"):
        out = random_erasing(b, rng(5), p=1.0, fill=fill)
        for i in range(len(b)):
            changed = (out[i] != b[i]).any(axis=-1)
            ys, xs = np.nonzero(changed)
            assert ys.size > 0
            rect = np.zeros_like(changed)
            rect[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
            if fill == "zero":
                assert np.array_equal(rect, changed)
                assert 0.02 * 320 * 0.5 <= rect.sum() <= 0.25 * 320 * 2
            else:
                assert not (changed & ~rect).any()
    assert np.array_equal(random_erasing(b, rng(), p=0.0), b)
    some = random_erasing(b, rng(1), p=0.5, fill="zero")
    erased = (some == 0).any(axis=(1, 2, 3))
    assert 10 < erased.sum() < 54


def test_augmenter_deterministic_and_box_mode():
    b = batch()
    aug = Augmenter(pad=4, flip=True, erasing_p=0.5)
    assert np.array_equal(aug(b, rng(9)), aug(b, rng(9)))
    boxes = np.tile([0.25, 0.5, 0.1, 0.2], (len(b), 1))
    with pytest.raises(ValueError, match="only flips"):
        aug(b, rng(), boxes=boxes)
    x, bx = Augmenter(pad=0, flip=True)(b, rng(0), boxes=boxes)
    assert set(np.round(bx[:, 0], 6).tolist()) == {0.25, 0.75}
    x, bx = Augmenter(pad=0, flip=False)(b, rng(0), boxes=boxes)
    assert np.array_equal(x, b) and np.array_equal(bx, boxes)


# --- pipeline.ArrayDataset -------------------------------------------------


def test_array_dataset_covers_every_sample_each_epoch():
    from zoo.data.pipeline import ArrayDataset

    n = 23
    x = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
    y = np.arange(n)
    ds = ArrayDataset(x, y, batch_size=5, seed=1)
    assert len(ds) == 5
    orders = []
    for _ in range(3):
        xs, ys = zip(*(ds[i] for i in range(len(ds))))
        xs, ys = np.concatenate(xs), np.concatenate(ys)
        assert xs.dtype == np.float32 and xs.shape == (n, 1, 1, 1)
        assert np.array_equal(xs[:, 0, 0, 0].astype(int), ys)
        assert sorted(ys.tolist()) == list(range(n))
        orders.append(ys)
        ds.on_epoch_end()
    assert not np.array_equal(orders[0], orders[1])
    ds2 = ArrayDataset(x, y, batch_size=5, seed=1)
    ds2.set_epoch(1)
    assert np.array_equal(np.concatenate([ds2[i][1] for i in range(5)]), orders[1])
    with pytest.raises(IndexError):
        ds[5]


def test_array_dataset_options():
    from zoo.data.pipeline import ArrayDataset

    x = np.full((10, 4, 4, 1), 255, np.uint8)
    ds = ArrayDataset(x, np.arange(10), batch_size=4, drop_remainder=True, shuffle=False,
                      rescale=1 / 255, workers=2, max_queue_size=3)
    assert len(ds) == 2 and ds.workers == 2
    xb, yb = ds[1]
    assert yb.tolist() == [4, 5, 6, 7] and np.allclose(xb, 1.0)
    raw = ArrayDataset(x, None, batch_size=3, dtype="uint8")
    assert len(raw) == 4 and raw[3].shape == (1, 4, 4, 1) and raw[3].dtype == np.uint8
    with pytest.raises(ValueError, match="samples"):
        ArrayDataset(x, np.arange(9))
    with pytest.raises(ValueError, match="Received: dtype="):
        ArrayDataset(x, dtype="int8")


def test_array_dataset_dict_targets_with_box_augmenter():
    from zoo.data.pipeline import ArrayDataset

    n = 12
    x = np.zeros((n, 8, 8, 1), np.uint8)
    x[:, 2, 1] = 255  # item in column 1 -> cx = 0.1875
    boxes = np.tile(np.float32([1.5 / 8, 2.5 / 8, 1 / 8, 1 / 8]), (n, 1))
    ds = ArrayDataset(x, {"class": np.arange(n), "box": boxes}, batch_size=5,
                      augmenter=Augmenter(pad=0, flip=True), seed=3)
    seen = []
    for i in range(len(ds)):
        xb, yb = ds[i]
        assert set(yb) == {"class", "box"} and yb["box"].shape == (len(xb), 4)
        col = np.argmax(xb[:, 2, :, 0], axis=1)
        assert np.allclose(yb["box"][:, 0], (col + 0.5) / 8)
        seen += yb["class"].tolist()
        assert np.array_equal(ds[i][0], xb)  # batch i is reproducible
    assert sorted(seen) == list(range(n))
    assert np.array_equal(boxes[:, 0], np.full(n, 1.5 / 8, np.float32))  # not mutated


def test_array_dataset_fit_two_outputs():
    import keras

    from zoo.data.pipeline import ArrayDataset

    inp = keras.Input((4, 4, 1))
    h = keras.layers.Flatten()(inp)
    model = keras.Model(inp, {"class": keras.layers.Dense(3, name="class")(h),
                              "box": keras.layers.Dense(4, name="box")(h)})
    xent = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("sgd", loss={"class": xent, "box": "mse"})
    n = 10
    ds = ArrayDataset(np.zeros((n, 4, 4, 1), np.uint8),
                      {"class": np.arange(n) % 3, "box": np.full((n, 4), 0.5, np.float32)},
                      batch_size=4, augmenter=Augmenter(pad=0), rescale=1 / 255)
    hist = model.fit(ds, epochs=2, verbose=0)
    assert len(hist.history["loss"]) == 2
    assert ds.epoch >= 2

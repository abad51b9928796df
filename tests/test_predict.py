"""``zoo.preprocess`` and ``zoo.predict``: a user's pictures made into model inputs (issue 13)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from conftest import ROOT

import zoo
from zoo.data.fashion_mnist import find_data_dir
from zoo.preprocess import as_picture, border_mean, preprocess_image, preprocessing_of, read_image

FMNIST = {"polarity": "light_on_dark", "trim": True, "resize": "fit_and_pad"}


def item_on(background: int, item: int, shape=(60, 40), box=(10, 50, 5, 30)) -> np.ndarray:
    picture = np.full(shape, background, np.uint8)
    top, bottom, left, right = box
    picture[top:bottom, left:right] = item
    return picture


def test_a_light_background_is_inverted_and_a_dark_one_kept():
    on_white = preprocess_image(item_on(250, 40), (28, 28, 1), FMNIST)
    on_black = preprocess_image(item_on(5, 215), (28, 28, 1), FMNIST)
    assert on_white.inverted and not on_black.inverted
    assert any(note.startswith("inverted") for note in on_white.notes)
    # Both become a light item on black: the same picture up to the 5-level offsets.
    assert np.abs(on_white.array - on_black.array).max() <= 10
    assert on_white.array[0, 0, 0] == 0 and on_white.array[14, 14, 0] > 200


def test_trim_then_fit_fills_the_longest_side_and_centres_the_item():
    out = preprocess_image(item_on(0, 255, shape=(100, 100), box=(10, 50, 20, 40)), (28, 28, 1), FMNIST)
    rows = np.flatnonzero(out.array[..., 0].max(axis=1) > 127)
    cols = np.flatnonzero(out.array[..., 0].max(axis=0) > 127)
    assert (rows[0], rows[-1]) == (0, 27)  # 40 tall -> 28
    assert abs((cols[0] + cols[-1]) / 2 - 13.5) <= 1  # 20 wide -> 14, centred
    # Input pixel coordinates map back to the picture's.
    assert out.to_original(0, (28 - 14) / 2) == pytest.approx((10, 20), abs=0.5)


def test_without_trim_the_whole_picture_is_fitted_and_padded():
    out = preprocess_image(np.zeros((56, 28), np.uint8), (28, 28, 1), {"polarity": "light_on_dark"})
    assert out.scale == 0.5 and out.offset == (0.0, 7.0)
    assert out.to_original(27.5, 20.5) == pytest.approx((55, 27))


def test_colour_and_channels_are_converted_both_ways():
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[..., 0] = 200
    gray = preprocess_image(rgb, (10, 10, 1))
    assert gray.array.shape == (10, 10, 1) and gray.array[0, 0, 0] == pytest.approx(0.299 * 200, abs=0.5)
    assert preprocess_image(np.full((10, 10), 7, np.uint8), (10, 10, 3)).array.shape == (10, 10, 3)


def test_files_pil_images_and_alpha_are_read(tmp_path):
    rgba = np.zeros((8, 12, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent: composited on white
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    Image.fromarray(np.full((8, 12), 9, np.uint8)).save(tmp_path / "gray.jpg")
    assert read_image(tmp_path / "clear.png").min() == 255
    assert read_image(tmp_path / "gray.jpg").shape == (8, 12, 1)
    pil = Image.open(tmp_path / "gray.jpg")
    assert preprocess_image(pil, (8, 12, 1)).array.shape == (8, 12, 1)


def test_sixteen_bit_pictures_are_scaled_by_their_depth_not_their_content(tmp_path):
    # A 16-bit PNG's white is 65535 whatever its pixels hold: 300 is nearly black, not white.
    for value, expected in ((300, 1), (32768, 128), (65535, 255)):
        Image.fromarray(np.full((4, 4), value, np.uint16)).save(tmp_path / "deep.png")
        assert Image.open(tmp_path / "deep.png").mode.startswith("I;16")
        assert read_image(tmp_path / "deep.png")[0, 0, 0] == expected
    # With a transparent gray value (a tRNS chunk): that value is white, the others scaled by depth.
    gradient = np.tile(np.linspace(0, 65535, 16).astype(np.uint16), (4, 1))
    Image.fromarray(gradient).save(tmp_path / "clear.png", transparency=0)
    read = read_image(tmp_path / "clear.png")[..., 0]
    np.testing.assert_array_equal(read, np.tile([255] + [17 * i for i in range(1, 16)], (4, 1)))  # 4369 -> 17
    assert as_picture(Image.fromarray(np.full((3, 3), 100.4, np.float32)))[0, 0, 0] == 100
    with pytest.raises(ValueError, match="Received: values from 1000.0 to 1000.0"):
        as_picture(Image.fromarray(np.full((3, 3), 1000, np.int32)))


def test_a_photo_is_turned_upright_by_its_exif_orientation(tmp_path):
    stored = np.zeros((4, 6, 3), np.uint8)
    stored[0, :] = 255  # a white top row, as the camera stored it
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "phone.jpg", exif=exif, quality=100)
    upright = read_image(tmp_path / "phone.jpg")
    assert upright.shape == (6, 4, 3)
    assert upright[:, -1].mean() > 200 and upright[:, 0].mean() < 50  # the top row is now the right column
    with Image.open(tmp_path / "phone.jpg") as opened:  # the same photo opened with Pillow first
        np.testing.assert_array_equal(as_picture(opened), upright)


def test_other_picture_formats_are_read_and_listed_and_several_frames_refused(tmp_path):
    """BMP, WebP and TIFF files are read like PNGs, named or in a folder; an animation or a
    multi-page TIFF is refused naming the file (not predicted from its first frame); 32-bit pixels
    outside [0, 255] are refused naming the file."""
    item = np.zeros((10, 10), np.uint8)
    item[2:8, 3:7] = 200
    for suffix in (".png", ".bmp", ".webp", ".tif"):
        Image.fromarray(item).save(tmp_path / f"item{suffix}", **({"lossless": True} if suffix == ".webp" else {}))
        np.testing.assert_array_equal(read_image(tmp_path / f"item{suffix}")[..., 0], item)
    found = zoo.predict(zoo.load("cnn"), tmp_path)
    assert sorted(Path(p.source).suffix for p in found) == [".bmp", ".png", ".tif", ".webp"]
    frames = [Image.fromarray(np.full((6, 6), v, np.uint8)) for v in (0, 255)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    for name in ("anim.gif", "pages.tif"):
        with pytest.raises(ValueError, match=rf"'.*{name}' holds 2 frames.*Received: path="):
            read_image(tmp_path / name)
    Image.fromarray(np.full((3, 3), 60000, np.int32)).save(tmp_path / "deep.tif")
    with pytest.raises(ValueError, match=r"Cannot use '.*deep.tif' as a picture: .*values from 60000.0"):
        read_image(tmp_path / "deep.tif")


def test_a_picture_too_large_to_read_safely_gets_a_clear_error(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1,600 pixels > twice the limit: Pillow refuses
    with pytest.raises(ValueError, match=r"too large to read safely.*at most 100 pixels.*Received: path="):
        read_image(tmp_path / "bomb.png")


@pytest.mark.parametrize(
    "picture, message",
    [
        (np.full((4, 4), np.nan, np.float32), "NaN or inf"),
        (np.full((4, 4), np.inf, np.float32), "NaN or inf"),
        (np.full((4, 4), -1.0, np.float32), "Received: values from -1.0"),
        (np.full((4, 4), 300.0, np.float32), "to 300.0"),
        (np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4), "looks scaled to"),
        (np.zeros((4, 4, 2), np.uint8), "Received: shape=(4, 4, 2)"),
        (np.zeros((4, 4, 5), np.uint8), "Received: shape=(4, 4, 5)"),
        (np.zeros((2, 4, 4, 1), np.uint8), "Received: shape=(2, 4, 4, 1)"),
        (np.array([["a"]]), "Received: dtype=<U1"),
    ],
)
def test_bad_pictures_get_a_clear_error(picture, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        preprocess_image(picture, (28, 28, 1))


def test_a_file_that_is_no_picture_is_named(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="Cannot read .*x.png.* as a picture"):
        read_image(tmp_path / "x.png")


def test_unknown_preprocessing_values_are_refused():
    with pytest.raises(ValueError, match="Received: polarity='dark_on_light'"):
        preprocess_image(np.zeros((4, 4)), (4, 4, 1), {"polarity": "dark_on_light"})
    with pytest.raises(ValueError, match="Received: resize='crop'"):
        preprocess_image(np.zeros((4, 4)), (4, 4, 1), {"resize": "crop"})


def test_records_of_zoo_0_1_folders_mean_fashion_mnist_presentation():
    assert preprocessing_of({"dataset": "fashion_mnist", "preprocessing": {"resize": None}})["polarity"] == "light_on_dark"
    assert preprocessing_of({"dataset": "my_photos", "preprocessing": {}}).get("polarity") is None


def test_border_mean_reads_only_the_frame():
    picture = np.zeros((10, 10, 1))
    picture[2:8, 2:8] = 255
    assert border_mean(picture) == 0.0


def test_predict_uses_the_label_names_and_top_k_of_the_weights():
    item = np.zeros((28, 28), np.uint8)
    item[4:24, 9:19] = 180
    [prediction] = zoo.predict("cnn", [item], top_k=4)
    names = tuple(zoo.info("cnn")["weights"]["fmnist"]["label_names"])
    assert prediction.label_names == names and len(prediction.top_k) == 4
    probabilities = [p for _, p in prediction.top_k]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001
    with pytest.raises(ValueError, match="Received: top_k=0"):
        zoo.predict("cnn", [item], top_k=0)
    [again] = zoo.predict("cnn", [item], top_k=np.int64(4), batch_size=np.int64(8))  # NumPy integers, like Keras
    assert again.top_k == prediction.top_k
    with pytest.raises(ValueError, match="empty list"):
        zoo.predict("cnn", [], top_k=1)


def test_an_untrained_model_predicts_with_placeholder_names():
    model = zoo.load("cnn", weights=None, num_classes=3)
    with pytest.warns(UserWarning, match="carries no record of its weights"):
        [prediction] = zoo.predict(model, [np.zeros((28, 28), np.uint8)], top_k=3)
    assert prediction.label_names == ("class_0", "class_1", "class_2")


@pytest.mark.parametrize("outputs", ["list", "dict"])
def test_outputs_that_are_no_class_scores_are_refused_clearly(outputs):
    """A Keras model of the user's with two outputs (a list, or a dict without 'class') got an
    AttributeError or a KeyError from inside predict; a (batch,) output was read as classes."""
    import keras

    inputs = keras.Input((28, 28, 1))
    flat = keras.layers.Flatten()(inputs)
    heads = [keras.layers.Dense(3)(flat), keras.layers.Dense(4)(flat)]
    model = keras.Model(inputs, heads if outputs == "list" else {"logits": heads[0], "aux": heads[1]})
    shown = r"\[\(1, 3\), \(1, 4\)\]" if outputs == "list" else r"\{'aux': \(1, 4\), 'logits': \(1, 3\)\}"
    with pytest.warns(UserWarning, match="carries no record"), pytest.raises(
            ValueError, match=r"cannot read as class scores\. Accepted: one output of shape \(batch, classes\).*"
            r"Received: outputs of shape " + shown):
        zoo.predict(model, np.zeros((28, 28), np.uint8))
    flat_output = keras.Model(inputs, keras.layers.Reshape(())(keras.layers.Dense(1)(flat)))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"Received: outputs of shape \(1,\)"):
        zoo.predict(flat_output, np.zeros((28, 28), np.uint8))
    one = keras.Model(inputs, [heads[0]])  # a one-item list is the one output
    with pytest.warns(UserWarning):
        assert len(zoo.predict(one, np.zeros((28, 28), np.uint8), top_k=3)[0].top_k) == 3


def test_a_folder_stands_for_its_pictures():
    """``zoo.predict(model, "my_pictures/")`` (and ``zoo predict cnn my_pictures/``): every PNG/JPEG in it."""
    model = zoo.load("cnn")
    found = zoo.predict(model, ROOT / "examples")
    assert [Path(p.source).name for p in found] == sorted(p.name for p in (ROOT / "examples").iterdir()
                                                          if p.suffix in (".png", ".jpg"))
    assert found[0].top_k[0][0] == "Ankle boot"
    with pytest.raises(ValueError, match=r"is a folder, not a picture.*Received: path="):
        read_image(ROOT / "examples")


def test_a_keras_file_predicts_with_a_warning_that_it_has_no_record(tmp_path):
    zoo.load("cnn").save(tmp_path / "cnn.keras")
    with pytest.warns(UserWarning, match="carries no record of its weights.*class_N"):
        zoo.predict(zoo.load(tmp_path / "cnn.keras"), ROOT / "examples" / "sneaker.png")


@pytest.mark.skipif(find_data_dir() is None, reason="Fashion-MNIST IDX files not found ($FASHION_MNIST_DIR)")
def test_preprocessing_keeps_the_accuracy_of_dataset_pictures():
    """Fashion-MNIST's own pictures, passed through zoo.predict's preprocessing (trim, fit, pad),
    score within 1.5 points of the same pictures fed to the model as they are (measured: 94.3%
    against 94.7% on the first 1,000 test images)."""
    from zoo.data import load_fashion_mnist

    x, y = load_fashion_mnist("test", limit=1000)
    model = zoo.load("cnn")
    direct = float(np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == y))
    names = list(model.zoo_metadata["label_names"])
    via = np.array([names.index(p.top_k[0][0]) for p in zoo.predict(model, list(x), top_k=1)])
    assert float(np.mean(via == y)) >= direct - 0.015


def test_draw_box_takes_every_picture_predict_takes(tmp_path):
    """Float arrays, gray arrays and palette images are drawn (not a Pillow dtype error), the box
    in red on the picture's own pixels; an existing file is never replaced silently."""
    from zoo.prediction import Prediction, draw_box

    found = Prediction("x", (("bag", 0.9),), ("bag",), box=(4.0, 4.0, 20.0, 16.0))
    palette = Image.fromarray(np.full((24, 32), 3, np.uint8)).convert("P")
    pictures = {
        "float_rgb": np.full((24, 32, 3), 100.5, np.float32),
        "gray": np.full((24, 32), 100, np.uint8),
        "palette": palette,
    }
    for name, picture in pictures.items():
        out = draw_box(picture, found, tmp_path / f"{name}.png")
        drawn = np.asarray(Image.open(out).convert("RGB"))
        assert drawn.shape == (24, 32, 3), name
        assert tuple(drawn[4, 10]) == (255, 40, 40), name  # on the box's top edge
        assert tuple(drawn[20, 28]) != (255, 40, 40), name  # outside it: the picture
    assert tuple(np.asarray(Image.open(tmp_path / "gray.png"))[20, 28]) == (100, 100, 100)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        draw_box(pictures["gray"], found, tmp_path / "gray.png")
    with pytest.raises(ValueError, match="looks scaled to"):
        draw_box(np.full((4, 4), 0.5, np.float32), found, tmp_path / "scaled.png")


def test_a_head_given_its_own_size_keeps_its_labels_and_metrics():
    """``num_classes`` equal to the weights' own keeps the head, so its labels and metrics stay;
    another size re-initialises the head (with a warning), and they go."""
    released = zoo.load("cnn").zoo_metadata
    for overrides in ({"num_classes": 10}, {"num_classes": 10, "include_top": True}):
        kept = zoo.load("cnn", **overrides).zoo_metadata
        assert kept["label_names"] == released["label_names"] and kept["metrics"] == released["metrics"]
    with pytest.warns(UserWarning, match="fresh initialisation"):
        other = zoo.load("cnn", num_classes=3).zoo_metadata
    assert "label_names" not in other and "metrics" not in other

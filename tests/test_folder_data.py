"""Image folders as training data (zoo.data.folder): classes, pictures of any kind, split, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.data.folder import ImageFolderError, load_image_folder, load_images, scan_image_folder

LIGHT_ON_DARK = {"polarity": "light_on_dark", "resize": "fit_and_pad"}


def item(value: int = 200, size: tuple[int, int] = (28, 28), background: int = 0) -> np.ndarray:
    """A gray picture: a bright rectangle (the item) on a background."""
    height, width = size
    picture = np.full((height, width), background, np.uint8)
    picture[height // 4: 3 * height // 4, width // 3: 2 * width // 3] = value
    return picture


def make_folder(root: Path, per_class: int = 5) -> Path:
    """Three classes of PNG/JPEG pictures, gray/RGB/RGBA, of different sizes, with clutter."""
    for label, name in enumerate(("sneaker", "boot", "sandal")):
        folder = root / name
        (folder / "more").mkdir(parents=True)
        for i in range(per_class):
            picture = Image.fromarray(item(60 + 40 * label, size=(28 + 4 * i, 28 + 2 * i)))
            kind = i % 4
            if kind == 0:
                picture.save(folder / f"{i}.png")
            elif kind == 1:
                picture.convert("RGB").save(folder / f"{i}.JPG", quality=95)
            elif kind == 2:
                picture.convert("RGBA").save(folder / "more" / f"{i}.png")
            else:
                picture.save(folder / f"{i}.jpeg", quality=95)
        (folder / "notes.txt").write_text("not a picture")
        (folder / ".DS_Store").write_bytes(b"\0")
    (root / ".ipynb_checkpoints").mkdir()
    (root / "README.txt").write_text("a file next to the class folders")
    return root


def test_classes_are_the_sorted_folder_names_and_every_picture_kind_loads(tmp_path):
    root = make_folder(tmp_path / "pictures")
    folder = scan_image_folder(root)
    assert folder.class_names == ("boot", "sandal", "sneaker")
    assert folder.counts == {"boot": 5, "sandal": 5, "sneaker": 5}
    assert {p.suffix for p in folder.files} == {".png", ".JPG", ".jpeg"}
    assert any(p.parent.name == "more" for p in folder.files)  # sub-folders of a class count
    x, notes = load_images(folder.files, (28, 28, 1), LIGHT_ON_DARK)
    assert x.shape == (15, 28, 28, 1) and x.dtype == np.uint8
    assert notes["resized"] == 12 and notes["converted RGB to grayscale"] >= 3
    rgb, _ = load_images(folder.files[:3], (32, 32, 3), None)
    assert rgb.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(rgb[0, ..., 0], rgb[0, ..., 2])  # a gray picture repeated as RGB


def test_bmp_webp_and_tiff_pictures_count_and_a_bad_one_is_named_once(tmp_path):
    """A class folder's BMP, WebP and TIFF pictures are examples like its PNGs (they are read when
    named to zoo predict); a picture of several frames is refused with read_image's message, which
    names the file (not wrapped in a second "Cannot use picture")."""
    root = tmp_path / "pictures"
    for name in ("boot", "sandal"):
        (root / name).mkdir(parents=True)
        for suffix in (".png", ".bmp", ".webp", ".tif", ".tiff"):
            Image.fromarray(item(90)).save(root / name / f"{name}{suffix}", **({"lossless": True} if suffix == ".webp" else {}))
    folder = scan_image_folder(root)
    assert folder.counts == {"boot": 5, "sandal": 5}
    x, _ = load_images(folder.files, (28, 28, 1), LIGHT_ON_DARK)
    assert all(np.array_equal(x[0], one) for one in x[:5])  # boot's five files: the same picture in each format
    frames = [Image.fromarray(item(v)) for v in (60, 200)]
    frames[0].save(root / "boot" / "pages.tif", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageFolderError) as error:
        load_images(scan_image_folder(root).files, (28, 28, 1), LIGHT_ON_DARK)
    assert str(error.value).startswith(f"{str(root / 'boot' / 'pages.tif')!r} holds 2 frames")


def test_linked_folders_are_walked_once_and_never_into_another_class(tmp_path):
    root = make_folder(tmp_path / "pictures")
    outside = tmp_path / "elsewhere"  # pictures kept outside the image folder, linked in: followed
    outside.mkdir()
    Image.fromarray(item()).save(outside / "extra.png")
    (root / "boot" / "extra").symlink_to(outside)
    (root / "boot" / "more" / "loop").symlink_to(root / "boot")  # back to the class folder: skipped
    (root / "boot" / "extra2").symlink_to(outside)  # the same folder by a second link: once
    (root / ".hidden").mkdir()  # no class: a link to it gives no picture two labels
    Image.fromarray(item()).save(root / ".hidden" / "h.png")
    (root / "boot" / "hidden").symlink_to(root / ".hidden")
    assert scan_image_folder(root).counts == {"boot": 7, "sandal": 5, "sneaker": 5}
    refused = {
        "all": (root, "holds pictures of the class 'sandal' too"),  # the image folder: every class
        "sandals": (root / "sandal", "holds pictures of the class 'sandal' too"),
    }
    for name, (target, message) in refused.items():
        (root / "boot" / name).symlink_to(target)
        with pytest.raises(ImageFolderError, match=rf"boot/{name}' links to .*{message}: they would be labelled 'boot'"):
            scan_image_folder(root)
        (root / "boot" / name).unlink()
    (root / "sneaker" / "extra").symlink_to(outside)  # one folder in two classes
    with pytest.raises(ImageFolderError, match="sneaker/extra' links to .*elsewhere', which holds pictures of the class 'boot'"):
        scan_image_folder(root)


def test_linked_pictures_are_read_once_and_never_in_two_classes(tmp_path):
    """Linked files were not checked as linked folders are: a picture linked twice in a class could
    lie on both sides of the validation split, and one linked into another class got two labels."""
    root = make_folder(tmp_path / "pictures")
    (root / "boot" / "copy.png").symlink_to(root / "boot" / "0.png")  # the same picture again: once
    (root / "boot" / "more" / "again.png").symlink_to(Path("..", "0.png"))
    scanned = scan_image_folder(root)
    assert scanned.counts == {"boot": 5, "sandal": 5, "sneaker": 5}
    assert len({str(p.resolve()) for p in scanned.files}) == len(scanned.files) == 15
    (root / "boot" / "y.png").symlink_to(root / "sandal" / "0.png")
    with pytest.raises(ImageFolderError, match=r"sandal/0.png' and '.*boot/y.png' are the same picture .* in the classes "
                       r"'sandal' and 'boot': it would get two labels\. Keep it in one class\. Received: data="):
        scan_image_folder(root)


def test_a_name_that_is_not_utf8_is_named_clearly(tmp_path):
    """Linux hands such names over with stand-in characters: the run's record failed with a
    UnicodeEncodeError that named no file."""
    root = make_folder(tmp_path / "pictures")
    Image.fromarray(item()).save(root / "boot" / "0.png")
    bad = root.joinpath("boot").as_posix().encode() + b"/caf\xe9.png"
    (root / "boot" / "0.png").rename(bad.decode("utf-8", "surrogateescape"))
    with pytest.raises(ImageFolderError, match=r"caf\\udce9.png' has a name that is not UTF-8 \(its bytes: b'.*caf\\xe9.png'\).*"
                       r"Rename it.*Received: data="):
        scan_image_folder(root)


def test_class_folders_given_as_links_get_one_real_folder_each(tmp_path):
    store = make_folder(tmp_path / "store")
    root = tmp_path / "pictures"
    root.mkdir()
    for name in ("boot", "sandal"):
        (root / name).symlink_to(store / name)
    assert scan_image_folder(root).counts == {"boot": 5, "sandal": 5}
    (store / "boot" / "more" / "sandals").symlink_to(store / "sandal")  # between the classes' real folders
    with pytest.raises(ImageFolderError, match="holds pictures of the class 'sandal' too"):
        scan_image_folder(root)
    (store / "boot" / "more" / "sandals").unlink()
    (root / "boots").symlink_to(root / "boot")  # two classes, one folder
    with pytest.raises(ImageFolderError, match="The class folder 'boot' .* overlaps the class folder 'boots'"):
        scan_image_folder(root)
    (root / "boots").unlink()
    (root / "all").symlink_to(root)  # a class that is the image folder
    with pytest.raises(ImageFolderError, match="The class folder 'all' .* holds the image folder itself"):
        scan_image_folder(root)


def test_a_fashion_mnist_sized_picture_keeps_its_pixels(tmp_path):
    picture = item(180)
    Image.fromarray(picture).save(tmp_path / "a.png")
    x, notes = load_images([tmp_path / "a.png"], (28, 28, 1), LIGHT_ON_DARK)
    np.testing.assert_array_equal(x[0, ..., 0], picture)
    assert notes == {}


def test_light_backgrounds_are_inverted_only_for_light_on_dark_weights(tmp_path):
    Image.fromarray(item(30, background=240)).save(tmp_path / "photo.png")  # dark item on white
    inverted, notes = load_images([tmp_path / "photo.png"], (28, 28, 1), LIGHT_ON_DARK)
    assert inverted[0, 0, 0, 0] == 15 and inverted[0, 14, 14, 0] == 225 and notes == {"inverted": 1}
    kept, notes = load_images([tmp_path / "photo.png"], (28, 28, 1), {"polarity": None})
    assert kept[0, 0, 0, 0] == 240 and notes == {}


def test_the_aspect_ratio_is_kept_and_the_rest_padded_with_background(tmp_path):
    Image.fromarray(np.full((20, 80), 100, np.uint8)).save(tmp_path / "wide.png")  # dark: not inverted
    x, _ = load_images([tmp_path / "wide.png"], (28, 28, 1), LIGHT_ON_DARK)
    rows = x[0, :, :, 0].max(axis=1)
    assert rows[0] == 0 and rows[-1] == 0 and rows[14] == 100  # bars above and below, the picture between
    assert 6 <= int((rows > 0).sum()) <= 8  # 80x20 -> 28x7


def test_the_split_is_stratified_seeded_and_deterministic(tmp_path):
    root = make_folder(tmp_path / "pictures", per_class=10)
    first = load_image_folder(root, (28, 28, 1), val_fraction=0.2, seed=3)
    again = load_image_folder(root, (28, 28, 1), val_fraction=0.2, seed=3)
    other = load_image_folder(root, (28, 28, 1), val_fraction=0.2, seed=4)
    assert first.counts == {"train": 24, "val": 6}
    assert np.bincount(first.y_val).tolist() == [2, 2, 2]
    assert first.files_val == again.files_val and first.files_val != other.files_val
    assert not set(first.files_val) & set(first.files_train)
    np.testing.assert_array_equal(first.x_val, again.x_val)


@pytest.mark.parametrize(
    "layout, message",
    [
        ("missing", "does not exist. Received: data="),
        ("file", "is a file, not a folder"),
        ("empty", "has no class sub-folders (it is empty)"),
        ("loose", "has no class sub-folders (it holds 2 file(s) (['a.png', 'b.png']) directly)"),
        ("one_class", "has one class sub-folder ('boot'); a classifier needs at least two"),
        ("empty_class", "Class folder(s) without pictures in"),
        ("unreadable", "bad.png"),
    ],
)
def test_bad_folders_raise_errors_naming_what_was_found(tmp_path, layout, message):
    root = tmp_path / "pictures"
    if layout == "file":
        root.write_text("x")
    elif layout != "missing":
        root.mkdir()
    if layout == "loose":
        for name in ("a.png", "b.png"):
            Image.fromarray(item()).save(root / name)
    if layout in ("one_class", "empty_class", "unreadable"):
        (root / "boot").mkdir()
        Image.fromarray(item()).save(root / "boot" / "a.png")
    if layout == "empty_class":
        (root / "sandal").mkdir()
        (root / "sandal" / "list.csv").write_text("a,b")
    if layout == "unreadable":
        Image.fromarray(item()).save(root / "boot" / "b.png")  # a picture to spare for the validation split
        (root / "sandal").mkdir()
        (root / "sandal" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ImageFolderError) as error:
        load_image_folder(root, (28, 28, 1))
    assert message in str(error.value)
    if layout == "empty_class":
        assert "'sandal' (found 1 other file(s): ['list.csv'])" in str(error.value)
    if layout == "unreadable":
        assert str(root / "sandal" / "bad.png") in str(error.value)


def test_every_class_keeps_a_training_picture(tmp_path):
    """A large --val-fraction took every picture of a small class into the validation split: the
    model had a head for a class it never trained on. Classes that can spare one give it instead."""
    from zoo.data.fashion_mnist import train_val_indices

    train, val = train_val_indices(np.repeat(np.arange(5), 2), val_size=5, seed=0)  # proportional: one a class
    assert sorted(np.repeat(np.arange(5), 2)[train].tolist()) == [0, 1, 2, 3, 4]
    labels = np.array([0] * 8 + [1])  # 8 and 1 pictures, 6 to validate: proportionally [5, 1], class 1's share moves
    train, val = train_val_indices(labels, val_size=6, seed=0)
    assert np.bincount(labels[val], minlength=2).tolist() == [6, 0] and set(labels[train]) == {0, 1}
    tiny = np.array([9, 0])  # --limit 2 of Fashion-MNIST: nothing to spare, the proportional split as before
    assert len(train_val_indices(tiny, val_size=1, seed=0)[1]) == 1
    root = tmp_path / "pictures"
    for name in ("boot", "sandal"):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(item(100 + i)).save(root / name / f"{i}.png")
    with pytest.raises(ImageFolderError, match=r"needs 3 of the 4 pictures, but every class must keep one to train on and "
                       r"only 2 can be spared \(pictures per class: \{'boot': 2, 'sandal': 2\}\)\. Lower --val-fraction.*"
                       r"val_fraction=0.7"):
        load_image_folder(root, (28, 28, 1), val_fraction=0.7)
    split = load_image_folder(root, (28, 28, 1), val_fraction=0.5)
    assert sorted(split.y_train.tolist()) == [0, 1] and sorted(split.y_val.tolist()) == [0, 1]


def test_bad_arguments_are_refused(tmp_path):
    root = make_folder(tmp_path / "pictures")
    with pytest.raises(ValueError, match=r"Received: val_fraction=1\.5"):
        load_image_folder(root, (28, 28, 1), val_fraction=1.5)
    with pytest.raises(ImageFolderError, match=r"must be fixed. Received: input_shape=\(None, None, 1\)"):
        load_image_folder(root, (None, None, 1))

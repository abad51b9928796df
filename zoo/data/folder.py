"""A user's image folder as training data: one sub-folder per class, PNG/JPEG (BMP, WebP, TIFF too).

Layout (as ``keras.utils.image_dataset_from_directory`` reads it)::

    my_pictures/
        boot/      a.png  b.jpg  more/c.jpeg ...
        sandal/    ...
        sneaker/   ...

Class names are the sorted sub-folder names (label ``i`` is the ``i``-th name). Every picture file
(``zoo.preprocess.IMAGE_SUFFIXES``: ``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.webp``, ``.tif``,
``.tiff``) under a class folder (sub-folders included) is one example; hidden
files and folders (``.DS_Store``, ``.ipynb_checkpoints``) and other files are ignored. Pictures
of any size, gray or colour, become inputs of the model's ``input_shape`` with
:func:`zoo.preprocess.preprocess_image` and the weights' preprocessing record (grayscale or RGB,
Fashion-MNIST's light-on-dark polarity when recorded, fit and pad keeping the aspect ratio).
They are held in memory as uint8: ``N * height * width * channels`` bytes.

Problems raise :class:`ImageFolderError` naming what was found: a missing folder, no class
sub-folders, fewer than two classes, a class without pictures, an unreadable picture.

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for name, value in (("dark", 20), ("light", 230)):
    ...     (root / name).mkdir()
    ...     for i in range(5):
    ...         Image.new("L", (30 + i, 20), value).save(root / name / f"{i}.png")
    >>> data = load_image_folder(root, (28, 28, 1), val_fraction=0.2, seed=0)
    >>> data.class_names, data.x_train.shape, data.x_val.shape, data.x_train.dtype
    (('dark', 'light'), (8, 28, 28, 1), (2, 28, 28, 1), dtype('uint8'))
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from zoo.data.fashion_mnist import train_val_indices
from zoo.preprocess import IMAGE_SUFFIXES, preprocess_image

__all__ = [
    "FolderData",
    "ImageFolder",
    "ImageFolderError",
    "load_image_folder",
    "load_images",
    "scan_image_folder",
]

#: Share of each class held out for validation unless told otherwise.
DEFAULT_VAL_FRACTION = 0.2
_SHOWN = 8  # how many names an error message lists


class ImageFolderError(ValueError):
    """An image folder cannot be used as training data; the message says what was found."""


@dataclass(frozen=True)
class ImageFolder:
    """The pictures of an image folder: class names, files and their labels (no pixels yet).

    Example:
        >>> folder = ImageFolder(Path("d"), ("a", "b"), (Path("d/a/1.png"), Path("d/b/2.png")), np.array([0, 1]))
        >>> folder.counts
        {'a': 1, 'b': 1}
    """

    root: Path
    class_names: tuple[str, ...]
    files: tuple[Path, ...]
    labels: np.ndarray

    @property
    def counts(self) -> dict[str, int]:
        """Pictures per class."""
        numbers = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(n) for name, n in zip(self.class_names, numbers)}


@dataclass
class FolderData:
    """An image folder loaded for training: train/validation arrays and what was done to them.

    ``x_*`` are uint8 ``(N, height, width, channels)``, ``y_*`` int64 labels; ``files_*`` name
    each example's picture; ``notes`` counts the preprocessing steps over all pictures
    (``inverted``, ``converted RGB to grayscale``, ``resized``, ...).
    """

    root: Path
    class_names: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    files_train: tuple[Path, ...]
    files_val: tuple[Path, ...]
    counts: dict[str, int]
    notes: dict[str, int] = field(default_factory=dict)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _shown(names: Sequence[str]) -> str:
    names = list(names)
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return f"{names[:_SHOWN]}{more}"


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _overlap(a: str, b: str) -> bool:
    """Whether one of two real folders holds the other (or they are one)."""
    return _inside(a, b) or _inside(b, a)


def _check_utf8(path: Path, root: Path) -> None:
    """Refuse a name that is not UTF-8 (Linux hands it over with stand-in characters that no record can hold)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise ImageFolderError(
            f"{str(path)!r} has a name that is not UTF-8 (its bytes: {os.fsencode(path)!r}): the run's record "
            f"cannot hold it. Rename it with UTF-8 characters. Received: data={str(root)!r}"
        ) from None


def _pictures(
    folder: Path, root: Path, class_folders: dict[str, str], claimed: dict[str, str], files: dict[str, tuple[str, Path]]
) -> tuple[list[Path], list[str]]:
    """Picture files under the class folder ``folder`` of the image folder ``root`` (recursively,
    sorted) and the other visible files' names.

    Linked folders are followed, each real folder once (a link back to a folder walked already, a
    loop, is skipped). ``class_folders`` maps each class to its real folder; a linked folder that
    overlaps another class's (holds it, or lies in it), or that another class walked already
    (``claimed``: real folder -> class, shared by the classes), would give pictures two labels,
    and is refused. Linked files likewise (``files``: real file -> class and the path it was
    found at): one picture reached twice in a class is read once (it would lie on both sides of
    the validation split), a picture of another class is refused.
    """
    pictures, others = [], []
    label = folder.name
    walked = {class_folders[label]}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        kept = []
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            real = os.path.realpath(os.path.join(dirpath, name))
            if real in walked:
                continue
            other = claimed.get(real) or next(
                (c for c, r in class_folders.items() if c != label and _overlap(real, r)), None)
            if other is not None and other != label:
                raise ImageFolderError(
                    f"{str(Path(dirpath, name))!r} links to {real!r}, which holds pictures of the class {other!r} "
                    f"too: they would be labelled {label!r} as well. Remove the link, or copy the pictures that "
                    f"belong to {label!r}. Received: data={str(root)!r}"
                )
            walked.add(real)
            claimed[real] = label
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            _check_utf8(path, root)
            if path.suffix.lower() in IMAGE_SUFFIXES:
                real = os.path.realpath(path)
                first = files.setdefault(real, (label, path))
                if first[0] != label:
                    raise ImageFolderError(
                        f"{str(path)!r} and {str(first[1])!r} are the same picture ({real!r}) in the classes "
                        f"{label!r} and {first[0]!r}: it would get two labels. Keep it in one class. "
                        f"Received: data={str(root)!r}"
                    )
                if first[1] == path:
                    pictures.append(path)
            else:
                others.append(str(path.relative_to(folder)))
    return pictures, others


def scan_image_folder(root: str | os.PathLike) -> ImageFolder:
    """List the classes (sorted sub-folder names) and pictures of an image folder.

    Raises :class:`ImageFolderError` (a ``ValueError``) when ``root`` is missing or not a folder,
    holds no class sub-folders, fewer than two, or a class holds no picture.

    Example:
        >>> scan_image_folder("/nonexistent/pictures")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        zoo.data.folder.ImageFolderError: The image folder '/nonexistent/pictures' does not exist. ...
    """
    root = Path(root).expanduser()
    received = f"Received: data={str(root)!r}"
    if not root.exists():
        raise ImageFolderError(f"The image folder {str(root)!r} does not exist. {received}")
    if not root.is_dir():
        raise ImageFolderError(
            f"{str(root)!r} is a file, not a folder: give a folder with one sub-folder per class. {received}"
        )
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and _visible(p))
    if not classes:
        loose = sorted(p.name for p in root.iterdir() if p.is_file() and _visible(p))
        found = f"it holds {len(loose)} file(s) ({_shown(loose)}) directly" if loose else "it is empty"
        raise ImageFolderError(
            f"The image folder {str(root)!r} has no class sub-folders ({found}). Put each class's "
            f"pictures in a sub-folder named after the class, e.g. {str(root / 'boot')!r}. {received}"
        )
    if len(classes) < 2:
        raise ImageFolderError(
            f"The image folder {str(root)!r} has one class sub-folder ({classes[0]!r}); a classifier "
            f"needs at least two. {received}"
        )
    class_folders = {name: os.path.realpath(root / name) for name in classes}
    real_root = os.path.realpath(root)
    for index, name in enumerate(classes):  # class folders given as links: one real folder a class
        clash = [other for other in classes[index + 1:] if _overlap(class_folders[name], class_folders[other])]
        if clash or _inside(real_root, class_folders[name]):
            raise ImageFolderError(
                f"The class folder {name!r} of {str(root)!r} is (or links to) {class_folders[name]!r}, which "
                f"{'holds the image folder itself' if not clash else f'overlaps the class folder {clash[0]!r}'}: "
                f"its pictures would get two labels. Give each class a folder of its own. {received}"
            )
    claimed = {real: name for name, real in class_folders.items()}
    seen: dict[str, tuple[str, Path]] = {}
    files: list[Path] = []
    labels: list[int] = []
    empty: list[str] = []
    for label, name in enumerate(classes):
        _check_utf8(root / name, root)
        pictures, others = _pictures(root / name, root, class_folders, claimed, seen)
        if not pictures:
            found = f"found {len(others)} other file(s): {_shown(others)}" if others else "it is empty"
            empty.append(f"{name!r} ({found})")
        files += pictures
        labels += [label] * len(pictures)
    if empty:
        raise ImageFolderError(
            f"Class folder(s) without pictures in {str(root)!r}: {'; '.join(empty)}. Every class needs at "
            f"least one {'/'.join(IMAGE_SUFFIXES)} file; remove empty class folders. {received}"
        )
    return ImageFolder(root, tuple(classes), tuple(files), np.asarray(labels, np.int64))


def _note_kind(note: str) -> str:
    """A preprocessing note without its figures (``resized 30x20 to ...`` -> ``resized``)."""
    return note.split(" (")[0] if note.startswith(("inverted", "converted", "repeated")) else note.split(" ")[0]


def load_images(
    files: Sequence[str | os.PathLike],
    input_shape: Sequence[int | None],
    preprocessing: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Read and preprocess pictures into one uint8 array ``(N, height, width, channels)``.

    ``preprocessing`` is a weights' record (``zoo.preprocess``: ``polarity``, ``resize``).
    Returns the array and how many pictures each preprocessing step touched. An unreadable
    picture raises :class:`ImageFolderError` naming the file.

    Example:
        >>> load_images([], (28, 28, 1))[0].shape
        (0, 28, 28, 1)
    """
    height, width, channels = input_shape
    if height is None or width is None:
        raise ImageFolderError(
            "Pictures are resized to the model's input size, which must be fixed. "
            f"Received: input_shape={tuple(input_shape)!r}"
        )
    out = np.empty((len(files), int(height), int(width), int(channels)), np.uint8)
    notes: Counter = Counter()
    for index, path in enumerate(files):
        try:
            result = preprocess_image(Path(path), (int(height), int(width), int(channels)), preprocessing)
        except (ValueError, OSError) as error:
            message = str(error)
            if str(path) in message:  # read_image's messages name the file already
                raise ImageFolderError(message) from None
            raise ImageFolderError(f"Cannot use picture {str(path)!r}: {message}") from None
        out[index] = np.clip(np.rint(result.array), 0, 255).astype(np.uint8)
        notes.update({_note_kind(note) for note in result.notes})
    return out, dict(sorted(notes.items()))


def load_image_folder(
    root: str | os.PathLike,
    input_shape: Sequence[int | None],
    *,
    preprocessing: Mapping[str, Any] | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
) -> FolderData:
    """Scan, read, preprocess and split an image folder (see the module's docstring).

    The validation split takes ``val_fraction`` of the pictures (at least one), stratified by
    class and fixed by ``seed`` (``zoo.data.train_val_indices``); every class keeps at least one
    training picture (a folder that cannot spare enough is refused).

    Example:
        >>> record = {"polarity": "light_on_dark"}                                     # doctest: +SKIP
        >>> load_image_folder("my_pictures", (28, 28, 1), preprocessing=record).counts  # doctest: +SKIP
        {'train': 96, 'val': 24}
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise ValueError(f"`val_fraction` must be a number in (0, 1). Received: val_fraction={val_fraction!r}")
    folder = scan_image_folder(root)
    total = len(folder.files)
    if total < 2:
        raise ImageFolderError(
            f"{str(folder.root)!r} holds {total} picture(s); a train and a validation split need at "
            f"least two. Received: data={str(folder.root)!r}"
        )
    val_size = min(total - 1, max(1, int(round(val_fraction * total))))
    spare = sum(count - 1 for count in folder.counts.values())  # every class keeps a training picture
    if val_size > spare:
        raise ImageFolderError(
            f"The validation split needs {val_size} of the {total} pictures, but every class must keep one to train "
            f"on and only {spare} can be spared (pictures per class: {folder.counts}). Lower --val-fraction or add "
            f"pictures. Received: data={str(folder.root)!r}, val_fraction={val_fraction!r}"
        )
    train_idx, val_idx = train_val_indices(folder.labels, val_size=val_size, seed=seed, stratify=True)
    x, notes = load_images(folder.files, input_shape, preprocessing)
    files = np.asarray(folder.files, dtype=object)
    return FolderData(
        root=folder.root,
        class_names=folder.class_names,
        x_train=x[train_idx],
        y_train=folder.labels[train_idx],
        x_val=x[val_idx],
        y_val=folder.labels[val_idx],
        files_train=tuple(files[train_idx]),
        files_val=tuple(files[val_idx]),
        counts={"train": len(train_idx), "val": len(val_idx)},
        notes=notes,
    )

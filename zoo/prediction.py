"""Predict a user's pictures with any zoo model: top-k label names, and the localizer's box.

``predict`` loads the model (any handle ``zoo.load`` takes, or a model already loaded), turns
each picture into the model's input with the preprocessing recorded with its weights
(``zoo.preprocess``), and returns one :class:`Prediction` per picture: the top-k label names with
probabilities, the predicted box in the original picture's pixels for the localizer, and notes
saying what was done to the picture. ``draw_box`` writes a picture with its box drawn.

Example:
    >>> import numpy as np
    >>> item = np.zeros((28, 28), np.uint8); item[4:24, 8:20] = 200
    >>> [p] = predict("cnn", [item], top_k=2)
    >>> len(p.top_k), p.top_k[0][0] in p.label_names
    (2, True)
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from zoo._warnings import warn_caller
from zoo.api import load
from zoo.atomic import atomic_path
from zoo.preprocess import IMAGE_SUFFIXES, Preprocessed, as_picture, preprocess_image, preprocessing_of

__all__ = ["Prediction", "draw_box", "list_pictures", "predict", "prepare_batch"]


@dataclass(frozen=True)
class Prediction:
    """One picture's prediction.

    ``top_k``: ``(label name, probability)`` pairs, most likely first. ``box``: for the localizer,
    ``(x0, y0, x1, y1)`` in the original picture's pixels (``None`` otherwise). ``notes``: what
    preprocessing did (grayscale, inverted, resized).
    """

    source: str
    top_k: tuple[tuple[str, float], ...]
    label_names: tuple[str, ...]
    box: tuple[float, float, float, float] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "source": self.source,
            "top_k": [{"label": label, "probability": round(p, 6)} for label, p in self.top_k],
            "box": None if self.box is None else [round(v, 2) for v in self.box],
            "notes": list(self.notes),
        }


def _label_names(model: keras.Model, num_classes: int) -> tuple[str, ...]:
    names = tuple((getattr(model, "zoo_metadata", None) or {}).get("label_names") or ())
    if len(names) == num_classes:
        return names
    return tuple(f"class_{i}" for i in range(num_classes))


def prepare_batch(
    model: keras.Model, images: Sequence[Any]
) -> tuple[np.ndarray, list[Preprocessed]]:
    """Preprocess ``images`` (paths, PIL images or arrays) for ``model``: a batch and the details.

    Example:
        >>> from zoo.api import load
        >>> batch, details = prepare_batch(load("cnn"), ["examples/sneaker.png"])
        >>> batch.shape
        (1, 28, 28, 1)
    """
    images = list_pictures(images)
    if len(images) == 0:
        raise ValueError("Nothing to predict. Received: an empty list of images")
    metadata = getattr(model, "zoo_metadata", None)
    if not metadata:
        warn_caller(
            f"Model {model.name!r} carries no record of its weights (a .keras file, a model zoo.load did not "
            "make, or no weights): pictures are only converted to its input's channels and fitted to its size, "
            "with no inversion or trimming its training may have used, and labels show as class_N. Load it "
            "from a zoo folder or a registered name to predict as its weights were trained."
        )
    preprocessing = preprocessing_of(metadata or {})
    input_shape = tuple(model.inputs[0].shape[1:])
    details = [preprocess_image(image, input_shape, preprocessing) for image in images]
    shapes = {d.array.shape for d in details}
    if len(shapes) > 1:
        raise ValueError(
            "This model takes pictures of any size, but a batch needs one size: predict them one at "
            f"a time. Received: sizes {sorted(shapes)}"
        )
    return np.stack([d.array for d in details]), details


def _as_list(images: Any) -> list[Any]:
    """One picture (a path, a PIL image, a 2-D/3-D array) or a sequence / 4-D batch of them."""
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]


def list_pictures(images: Sequence[Any] | Any) -> list[Any]:
    """``images`` as a list of pictures, where a folder stands for the picture files in it (sorted
    by name; hidden files and sub-folders left out), as ``zoo predict cnn my_pictures/`` means.

    Example:
        >>> [Path(p).name for p in list_pictures(["examples"])][:2]
        ['ankle-boot-on-white.jpg', 'bag-wide.png']
    """
    pictures: list[Any] = []
    for item in _as_list(images):
        folder = Path(item).expanduser() if isinstance(item, (str, os.PathLike)) else None
        if folder is None or not folder.is_dir():
            pictures.append(item)
            continue
        found = sorted(
            path for path in folder.iterdir()
            if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES
        )
        if not found:
            raise ValueError(
                f"{str(item)!r} is a folder with no picture in it. Accepted: {'/'.join(IMAGE_SUFFIXES)} files, or "
                f"a folder holding some. Received: {str(item)!r}"
            )
        pictures.extend(found)
    return pictures


def _box_in_original(box: np.ndarray, detail: Preprocessed) -> tuple[float, float, float, float]:
    height, width = detail.array.shape[:2]
    cx, cy, w, h = (float(v) for v in box)
    y0, x0 = detail.to_original((cy - h / 2) * height, (cx - w / 2) * width)
    y1, x1 = detail.to_original((cy + h / 2) * height, (cx + w / 2) * width)
    original_h, original_w = detail.original_size
    clip = lambda v, top: min(max(v, 0.0), float(top))  # noqa: E731
    return clip(x0, original_w), clip(y0, original_h), clip(x1, original_w), clip(y1, original_h)


def _class_and_boxes(model: keras.Model, outputs: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The class scores (and boxes, for a localizer) among a model's outputs; anything else is refused."""
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        outputs = outputs[0]
    if isinstance(outputs, dict) and "class" in outputs:
        return outputs["class"], outputs.get("box")
    if isinstance(outputs, np.ndarray) and outputs.ndim == 2:
        return outputs, None
    shown = ({key: np.shape(outputs[key]) for key in sorted(outputs)} if isinstance(outputs, dict)
             else [np.shape(value) for value in outputs] if isinstance(outputs, (list, tuple)) else np.shape(outputs))
    raise ValueError(
        f"Model {model.name!r} gives outputs zoo cannot read as class scores. Accepted: one output of shape "
        "(batch, classes), or a dict with a 'class' output (and a 'box' output for a localizer). "
        f"Received: outputs of shape {shown}"
    )


def predict(
    model: str | os.PathLike | keras.Model,
    images: Sequence[Any] | Any,
    *,
    top_k: int = 5,
    batch_size: int = 32,
    verbose: int | str = 0,
) -> list[Prediction]:
    """Predict pictures with ``model`` (a handle for ``zoo.load`` or a loaded model).

    ``images``: paths to picture files (PNG, JPEG, BMP, WebP, TIFF), PIL images or arrays in [0, 255] (gray or RGB, any
    size), or one of them. Each is preprocessed as the weights' record says. ``verbose`` is
    ``model.predict``'s (``"auto"`` shows Keras' progress bar).

    Example:
        >>> [p] = predict("cnn", "examples/sneaker.png", top_k=3)
        >>> p.top_k[0][0], len(p.top_k)
        ('Sneaker', 3)
    """
    for name, value in (("top_k", top_k), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    top_k, batch_size = int(top_k), int(batch_size)
    if not isinstance(model, keras.Model):
        model = load(model)
    images = list_pictures(images)
    batch, details = prepare_batch(model, images)
    outputs = model.predict(batch, batch_size=batch_size, verbose=verbose)
    outputs = keras.tree.map_structure(np.asarray, outputs)
    probs, boxes = _class_and_boxes(model, outputs)
    names = _label_names(model, probs.shape[-1])
    sources = images
    results = []
    for index, (row, detail) in enumerate(zip(probs, details)):
        order = np.argsort(-row)[: min(top_k, len(row))]
        source = sources[index] if index < len(sources) else index
        results.append(
            Prediction(
                source=str(source) if isinstance(source, (str, os.PathLike)) else f"image {index}",
                top_k=tuple((names[i], float(row[i])) for i in order),
                label_names=names,
                box=None if boxes is None else _box_in_original(boxes[index], detail),
                notes=detail.notes,
            )
        )
    return results


def draw_box(
    image: str | os.PathLike | np.ndarray | Any, prediction: Prediction, out: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Write ``image`` with ``prediction``'s box and top label drawn, as a PNG at ``out``.

    ``image`` is anything :func:`zoo.predict` takes: a file, a PIL image or an array of pixels
    in [0, 255] (any numeric dtype).

    Refuses an existing ``out`` unless ``overwrite=True``; writes atomically.

    Example:
        >>> import tempfile
        >>> [p] = predict("xception_localizer", "examples/bag-wide.png")
        >>> draw_box("examples/bag-wide.png", p, f"{tempfile.mkdtemp()}/bag.box.png").name
        'bag.box.png'
    """
    from PIL import Image, ImageDraw

    if prediction.box is None:
        raise ValueError(
            f"Only a localizer's prediction has a box to draw. Received: a prediction of {prediction.source!r} "
            "without one"
        )
    out = Path(out).expanduser()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{str(out)!r} exists; pass overwrite=True (--overwrite) to replace it. Received: out={str(out)!r}")
    array = np.clip(np.rint(as_picture(image)), 0, 255).astype(np.uint8)
    picture = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).convert("RGB")
    pen = ImageDraw.Draw(picture)
    width = max(1, round(max(picture.size) / 100))
    pen.rectangle(prediction.box, outline=(255, 40, 40), width=width)
    label, probability = prediction.top_k[0]
    pen.text((prediction.box[0] + width, prediction.box[1] + width), f"{label} {probability:.0%}", fill=(255, 40, 40))
    with atomic_path(out) as temporary:
        picture.save(temporary, format="PNG")
    return out

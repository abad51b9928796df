"""A user's picture -> a model's input, by the preprocessing recorded with the weights.

The weights' record (``WeightSpec.preprocessing`` or a folder's ``metadata.json``) says how
pictures were presented in training. Four steps, each reported in :attr:`Preprocessed.notes`:

* colour: converted to grayscale (ITU-R 601 luma) for a 1-channel model, to RGB for 3 channels;
* polarity (``"light_on_dark"``, Fashion-MNIST's): a light item on a dark background. A picture
  whose border is light on average (a product photo on white) is inverted;
* trim (Fashion-MNIST's conversion trimmed each product photo to the product): the picture is
  cropped to the pixels that differ from its background by more than 10% of the range;
* size (``"fit_and_pad"``): resized to fit the input keeping its aspect ratio, then centred on a
  background-coloured canvas (black after the polarity step).

Pixels stay in [0, 255]: every zoo model rescales inside itself.

Example:
    >>> import numpy as np
    >>> photo = np.full((40, 20, 3), 255, np.uint8); photo[10:30, 5:15] = 30   # dark item on white
    >>> out = preprocess_image(photo, (28, 28, 1), {"polarity": "light_on_dark"})
    >>> out.array.shape, out.inverted, round(float(out.array[14, 14, 0]))
    ((28, 28, 1), True, 225)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "POLARITIES",
    "Preprocessed",
    "as_picture",
    "border_mean",
    "preprocess_image",
    "preprocessing_of",
    "read_image",
]

#: Picture files a folder stands for (``zoo predict FOLDER``, training folders), torchvision's list less
#: the rare ones; :func:`read_image` tries any file named directly that Pillow opens.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
#: Accepted ``polarity`` values: ``None`` keeps the picture as it is.
POLARITIES = ("light_on_dark", None)
RESIZE_MODES = ("fit_and_pad",)
_BORDER = 2


@dataclass(frozen=True)
class Preprocessed:
    """A picture made into one model input, and what was done to it.

    ``array`` is ``(height, width, channels)`` float32 in [0, 255]. ``scale`` and ``offset``
    (y, x) map the input's pixel coordinates back to the original picture:
    ``original = (input - offset) / scale``.
    """

    array: np.ndarray
    original_size: tuple[int, int]
    inverted: bool
    scale: float
    offset: tuple[float, float]
    notes: tuple[str, ...]

    def to_original(self, y: float, x: float) -> tuple[float, float]:
        """Input pixel coordinates -> the original picture's."""
        return (y - self.offset[0]) / self.scale, (x - self.offset[1]) / self.scale


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a picture file (PNG, JPEG, BMP, WebP, TIFF: one Pillow reads) as ``(height, width, channels)`` uint8.

    Gray pictures give 1 channel, colour ones 3 (an alpha channel is composited on white). A file
    of several frames (an animation, a multi-page TIFF) is refused rather than read as its first
    frame; a phone's multi-picture JPEG (MPO) is read as its main picture.

    Example:
        >>> read_image("missing.png")
        Traceback (most recent call last):
        ...
        FileNotFoundError: No picture at 'missing.png'. Received: path='missing.png'
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(
            f"{str(path)!r} is a folder, not a picture: pass the pictures in it (zoo.predict and `zoo predict` "
            f"take a folder for all of them). Received: path={str(path)!r}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"No picture at {str(path)!r}. Received: path={str(path)!r}")
    try:
        with Image.open(path) as image:
            image.load()
            # A phone photo stores its rotation in the EXIF orientation tag: turn it upright.
            upright = ImageOps.exif_transpose(image)
            frames = getattr(image, "n_frames", 1)
            several = frames > 1 and image.format != "MPO"  # MPO: a JPEG with a preview or depth map after it
    except Image.DecompressionBombError as error:
        raise ValueError(
            f"{str(path)!r} is too large to read safely ({error}). Accepted: pictures of at most "
            f"{Image.MAX_IMAGE_PIXELS} pixels (PIL.Image.MAX_IMAGE_PIXELS). Received: path={str(path)!r}"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(
            f"Cannot read {str(path)!r} as a picture ({error}). Accepted: picture files "
            f"({', '.join(IMAGE_SUFFIXES)}). Received: path={str(path)!r}"
        ) from None
    if several:
        raise ValueError(
            f"{str(path)!r} holds {frames} frames (an animation or a multi-page file); zoo reads one "
            f"picture a file: save the frame you want as its own file. Received: path={str(path)!r}"
        )
    try:
        return _from_pil(upright)
    except ValueError as error:  # 32-bit pixels outside [0, 255]: say which file
        raise ValueError(f"Cannot use {str(path)!r} as a picture: {error}") from None


def _from_pil(image: Any) -> np.ndarray:
    """A PIL image as (height, width, 1 or 3) uint8; transparency is composited on white."""
    from PIL import Image

    if image.mode.startswith("I;16"):  # 16-bit grayscale (e.g. a 16-bit PNG): 65535 is white
        raw = np.asarray(image, np.float64)
        array = np.round(raw * (255.0 / 65535.0)).astype(np.uint8)
        if isinstance(image.info.get("transparency"), int):  # one transparent gray value: white there
            array[raw == image.info["transparency"]] = 255
        return array[..., None]
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    if image.mode in ("I", "F"):  # 32-bit pixels have no fixed white: [0, 255] is checked like an array's
        return np.round(as_picture(np.asarray(image))).astype(np.uint8)
    else:
        array = np.asarray(image.convert("L" if image.mode in ("L", "1") else "RGB"))
    return array[..., None] if array.ndim == 2 else array


def as_picture(image: Any) -> np.ndarray:
    """Any accepted picture as a float32 (height, width, 1 or 3) array of pixels in [0, 255].

    ``image`` is a file path, a PIL image or an array of shape (height, width) or
    (height, width, 1, 3 or 4); transparency is composited on white. Anything else (another
    shape or dtype, NaN, values outside [0, 255], floats that look scaled to [0, 1]) is refused
    with a ``ValueError`` that says what was received.

    Example:
        >>> as_picture(np.zeros((2, 3), np.uint8)).shape
        (2, 3, 1)
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(image).astype(np.float32)
    if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image, turned upright like a file's
        from PIL import ImageOps

        return _from_pil(ImageOps.exif_transpose(image)).astype(np.float32)
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise ValueError(
            "A picture is (height, width) or (height, width, channels) with 1, 3 or 4 channels. "
            f"Received: shape={array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"A picture holds real numbers. Received: dtype={array.dtype}")
    if not np.all(np.isfinite(array)):
        raise ValueError("A picture's pixels must be finite numbers in [0, 255]. Received: NaN or inf values")
    if array.min() < 0 or array.max() > 255:
        raise ValueError(
            "Pixels are expected in [0, 255]. "
            f"Received: values from {float(array.min())} to {float(array.max())}"
        )
    if np.issubdtype(array.dtype, np.floating) and 0 < array.max() <= 1:
        raise ValueError(
            "Pixels are expected in [0, 255]; this float picture looks scaled to [0, 1] already "
            "(multiply it by 255). "
            f"Received: dtype={array.dtype}, values from {float(array.min())} to {float(array.max())}"
        )
    array = array.astype(np.float32)
    if array.shape[-1] == 4:  # RGBA: composited on white, like a file
        alpha = array[..., 3:] / 255.0
        array = array[..., :3] * alpha + 255.0 * (1.0 - alpha)
    return array


def _to_channels(array: np.ndarray, channels: int) -> tuple[np.ndarray, str | None]:
    have = array.shape[-1]
    if channels == 1 and have == 3:
        luma = array @ np.array([0.299, 0.587, 0.114], np.float32)
        return luma[..., None], "converted RGB to grayscale"
    if channels == 3 and have == 1:
        return np.repeat(array, 3, axis=-1), "repeated the gray channel as RGB"
    if channels not in (1, 3):
        raise ValueError(f"Models take 1 or 3 channels. Received: channels={channels}")
    return array, None


def border_mean(array: np.ndarray, width: int = _BORDER) -> float:
    """The mean pixel value of a picture's outer frame, ``width`` pixels wide.

    Example:
        >>> border_mean(np.pad(np.zeros((4, 4, 1)), 2, constant_values=255)[..., 2:3])
        255.0
    """
    width = max(1, min(width, array.shape[0] // 2, array.shape[1] // 2))
    mask = np.ones(array.shape[:2], bool)
    mask[width:-width or None, width:-width or None] = False
    if not mask.any():
        mask[:] = True
    return float(array[mask].mean())


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    # Each channel as a 32-bit float image (PIL mode "F"): resized without rounding to uint8.
    planes = [
        np.asarray(Image.fromarray(np.ascontiguousarray(array[..., c], np.float32)).resize(
            (width, height), Image.Resampling.BILINEAR
        ))
        for c in range(array.shape[-1])
    ]
    return np.clip(np.stack(planes, axis=-1), 0, 255).astype(np.float32)


def preprocessing_of(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The preprocessing record of a weights' ``metadata`` (a folder's or a weight tag's).

    Records written before ``polarity``, ``trim`` and ``resize`` were recorded (zoo 0.1 folders)
    had ``"resize": None``; for Fashion-MNIST weights they mean Fashion-MNIST's presentation
    (a light item on black, trimmed to the item; the localizer's canvases are not trimmed).

    Example:
        >>> preprocessing_of({"dataset": "fashion_mnist", "preprocessing": {"resize": None}})["polarity"]
        'light_on_dark'
    """
    record = dict(metadata.get("preprocessing") or {})
    dataset = str(metadata.get("dataset") or "")
    if dataset.startswith("fashion_mnist"):
        record.setdefault("polarity", "light_on_dark")
        record.setdefault("trim", dataset == "fashion_mnist")
    if not record.get("resize"):
        record["resize"] = "fit_and_pad"
    return record


def preprocess_image(
    image: Any,
    input_shape: Sequence[int | None],
    preprocessing: Mapping[str, Any] | None = None,
) -> Preprocessed:
    """Turn a picture (path, PIL image or array in [0, 255]) into one input of ``input_shape``.

    ``preprocessing`` is the weights' record: ``polarity`` (``"light_on_dark"`` or ``None``)
    ``trim`` (crop to the item) and ``resize`` (``"fit_and_pad"``, the only mode). A ``None`` height or
    width in ``input_shape`` keeps the picture's own size.

    Example:
        >>> out = preprocess_image(np.zeros((56, 28), np.uint8), (28, 28, 1))
        >>> out.array.shape, out.scale, out.notes
        ((28, 28, 1), 0.5, ('resized 28x56 to 14x28 (aspect ratio kept)', 'padded to 28x28'))
    """
    preprocessing = dict(preprocessing or {})
    polarity = preprocessing.get("polarity")
    mode = preprocessing.get("resize") or "fit_and_pad"
    if polarity not in POLARITIES:
        raise ValueError(f"`polarity` must be one of {POLARITIES}. Received: polarity={polarity!r}")
    if mode not in RESIZE_MODES:
        raise ValueError(f"`resize` must be one of {RESIZE_MODES}. Received: resize={mode!r}")
    if len(input_shape) != 3:
        raise ValueError(f"`input_shape` is (height, width, channels). Received: input_shape={tuple(input_shape)}")
    array = as_picture(image)
    original = (int(array.shape[0]), int(array.shape[1]))
    notes: list[str] = []
    array, note = _to_channels(array, int(input_shape[2]))
    if note:
        notes.append(note)
    inverted = False
    if polarity == "light_on_dark":
        border = border_mean(array)
        if border > 127.5:
            array = 255.0 - array
            inverted = True
            notes.append(f"inverted (light background: border mean {border:.0f} > 127)")
    crop = (0, 0)
    if preprocessing.get("trim"):
        array, crop, note = _trim(array)
        if note:
            notes.append(note)
    height = int(input_shape[0] or original[0])
    width = int(input_shape[1] or original[1])
    size = (int(array.shape[0]), int(array.shape[1]))
    if (height, width) == size:
        offset = (-crop[0] * 1.0, -crop[1] * 1.0)
        return Preprocessed(array.astype(np.float32), original, inverted, 1.0, offset, tuple(notes))
    scale = min(height / size[0], width / size[1])
    new_h = max(1, round(size[0] * scale))
    new_w = max(1, round(size[1] * scale))
    resized = _resize(array, new_h, new_w)
    background = border_mean(array) if polarity is None else 0.0
    canvas = np.full((height, width, array.shape[-1]), background, np.float32)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = resized
    if (new_h, new_w) != size:
        notes.append(f"resized {size[1]}x{size[0]} to {new_w}x{new_h} (aspect ratio kept)")
    if (new_h, new_w) != (height, width):
        notes.append(f"padded to {width}x{height}")
    offset = (top - crop[0] * scale, left - crop[1] * scale)
    return Preprocessed(canvas, original, inverted, scale, offset, tuple(notes))


def _trim(array: np.ndarray) -> tuple[np.ndarray, tuple[int, int], str | None]:
    """Crop to the pixels that differ from the border's value by more than 10% of the range."""
    background = border_mean(array)
    distance = np.abs(array - background).max(axis=-1)
    rows = np.flatnonzero(distance.max(axis=1) > 25.5)
    cols = np.flatnonzero(distance.max(axis=0) > 25.5)
    if rows.size == 0 or cols.size == 0:
        return array, (0, 0), None
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if (top, left, bottom, right) == (0, 0, array.shape[0], array.shape[1]):
        return array, (0, 0), None
    note = f"trimmed to the item ({right - left}x{bottom - top} at x={left}, y={top})"
    return array[top:bottom, left:right], (top, left), note

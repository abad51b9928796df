"""Argument checks shared by the model builders: clear errors instead of deep Keras traces."""

from __future__ import annotations

from typing import Any, Sequence


def check_num_classes(num_classes: Any) -> int:
    """Return ``num_classes`` if it is an integer >= 2, else raise ``ValueError``."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            "`num_classes` must be an integer >= 2 (a softmax over one class is constant). "
            f"Received: num_classes={num_classes!r}"
        )
    return num_classes


def check_input_shape(input_shape: Any, *, min_size: int = 1, name: str = "model") -> tuple:
    """Return ``input_shape`` as a ``(height, width, channels)`` tuple.

    Channels is a positive int; height and width are positive ints, or ``None`` for a model
    that takes any size (fully convolutional, as with Keras Applications). Raises
    ``ValueError`` when the shape is malformed or smaller than ``min_size`` pixels.
    """

    def positive(d: Any) -> bool:
        return isinstance(d, int) and not isinstance(d, bool) and d > 0

    ok = (
        isinstance(input_shape, Sequence)
        and len(input_shape) == 3
        and all(d is None or positive(d) for d in input_shape[:2])
        and positive(input_shape[2])
    )
    if not ok:
        raise ValueError(
            f"`input_shape` of {name} must be (height, width, channels): positive integers, "
            f"height and width may be None (any size). Received: input_shape={input_shape!r}"
        )
    height, width, _ = input_shape
    if any(d is not None and d < min_size for d in (height, width)):
        raise ValueError(
            f"{name} needs inputs of at least {min_size}x{min_size} pixels. "
            f"Received: input_shape={tuple(input_shape)!r}"
        )
    return tuple(input_shape)


def check_rate(name: str, value: Any) -> float:
    """Return a rate in [0, 1), else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a number in [0, 1). Received: {name}={value!r}")
    return float(value)


#: Dtype policies every architecture accepts (Keras' names; a ``keras.DTypePolicy`` works too).
DTYPE_POLICIES = ("float32", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16")


def check_dtype(dtype: Any) -> str | None:
    """Return ``dtype`` as a policy name (``None``: Keras' global policy), else ``ValueError``.

    Example:
        >>> check_dtype(None), check_dtype("mixed_bfloat16")
        (None, 'mixed_bfloat16')
    """
    if dtype is None:
        return None
    name = getattr(dtype, "name", dtype)
    if name not in DTYPE_POLICIES:
        raise ValueError(f"`dtype` must be None or one of {list(DTYPE_POLICIES)}. Received: dtype={dtype!r}")
    return name


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError``."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is ``True`` or ``False``, else raise ``ValueError``.

    Example:
        >>> check_bool("include_top", False)
        False
    """
    if value is not True and value is not False:
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return value

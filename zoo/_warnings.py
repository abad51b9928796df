"""Warnings attributed to the user's line: the first caller outside the ``zoo`` package."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def warn_caller(message: str) -> None:
    """Warn with ``message`` (a ``UserWarning``) at the first caller outside zoo, however deep in zoo
    it is raised (a fixed ``stacklevel`` is wrong for every other call path).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_caller("checked")
        >>> str(caught[0].message)
        'checked'
    """
    frame, level = inspect.currentframe(), 1
    while frame is not None and Path(frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, stacklevel=level)

"""Run-folder figures, drawn with matplotlib's Agg canvas (no pyplot, no global backend change).

matplotlib is imported lazily, inside each function, so ``import zoo`` stays light.

Example:
    >>> plot_history("runs/cnn-0/history.csv", "runs/cnn-0/training_curves.png")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zoo.atomic import atomic_path

__all__ = ["BOXES_NAME", "CONFUSION_NAME", "CURVES_NAME", "PLOT_NAMES", "plot_boxes", "plot_confusion_matrix",
           "plot_history", "read_history"]

#: File names of the figures a run writes beside its weights (and its card shows). Fixed, so that a
#: push that writes a card anew can drop the figures of the card it replaces and nothing else.
CURVES_NAME = "training_curves.png"
CONFUSION_NAME = "confusion_matrix.png"
BOXES_NAME = "boxes.png"
PLOT_NAMES = (CURVES_NAME, CONFUSION_NAME, BOXES_NAME)


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | os.PathLike) -> None:
    """Save ``figure`` atomically (``zoo.atomic``), in the format that ``path``'s suffix names."""
    suffix = Path(path).suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format=suffix)


def read_history(path: str | os.PathLike) -> dict[str, list[float]]:
    """Columns of a CSVLogger file as float lists (``epoch`` included).

    Example:
        >>> read_history("runs/cnn-0/history.csv")["epoch"][:2]  # doctest: +SKIP
        [0.0, 1.0]
    """
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                columns.setdefault(key, []).append(float("nan"))
    return columns


def plot_history(history: str | os.PathLike | dict[str, list[float]], path: str | os.PathLike) -> Path:
    """Loss and metric curves (train vs validation), one panel per quantity.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> plot_history({"epoch": [0, 1], "loss": [2.0, 1.0], "val_loss": [2.1, 1.2]}, folder / "c.png").name
        'c.png'
    """
    columns = history if isinstance(history, dict) else read_history(history)
    epochs = np.asarray(columns.get("epoch", []), float) + 1
    names = [k for k in columns if k not in ("epoch", "learning_rate") and not k.startswith("val_")]
    panels = names + (["learning_rate"] if "learning_rate" in columns else [])
    figure = _figure(4.0 * max(len(panels), 1), 3.2)
    for i, name in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), i)
        axes.plot(epochs, columns[name], marker="o", markersize=3, label="train" if name != "learning_rate" else "lr")
        if f"val_{name}" in columns:
            axes.plot(epochs, columns[f"val_{name}"], marker="o", markersize=3, label="validation")
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    _save(figure, path)
    return Path(path)


def plot_confusion_matrix(matrix: np.ndarray, label_names: Sequence[str], path: str | os.PathLike) -> Path:
    """A row-normalised confusion matrix (true rows, predicted columns) with counts.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "cm.png"
        >>> plot_confusion_matrix(np.eye(2, dtype=int), ["a", "b"], path).read_bytes()[:4]
        b'\x89PNG'
    """
    matrix = np.asarray(matrix)
    n = matrix.shape[0]
    names = list(label_names) if len(label_names) == n else [str(i) for i in range(n)]
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure = _figure(1.0 + 0.7 * n, 0.6 + 0.7 * n)
    axes = figure.add_subplot(1, 1, 1)
    axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for row in range(n):
        for col in range(n):
            color = "white" if shares[row, col] > 0.5 else "black"
            axes.text(col, row, str(int(matrix[row, col])), ha="center", va="center", fontsize=8, color=color)
    axes.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(n), names, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    figure.tight_layout()
    _save(figure, path)
    return Path(path)


def plot_boxes(
    images: np.ndarray,
    true_boxes: np.ndarray,
    pred_boxes: np.ndarray,
    path: str | os.PathLike,
    *,
    true_labels: Sequence[int] | None = None,
    pred_labels: Sequence[int] | None = None,
    label_names: Sequence[str] = (),
    columns: int = 4,
) -> Path:
    """A grid of canvases with the true box (green) and the predicted box (red, dashed).

    Boxes are normalised ``(cx, cy, w, h)``.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "b.png"
        >>> plot_boxes(np.zeros((2, 80, 80, 1)), np.full((2, 4), 0.5), np.full((2, 4), 0.4), path).exists()
        True
    """
    from matplotlib.patches import Rectangle

    count = len(images)
    rows = max(1, -(-count // columns))
    figure = _figure(2.4 * columns, 2.6 * rows)
    for i in range(count):
        axes = figure.add_subplot(rows, columns, i + 1)
        size = images.shape[1]
        axes.imshow(images[i, ..., 0], cmap="gray", vmin=0, vmax=255)
        for box, color, style in ((true_boxes[i], "lime", "-"), (pred_boxes[i], "red", "--")):
            cx, cy, w, h = (float(v) * size for v in box)
            axes.add_patch(Rectangle((cx - w / 2, cy - h / 2), w, h, fill=False, color=color, linestyle=style))
        if true_labels is not None and pred_labels is not None:
            name = lambda k: label_names[k] if k < len(label_names) else str(k)  # noqa: E731
            axes.set_title(f"{name(int(pred_labels[i]))} / {name(int(true_labels[i]))}", fontsize=7)
        axes.axis("off")
    figure.suptitle("predicted (red, dashed) vs true (green) boxes; titles: predicted / true", fontsize=8)
    figure.tight_layout()
    _save(figure, path)
    return Path(path)

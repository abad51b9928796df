"""Evaluation of zoo models on Fashion-MNIST: the test data and metrics of the model's task.

Classifiers report ``accuracy``; the localizer ``accuracy`` (= ``class_accuracy``), ``box_iou``
and ``iou_50`` on canvases built from the test split with a fixed seed (``zoo.tasks``).

Example:
    >>> metrics = evaluate_name("xception_localizer", limit=64)
    >>> sorted(metrics)
    ['accuracy', 'box_iou', 'class_accuracy', 'iou_50']
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

import keras
import numpy as np

from zoo.api import load
from zoo.data import load_fashion_mnist
from zoo.metrics import confusion_matrix
from zoo.tasks import LOCALIZATION_TEST_SEED, task_of

__all__ = [
    "EvalReport",
    "LOCALIZATION_TEST_SEED",
    "compare_with_record",
    "confusion_matrix",
    "evaluate",
    "evaluate_name",
    "evaluation_data",
    "predict",
]

DEFAULT_BATCH_SIZE = 256


def predict(model: keras.Model, x: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE, verbose: int | str = 0) -> Any:
    """Inference-mode predictions as numpy: an array, or a dict for the localizer.

    Example:
        >>> from zoo.api import create
        >>> predict(create("cnn"), np.zeros((8, 28, 28, 1))).shape
        (8, 10)
    """
    _check_batch_size(batch_size)
    out = model.predict(x, batch_size=batch_size, verbose=verbose)
    return keras.tree.map_structure(np.asarray, out)


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}")


def evaluate(model: keras.Model, x: np.ndarray, y: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, float]:
    """Predict ``x`` and score it against ``y`` with the metrics of ``model``'s task.

    Example:
        >>> x, y = load_fashion_mnist("test", limit=256)
        >>> evaluate(load("cnn"), x, y)["accuracy"] > 0.85
        True
    """
    return task_of(model).metrics_from_predictions(y, predict(model, x, batch_size=batch_size))


def evaluation_data(
    model: keras.Model,
    split: str = "test",
    limit: int | None = None,
    data_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, Any]:
    """Fashion-MNIST ``split`` shaped for ``model``'s task: images + labels, or canvases + targets.

    Example:
        >>> from zoo.api import create
        >>> x, y = evaluation_data(create("xception_localizer"), limit=8)
        >>> x.shape, sorted(y)
        ((8, 72, 72, 1), ['box', 'class'])
    """
    x, y = load_fashion_mnist(split, data_dir=data_dir, limit=limit)
    return task_of(model).evaluation_data(x, y, tuple(model.inputs[0].shape[1:]))


def evaluate_name(
    name_or_path_or_hf: str | os.PathLike,
    split: str = "test",
    limit: int | None = None,
    data_dir: str | os.PathLike | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, float]:
    """Load a model with :func:`zoo.load` (name, run/release folder or ``hf://`` handle), evaluate.

    Example:
        >>> sorted(evaluate_name("cnn", limit=256))
        ['accuracy']
    """
    _check_batch_size(batch_size)  # before a download or the data
    model = load(name_or_path_or_hf)
    _check_fashion_mnist_model(name_or_path_or_hf, model)
    x, y = evaluation_data(model, split=split, limit=limit, data_dir=data_dir)
    return evaluate(model, x, y, batch_size=batch_size)


@dataclass(frozen=True)
class EvalReport:
    """Measured metrics next to the recorded ones, with the tolerance each was held to.

    ``recorded[k]`` is ``None`` when the weights record no such metric (nothing to compare).
    """

    model: str
    examples: int
    measured: Mapping[str, float]
    recorded: Mapping[str, float | None]
    tolerances: Mapping[str, float]
    basis: str

    @property
    def ok(self) -> bool:
        """Whether every recorded metric was reproduced within its tolerance."""
        return all(
            self.recorded[k] is None or abs(self.measured[k] - self.recorded[k]) <= self.tolerances[k]
            for k in self.measured
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {"model": self.model, "examples": self.examples, "measured": dict(self.measured),
                "recorded": dict(self.recorded), "tolerances": dict(self.tolerances), "basis": self.basis,
                "ok": self.ok}

    def format(self) -> str:
        """A readable table: metric, measured, recorded, difference, tolerance, verdict."""
        lines = [f"{self.model} on {self.examples:,} test images ({self.basis})",
                 f"  {'metric':<16}{'measured':>10}{'recorded':>10}{'diff':>9}{'tol':>8}"]
        for key, value in self.measured.items():
            recorded = self.recorded[key]
            if recorded is None:
                lines.append(f"  {key:<16}{value:>10.4f}{'-':>10}")
                continue
            diff = value - recorded
            verdict = "ok" if abs(diff) <= self.tolerances[key] else "DIFFERS"
            lines.append(f"  {key:<16}{value:>10.4f}{recorded:>10.4f}{diff:>+9.4f}{self.tolerances[key]:>8.4f}  {verdict}")
        if all(r is None for r in self.recorded.values()):
            lines.append("  (these weights record no metrics to compare with)")
        return "\n".join(lines)


#: Images in the Fashion-MNIST test split.
TEST_SIZE = 10_000


def _recorded_for(key: str, metrics: Mapping[str, Any], recorded_limit: int | None, limit: int | None,
                  examples: int, tolerance: float, nested: bool = True) -> tuple[float | None, float, str]:
    """(recorded value, tolerance, basis) of one measured metric. ``nested``: the examples are the
    first of the record's (else two independent samples)."""
    if limit == recorded_limit and key in metrics:
        return float(metrics[key]), tolerance, "the images the record was measured on"
    subset_key = f"{key}@test[:{limit}]"
    if limit is not None and subset_key in metrics:
        return float(metrics[subset_key]), tolerance, f"recorded on test[:{limit}]"
    if key in metrics:
        # The first n of the test images against the first m: the two means differ by sampling
        # error with variance p(1 - p) |1/n - 1/m| (nested samples; p(1 - p) bounds the variance
        # of any mean of values in [0, 1]), or at most p(1 - p) (1/n + 1/m) when the examples are
        # drawn anew for each set (localization canvases). Allowed: 3 standard deviations, at least `tolerance`.
        p = float(metrics[key])
        recorded_n = recorded_limit or TEST_SIZE
        spread = abs(1 / max(examples, 1) - 1 / recorded_n) if nested else 1 / max(examples, 1) + 1 / recorded_n
        margin = 3 * math.sqrt(max(p * (1 - p), 1e-12) * spread)
        return p, max(tolerance, margin), (
            f"other images than the record's ({examples:,} vs {recorded_n:,}): tolerance >= 3 standard deviations")
    return None, tolerance, "no record"


def compare_with_record(
    handle: str | os.PathLike,
    *,
    limit: int | None = None,
    data_dir: str | os.PathLike | None = None,
    tolerance: float = 0.005,
    batch_size: int = DEFAULT_BATCH_SIZE,
    verbose: int | str = 0,
) -> EvalReport:
    """Evaluate ``handle`` on the test split (or its first ``limit`` images) and compare with the
    metrics recorded with its weights (``metadata.json`` or the release record).

    On the images the record was measured on, a metric must be within ``tolerance`` (absolute);
    on a subset of them, within 3 binomial standard errors of the recorded value if that is
    larger. Weights trained on other pictures (a fine-tune on an image folder) are refused:
    their record is not about the Fashion-MNIST test split. ``verbose="auto"`` shows Keras'
    progress bar.

    Example:
        >>> report = compare_with_record("cnn", limit=2000)
        >>> report.ok, sorted(report.measured)
        (True, ['accuracy'])
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"`limit` must be a positive integer or None. Received: limit={limit!r}")
    _check_batch_size(batch_size)
    if not tolerance >= 0:
        raise ValueError(f"`tolerance` must be >= 0. Received: tolerance={tolerance!r}")
    model = load(handle)
    metadata = getattr(model, "zoo_metadata", None) or {}
    _check_fashion_mnist_model(handle, model)
    _check_fashion_mnist_record(handle, metadata)
    metrics = metadata.get("metrics") or {}
    evaluation = metadata.get("evaluation") or {}
    recorded_limit = evaluation.get("limit")
    recorded_limit = None if recorded_limit is not None and recorded_limit >= TEST_SIZE else recorded_limit
    limit = None if limit is not None and limit >= TEST_SIZE else limit
    x, y = evaluation_data(model, limit=limit, data_dir=data_dir)
    measured = task_of(model).metrics_from_predictions(y, predict(model, x, batch_size=batch_size, verbose=verbose))
    recorded, tolerances, bases = {}, {}, set()
    for key in measured:
        recorded[key], tolerances[key], basis = _recorded_for(
            key, metrics, recorded_limit, limit, len(x), tolerance, task_of(model).nested_evaluation
        )
        bases.add(basis)
    return EvalReport(str(handle), len(x), measured, recorded, tolerances, "; ".join(sorted(bases)))


#: Fashion-MNIST's classes: the labels the evaluation data holds.
FASHION_MNIST_CLASSES = 10


def _class_count(model: keras.Model) -> int | None:
    """The width of a model's class output (a classifier's output, the localizer's ``class``)."""
    output = model.compute_output_spec(keras.KerasTensor((None, *model.inputs[0].shape[1:])))  # symbolic: no compute
    if isinstance(output, Mapping):
        output = output.get("class")
    shape = getattr(output, "shape", None)
    return None if shape is None else shape[-1]


def _check_fashion_mnist_model(handle: Any, model: keras.Model) -> None:
    """Refuse a model whose classes are not Fashion-MNIST's: its accuracy there would mean nothing."""
    metadata = getattr(model, "zoo_metadata", None) or {}
    data = metadata.get("data") or {}
    dataset = metadata.get("dataset")
    classes = _class_count(model)
    if data.get("kind") == "image_folder" or (dataset is not None and not str(dataset).startswith("fashion_mnist")):
        raise ValueError(
            f"{str(handle)!r} was trained on {data.get('name') or dataset!r}, not on Fashion-MNIST: its "
            "classes are not the 10 labels this evaluation scores against. Evaluate it on its own "
            f"pictures instead. Received: dataset={dataset!r}, data.kind={data.get('kind')!r}"
        )
    if classes != FASHION_MNIST_CLASSES:
        raise ValueError(
            f"{str(handle)!r} outputs {classes} classes; Fashion-MNIST has {FASHION_MNIST_CLASSES}, so "
            "its accuracy on Fashion-MNIST would mean nothing. Accepted: models with 10 classes. "
            f"Received: classes={classes}"
        )


def _check_fashion_mnist_record(handle: Any, metadata: Mapping[str, Any]) -> None:
    """Refuse a record about another split (the dataset itself is checked by :func:`_check_fashion_mnist_model`)."""
    dataset = metadata.get("dataset")
    split = (metadata.get("evaluation") or {}).get("split", "test")
    if split != "test":
        raise ValueError(
            f"{str(handle)!r} records metrics on {dataset or 'its own pictures'!r} ({split} split), not on the "
            "Fashion-MNIST test split that `zoo eval` measures. Evaluate it on its own pictures instead. "
            f"Received: dataset={dataset!r}, evaluation.split={split!r}"
        )

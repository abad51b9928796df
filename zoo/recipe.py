"""A training recipe: every hyper-parameter of a run, as one frozen record.

A :class:`Recipe` belongs to a weight tag (``zoo.registry.WeightSpec.recipe``): the weights'
record says how they were trained, like ``meta["recipe"]`` in torchvision's ``Weights``.
Architectures without a tag recipe can get one with ``zoo.training.register_recipe``.
This module imports neither Keras nor any model.

Example:
    >>> recipe = Recipe(arch="cnn", lr=0.05, epochs=60)
    >>> recipe.replace(epochs=3).epochs, recipe.monitor_mode
    (3, 'max')
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from zoo.data.augment import Augmenter
from zoo.data.resize import check_resolutions

__all__ = [
    "AUTO", "DESCRIPTIVE_FIELDS", "SCHEDULE_FIELDS", "Recipe", "changes_before", "monitor_mode", "parse_recipe_settings",
    "stretch_resolutions", "stretch_restarts",
]

#: ``mixed_precision="auto"``: bfloat16 where the device runs it natively (zoo.training.precision).
AUTO = "auto"

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("cosine", "constant")
TASKS = ("classification", "localization")
#: The Hugging Face Hub pipeline tag of each task (model cards).
PIPELINE_TAGS = {"classification": "image-classification", "localization": "object-detection"}


def monitor_mode(monitor: str) -> str:
    """Which way a monitored figure improves: ``"min"`` for a loss, else ``"max"``.

    Example:
        >>> monitor_mode("val_loss"), monitor_mode("val_accuracy")
        ('min', 'max')
    """
    return "min" if str(monitor).endswith("loss") else "max"


@dataclass(frozen=True)
class Recipe:
    """Every hyper-parameter of a training run of ``arch``.

    ``lr`` is the peak learning rate, reached after ``warmup_epochs`` of linear warm-up, then
    decayed with a cosine to ``lr * min_lr_ratio`` at the last step (``schedule="cosine"``).
    ``weight_decay`` is Keras' decoupled weight decay (``w -= lr * wd * w``), not applied to
    biases and batch-norm parameters. ``batch_size`` is the global batch (all replicas).
    Augmentation runs in numpy inside the input pipeline: ``pad_crop`` pixels of zero padding
    then a random crop (0 disables it), horizontal ``flip``, and random erasing with
    probability ``erasing_p``. Localization recipes only allow flips (boxes are mirrored).
    ``val_size`` images are carved out of the training split for validation; the test split
    is only used for the final evaluation. ``monitor`` picks the best epoch. ``bn_momentum``
    (when set) replaces the momentum of every BatchNormalization layer's moving statistics
    during training (Keras' default 0.99; 0.9 equals PyTorch's default 0.1).
    ``resolutions`` is a progressive-resizing schedule, ``((first_epoch, size), ...)``: from
    ``first_epoch`` on, training batches are resized to ``size x size`` after augmentation
    (validation and test stay at the model's input size, which the last pair must reach).
    ``restarts`` are warm restarts of the cosine (SGDR; timm's ``cycle_limit`` and
    ``cycle_decay``), ``((first_epoch, peak_ratio), ...)``: at ``first_epoch`` the rate jumps to
    ``lr * peak_ratio`` (so a batch-size or ``lr`` override scales it too), and each cycle decays
    to ``min_lr_ratio`` of its own peak when the next one starts. ``fresh_canvases``
    (localization): the training canvases are synthesized again for every batch of every epoch
    (``zoo.data.FreshCanvases``: new scales, positions and clutter of the same items) instead of
    once; validation and test canvases stay fixed.

    Example:
        >>> Recipe(arch="cnn", lr=0.05).replace(epochs=3).epochs
        3
    """

    arch: str
    task: str = "classification"
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    schedule: str = "cosine"
    warmup_epochs: float = 2.0
    min_lr_ratio: float = 0.0
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    epochs: int = 60
    batch_size: int = 256
    pad_crop: int = 4
    flip: bool = True
    erasing_p: float = 0.0
    val_size: int = 5000
    mixed_precision: bool | str = AUTO
    monitor: str = "val_accuracy"
    bn_momentum: float | None = None
    resolutions: tuple[tuple[int, int], ...] = ()
    restarts: tuple[tuple[int, float], ...] = ()
    fresh_canvases: bool = False
    loss_weights: Mapping[str, float] = field(default_factory=dict)
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self) -> None:
        _check(isinstance(self.arch, str) and bool(self.arch), "arch", self.arch, "a registered architecture name")
        _check(self.task in TASKS, "task", self.task, f"one of {TASKS}")
        _check(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, f"one of {OPTIMIZERS}")
        _check(self.schedule in SCHEDULES, "schedule", self.schedule, f"one of {SCHEDULES}")
        _check(_number(self.lr) and self.lr > 0, "lr", self.lr, "a number > 0")
        _check(_number(self.momentum) and 0 <= self.momentum < 1, "momentum", self.momentum, "in [0, 1)")
        for name in ("nesterov", "flip", "fresh_canvases"):  # a string such as "False" would count as true
            _check(getattr(self, name) is True or getattr(self, name) is False, name, getattr(self, name), "true or false")
        _check(isinstance(self.monitor, str) and bool(self.monitor), "monitor", self.monitor,
               "the name of a logged figure (e.g. 'val_accuracy', 'val_loss')")
        _check(isinstance(self.notes, str), "notes", self.notes, "a string")
        _check(
            isinstance(self.loss_weights, Mapping)
            and all(isinstance(k, str) and _number(v) and v >= 0 for k, v in self.loss_weights.items()),
            "loss_weights", self.loss_weights, "a mapping of output names to numbers >= 0",
        )
        _check(isinstance(self.model_overrides, Mapping), "model_overrides", self.model_overrides,
               "a mapping of model arguments")
        _check(_number(self.warmup_epochs) and self.warmup_epochs >= 0, "warmup_epochs", self.warmup_epochs, ">= 0")
        _check(_number(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1, "min_lr_ratio", self.min_lr_ratio, "in [0, 1]")
        _check(_number(self.weight_decay) and self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        _check(
            _number(self.label_smoothing) and 0 <= self.label_smoothing < 1,
            "label_smoothing", self.label_smoothing, "in [0, 1)",
        )
        _check(_integer(self.epochs) and self.epochs >= 1, "epochs", self.epochs, "an int >= 1")
        _check(_integer(self.batch_size) and self.batch_size >= 1, "batch_size", self.batch_size, "an int >= 1")
        _check(_integer(self.pad_crop) and self.pad_crop >= 0, "pad_crop", self.pad_crop, "an int >= 0")
        _check(_number(self.erasing_p) and 0 <= self.erasing_p <= 1, "erasing_p", self.erasing_p, "in [0, 1]")
        _check(_integer(self.val_size) and self.val_size >= 1, "val_size", self.val_size, "an int >= 1")
        _check(
            self.mixed_precision is True or self.mixed_precision is False or self.mixed_precision == AUTO,
            "mixed_precision", self.mixed_precision, "True, False or 'auto' (zoo.training.precision)",
        )
        _check(
            self.bn_momentum is None or (_number(self.bn_momentum) and 0 <= self.bn_momentum < 1),
            "bn_momentum", self.bn_momentum, "None or in [0, 1)",
        )
        object.__setattr__(self, "resolutions", check_resolutions(self.resolutions))
        if self.resolutions and self.task != "classification":
            raise ValueError(f"Progressive `resolutions` are for classification recipes. Received: task={self.task!r}")
        if self.resolutions and self.resolutions[-1][0] >= self.epochs:
            raise ValueError(
                "The last resolution must start before the last epoch. "
                f"Received: resolutions={self.resolutions!r}, epochs={self.epochs!r}"
            )
        object.__setattr__(self, "restarts", _check_restarts(self.restarts, self.epochs))
        if self.restarts and self.schedule != "cosine":
            raise ValueError(f"Warm `restarts` need schedule='cosine'. Received: schedule={self.schedule!r}")
        if self.fresh_canvases and self.task != "localization":
            raise ValueError(f"`fresh_canvases` is for localization recipes. Received: task={self.task!r}")
        if self.loss_weights and self.task != "localization":
            raise ValueError(
                "`loss_weights` weigh the class and box losses of localization recipes; a classifier has one "
                f"loss. Received: loss_weights={dict(self.loss_weights)!r}, task={self.task!r}"
            )
        if self.task == "localization" and (self.pad_crop or self.erasing_p):
            raise ValueError(
                "Localization recipes only support flips (crops and erasing would break the "
                f"tight boxes). Received: pad_crop={self.pad_crop!r}, erasing_p={self.erasing_p!r}"
            )

    @property
    def monitor_mode(self) -> str:
        """``"min"`` for a loss, else ``"max"`` (:func:`monitor_mode`)."""
        return monitor_mode(self.monitor)

    def replace(self, **overrides: Any) -> "Recipe":
        """A copy with some fields changed; unknown names raise ``ValueError``.

        A new ``epochs`` stretches the progressive ``resolutions`` and the ``restarts`` with it
        (unless they are given too), see :func:`stretch_resolutions` and :func:`stretch_restarts`;
        a schedule other than the cosine drops the restarts.

        Example:
            >>> Recipe(arch="cnn", lr=0.05).replace(lr=0.01, epochs=2).lr
            0.01
            >>> Recipe(arch="r", epochs=40, resolutions=((0, 16), (18, 22), (30, 28))).replace(epochs=4).resolutions
            ((0, 16), (2, 22), (3, 28))
        """
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"Unknown recipe field(s) {unknown}. Known: {sorted(known)}")
        epochs = overrides.get("epochs", self.epochs)
        stretched = epochs != self.epochs and _integer(epochs) and epochs >= 1
        if stretched and self.resolutions and "resolutions" not in overrides:
            overrides = {**overrides, "resolutions": stretch_resolutions(self.resolutions, self.epochs, epochs)}
        if self.restarts and "restarts" not in overrides:
            if overrides.get("schedule", self.schedule) != "cosine":
                overrides = {**overrides, "restarts": ()}  # restarts belong to the cosine they restart
            elif stretched:
                overrides = {**overrides, "restarts": stretch_restarts(self.restarts, self.epochs, epochs)}
        return dataclasses.replace(self, **overrides)

    def lr_cycles(self) -> list[tuple[int, int, float]]:
        """``(first_epoch, end_epoch, peak_lr)`` of each learning-rate cycle: the first one from
        epoch 0, then one per warm restart (``zoo.training.fit.make_schedule`` builds them).

        Example:
            >>> Recipe(arch="r", lr=0.1, epochs=52, restarts=((40, 0.5),)).lr_cycles()
            [(0, 40, 0.1), (40, 52, 0.05)]
        """
        starts = [0, *(first for first, _ in self.restarts)]
        peaks = [self.lr, *(self.lr * ratio for _, ratio in self.restarts)]
        return list(zip(starts, [*starts[1:], self.epochs], peaks))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field.

        Example:
            >>> Recipe(arch="cnn").to_dict()["optimizer"]
            'sgd'
        """
        data = dataclasses.asdict(self)
        data["loss_weights"] = dict(self.loss_weights)
        data["model_overrides"] = {k: _jsonable(v) for k, v in self.model_overrides.items()}
        data["resolutions"] = [list(pair) for pair in self.resolutions]
        data["restarts"] = [list(pair) for pair in self.restarts]
        return data

    def augmenter(self) -> Any:
        """The :class:`zoo.data.Augmenter` of this recipe, or ``None`` when nothing is enabled.

        Example:
            >>> Recipe(arch="cnn", pad_crop=2).augmenter().pad
            2
        """
        if not (self.pad_crop or self.flip or self.erasing_p):
            return None
        return Augmenter(pad=self.pad_crop, flip=self.flip, erasing_p=self.erasing_p, pad_mode="constant")


#: The recipe fields that a resumed run may change -- its length, its warm restarts, its
#: progressive resolutions -- as long as the epochs it has begun train as before
#: (:func:`changes_before`): the new recipe then reproduces the whole run from scratch.
SCHEDULE_FIELDS = ("epochs", "restarts", "resolutions")
#: Recipe fields that describe a run and train nothing: never compared when a run resumes.
DESCRIPTIVE_FIELDS = ("notes",)


def changes_before(old: Recipe, new: Recipe, epochs_begun: int, *, input_size: int | None = None) -> list[str]:
    """How ``new`` would train the first ``epochs_begun`` epochs otherwise than ``old`` did.

    Empty when those epochs train the same under both: every field outside
    :data:`SCHEDULE_FIELDS` (and the notes, :data:`DESCRIPTIVE_FIELDS`) is equal, each learning-rate cycle begun so far (the first one from
    epoch 0, then one per warm restart) starts, peaks and ends at the same epochs (a cosine's
    length sets the rate of each of its steps; a flat schedule's length counts only where it
    caps the warm-up), each begun epoch trains at the same image size, and ``new`` has at least
    ``epochs_begun`` epochs. So a 52-epoch run whose first cycle ends at a restart at epoch 40
    may become a 64-epoch one (or a 40-epoch one without the restart) until it has begun epoch 41.
    ``input_size`` (the model's) is the size of epochs outside any progressive resolution, so
    that no resolutions and a single one at the input size compare as the same.

    Example:
        >>> old = Recipe(arch="r", epochs=52, restarts=((40, 0.2),))
        >>> changes_before(old, old.replace(epochs=64, restarts=((40, 0.2),)), 40)
        []
        >>> changes_before(old, old.replace(epochs=64, restarts=((40, 0.2),)), 41)
        ['learning-rate cycles begun: epochs 41-52 from lr 0.02 -> epochs 41-64 from lr 0.02']
    """
    before, after = old.to_dict(), new.to_dict()
    changes = [
        f"{name}: {before[name]!r} -> {after[name]!r}"
        for name in before
        if name not in SCHEDULE_FIELDS + DESCRIPTIVE_FIELDS and _canonical(before[name]) != _canonical(after[name])
    ]
    begun_old = [cycle for cycle in _lr_cycles(old) if cycle[0] < epochs_begun]
    begun_new = [cycle for cycle in _lr_cycles(new) if cycle[0] < epochs_begun]
    if begun_old != begun_new:
        same = 0  # the cycles both share from the start are left out of the description
        while same < min(len(begun_old), len(begun_new)) and begun_old[same] == begun_new[same]:
            same += 1
        changes.append(
            f"learning-rate cycles begun: {_describe_cycles(begun_old[same:])} -> {_describe_cycles(begun_new[same:])}"
        )
    for epoch in range(epochs_begun):
        size_before, size_after = _image_size(old, epoch, input_size), _image_size(new, epoch, input_size)
        if size_before != size_after:
            changes.append(
                f"image size of epoch {epoch + 1}: {size_before or 'the input size'} -> {size_after or 'the input size'}"
            )
            break
    if new.epochs < epochs_begun:
        changes.append(f"epochs: {new.epochs} is fewer than the {epochs_begun} epochs begun")
    return changes


def _lr_cycles(recipe: Recipe) -> list[tuple[int, int | None, float]]:
    """:meth:`Recipe.lr_cycles`, with the end ``None`` where it sets no step's rate: a flat
    schedule (``"constant"``, or ``min_lr_ratio == 1``) whose warm-up stays below half of the
    cycle at any number of steps per epoch (``round(warmup * steps) <= (end * steps) // 2``
    holds when ``2 * warmup + 2 <= end``)."""
    cycles = recipe.lr_cycles()
    flat = recipe.schedule == "constant" or recipe.min_lr_ratio == 1
    if flat and 2 * recipe.warmup_epochs + 2 <= cycles[0][1]:
        return [(first, None, peak) for first, _, peak in cycles]
    return list(cycles)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _describe_cycles(cycles: list[tuple[int, int | None, float]]) -> str:
    return ", ".join(
        f"epochs {first + 1}-{end if end is not None else 'end'} from lr {peak:g}" for first, end, peak in cycles
    ) or "none"


def _image_size(recipe: Recipe, epoch: int, input_size: int | None) -> int | None:
    """The training image size of ``epoch`` (0-based); ``input_size`` (``None``: unknown) outside
    the progressive resolutions."""
    sizes = [size for first, size in recipe.resolutions if first <= epoch]
    return sizes[-1] if sizes else input_size


def parse_recipe_settings(items: Iterable[str], refused: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``["FIELD=VALUE", ...]`` -> recipe overrides; VALUE is JSON (``0.2``, ``true``, ``[[0, 28]]``)
    or else a plain string. ``refused`` maps fields that may not be set this way to the reason
    (e.g. a command-line flag of their own). The values are checked when the recipe is built.

    Example:
        >>> parse_recipe_settings(["weight_decay=1e-4", "resolutions=[]", "monitor=val_loss"])
        {'weight_decay': 0.0001, 'resolutions': [], 'monitor': 'val_loss'}
    """
    known = sorted(f.name for f in dataclasses.fields(Recipe))
    refused = dict(refused or {})
    settings: dict[str, Any] = {}
    for item in items:
        name, sep, text = str(item).partition("=")
        name = name.strip()
        if not sep or name not in known:
            raise ValueError(f"A recipe setting is FIELD=VALUE with FIELD one of {known}. Received: {item!r}")
        if name in refused:
            raise ValueError(f"The recipe field {name!r} is not set this way: {refused[name]}. Received: {item!r}")
        if name in settings:
            raise ValueError(f"The recipe field {name!r} is set twice. Received: {item!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if not _all_finite(value):  # JSON reads 1e400, Infinity and NaN: no recipe field takes them
            raise ValueError(f"A recipe setting's numbers must be finite. Received: {item!r}")
        settings[name] = value
    return settings


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    return True


def stretch_resolutions(
    resolutions: tuple[tuple[int, int], ...], epochs: int, new_epochs: int
) -> tuple[tuple[int, int], ...]:
    """A progressive-resizing schedule of ``epochs`` epochs stretched to ``new_epochs``.

    Each phase keeps its share of the run and at least one epoch; when the run has fewer
    epochs than phases, the first phases are dropped, so a run always ends at full size.

    Example:
        >>> stretch_resolutions(((0, 16), (18, 22), (30, 28)), 40, 10)
        ((0, 16), (4, 22), (8, 28))
        >>> stretch_resolutions(((0, 16), (18, 22), (30, 28)), 40, 2)
        ((0, 22), (1, 28))
    """
    phases = list(resolutions)[-new_epochs:]
    starts: list[int] = []
    for index, (first, _) in enumerate(phases):
        start = 0 if index == 0 else max(round(first * new_epochs / epochs), starts[-1] + 1)
        starts.append(min(start, new_epochs - (len(phases) - index)))
    return tuple((start, size) for start, (_, size) in zip(starts, phases))


def stretch_restarts(
    restarts: tuple[tuple[int, float], ...], epochs: int, new_epochs: int
) -> tuple[tuple[int, float], ...]:
    """Warm restarts of an ``epochs``-epoch run moved to the same share of ``new_epochs``.

    A restart that would land on the first epoch, on or after the last, or on the same epoch
    as the one before is dropped.

    Example:
        >>> stretch_restarts(((40, 0.2),), 52, 13)
        ((10, 0.2),)
        >>> stretch_restarts(((40, 0.2),), 52, 1)
        ()
    """
    moved: list[tuple[int, float]] = []
    for first, peak in restarts:
        start = round(first * new_epochs / epochs)
        if 0 < start < new_epochs and (not moved or start > moved[-1][0]):
            moved.append((start, peak))
    return tuple(moved)


def _check_restarts(restarts: Any, epochs: int) -> tuple[tuple[int, float], ...]:
    """``restarts`` as a tuple of ``(first_epoch, peak_ratio)`` pairs, checked (the warm-up is
    capped at half of the first cycle, so a restart may come early)."""
    try:
        pairs = tuple((first, peak) for first, peak in restarts)
    except (TypeError, ValueError):
        pairs = None
    valid = pairs is not None and all(_integer(first) and _number(peak) and peak > 0 for first, peak in pairs)
    starts = [first for first, _ in pairs] if valid else []
    if not valid or starts != sorted(set(starts)) or any(not 1 <= first < epochs for first in starts):
        raise ValueError(
            "`restarts` must be (first_epoch, peak_ratio) pairs: epochs increasing, from 1 to the last "
            f"epoch ({epochs!r}) excluded, ratios of lr > 0. Received: restarts={restarts!r}"
        )
    return tuple((int(first), float(peak)) for first, peak in pairs)


def _number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"Recipe field `{name}` must be {expected}. Received: {name}={value!r}")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value

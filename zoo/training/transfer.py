"""Transfer-learning pieces: fine-tuning settings and recipe, phases, frozen backbones, head-less loads.

Used by :mod:`zoo.training.finetune`; each piece works on its own, e.g. a linear probe by hand:

Example:
    >>> model = zoo.create("cnn", num_classes=3)                              # doctest: +SKIP
    >>> report = load_backbone(model, "weights/cnn.fmnist", ("predictions",))  # doctest: +SKIP
    >>> frozen = set_backbone_trainable(model, False)                         # doctest: +SKIP
    >>> model.compile(...); model.fit(...)                                    # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import keras
import numpy as np

from zoo.data.folder import DEFAULT_VAL_FRACTION
from zoo.preprocess import POLARITIES
from zoo.recipe import Recipe
from zoo.registry import get_spec
from zoo.training.recipes import get_recipe
from zoo.weights import load_weights, model_state

__all__ = [
    "AUTO",
    "FineTune",
    "Phase",
    "finetune_recipe",
    "load_backbone",
    "phases_of",
    "set_backbone_trainable",
]

#: Epochs of a fine-tuning run unless told otherwise.
FINETUNE_EPOCHS = 10
#: Fine-tuning from weights runs at this share of the architecture recipe's learning rate.
FINETUNE_LR_FACTOR = 0.1
#: The linear probe's learning rate is this multiple of ``lr`` unless told otherwise.
PROBE_LR_FACTOR = 10.0
#: ``polarity="auto"``: the initial weights' record (none when training from scratch).
AUTO = "auto"


@dataclass(frozen=True)
class FineTune:
    """What a fine-tuning run adds to a recipe: initial weights, the probe, the data split.

    Example:
        >>> FineTune(init_from="cnn.fmnist", freeze_backbone=True, probe_epochs=2).probe_epochs
        2
        >>> FineTune(freeze_backbone=True, probe_epochs=1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: freeze_backbone trains the head on a frozen backbone: it needs trained weights ...
    """

    init_from: str | None = None
    freeze_backbone: bool = False
    probe_epochs: int = 0
    probe_lr: float | None = None
    val_fraction: float = DEFAULT_VAL_FRACTION
    polarity: str | None = None

    def __post_init__(self) -> None:
        if self.freeze_backbone and not self.init_from:
            raise ValueError(
                "freeze_backbone trains the head on a frozen backbone: it needs trained weights to "
                "start from (init_from, --init-from). Received: freeze_backbone=True, init_from=None"
            )
        if isinstance(self.probe_epochs, bool) or not isinstance(self.probe_epochs, int) or self.probe_epochs < 0:
            raise ValueError(f"`probe_epochs` must be an int >= 0. Received: probe_epochs={self.probe_epochs!r}")
        if self.freeze_backbone and self.probe_epochs < 1:
            raise ValueError(
                "freeze_backbone needs a probe of at least one epoch (--probe-epochs >= 1). "
                f"Received: probe_epochs={self.probe_epochs!r}"
            )
        if self.probe_epochs and not self.freeze_backbone:
            raise ValueError(
                "probe_epochs (--probe-epochs) is the frozen-backbone phase: pass freeze_backbone=True "
                f"(--freeze-backbone) too. Received: probe_epochs={self.probe_epochs!r}"
            )
        if self.probe_lr is not None and (isinstance(self.probe_lr, bool) or not self.probe_lr > 0):
            raise ValueError(f"`probe_lr` must be a number > 0. Received: probe_lr={self.probe_lr!r}")
        if self.polarity not in POLARITIES:
            raise ValueError(f"`polarity` must be one of {list(POLARITIES)}. Received: polarity={self.polarity!r}")


@dataclass(frozen=True)
class Phase:
    """One ``model.fit`` of a fine-tuning run: epochs ``[first, end)``, what trains, at which rate.

    Example:
        >>> Phase("probe", 0, 2, backbone_trainable=False, lr=0.05).epochs
        2
    """

    name: str
    first: int
    end: int
    backbone_trainable: bool
    lr: float

    @property
    def epochs(self) -> int:
        return self.end - self.first


def phases_of(recipe: Recipe, settings: FineTune) -> list[Phase]:
    """The phases of a run: ``probe`` (head only) for ``probe_epochs``, then ``unfrozen``.

    Example:
        >>> recipe = Recipe(arch="cnn", lr=0.005, epochs=4)
        >>> [(p.name, p.first, p.end, p.lr) for p in phases_of(recipe, FineTune("cnn", True, 1))]
        [('probe', 0, 1, 0.05), ('unfrozen', 1, 4, 0.005)]
    """
    probe = settings.probe_epochs if settings.freeze_backbone else 0
    if probe > recipe.epochs:
        raise ValueError(
            f"The linear probe cannot be longer than the run: probe_epochs={probe} > epochs={recipe.epochs}. "
            "probe_epochs == epochs trains the head alone (a pure linear probe)."
        )
    probe_lr = settings.probe_lr if settings.probe_lr is not None else round(recipe.lr * PROBE_LR_FACTOR, 12)
    phases = [Phase("probe", 0, probe, False, probe_lr)] if probe else []
    if probe < recipe.epochs:
        phases.append(Phase("unfrozen", probe, recipe.epochs, True, recipe.lr))
    return phases


def finetune_recipe(name: str, *, from_weights: bool = True, **overrides: Any) -> Recipe:
    """The recipe of ``name`` made for fine-tuning on a small folder of pictures.

    :data:`FINETUNE_EPOCHS` epochs, warm-up of at most one epoch, no progressive resizing and
    one cosine (no warm restarts: those of a long recipe are not moved into the short run); from
    weights the learning rate is :data:`FINETUNE_LR_FACTOR` of the recipe's. Optimizer, weight
    decay, label smoothing and augmentation stay the recipe's. ``overrides`` set any field.

    Example:
        >>> recipe = finetune_recipe("resnet34")
        >>> recipe.epochs, round(recipe.lr, 6), recipe.resolutions, recipe.restarts
        (10, 0.01, (), ())
    """
    base = get_recipe(name)
    lr = round(base.lr * FINETUNE_LR_FACTOR, 12) if from_weights else base.lr
    tuned = base.replace(
        epochs=FINETUNE_EPOCHS, lr=lr, warmup_epochs=min(base.warmup_epochs, 1.0), resolutions=(), restarts=(),
        notes=f"Fine-tuning recipe derived from {base.arch}'s (zoo.training.finetune.finetune_recipe).",
    )
    return tuned.replace(**overrides) if overrides else tuned


def set_backbone_trainable(model: keras.Model, trainable: bool, head: Sequence[str] | None = None) -> list[str]:
    """Make every top-level layer but the ``head`` layers (un)trainable; returns their names.

    ``head`` defaults to the registered architecture's (``register_model(head=...)``). Recompile
    the model afterwards: Keras fixes the trainable weights when it compiles.

    Example:
        >>> model = zoo.create("cnn", num_classes=3)                       # doctest: +SKIP
        >>> set_backbone_trainable(model, False)[:2]                       # doctest: +SKIP
        ['rescale', 'conv1']
    """
    if head is None:
        architecture = (getattr(model, "zoo_config", None) or {}).get("architecture")
        if architecture is None:
            raise ValueError(f"Model {model.name!r} was not built by the zoo: pass `head` (its head layers' names).")
        head = get_spec(architecture).head
    names = [layer.name for layer in model.layers]
    missing = sorted(set(head) - set(names))
    if missing:
        raise ValueError(f"Model {model.name!r} has no head layer(s) {missing}. Layers: {names}")
    changed = []
    for layer in model.layers:
        if layer.name not in head:
            layer.trainable = trainable
            changed.append(layer.name)
    return changed


def _all_arrays(model: keras.Model) -> dict[str, np.ndarray]:
    return {key: np.array(keras.ops.convert_to_numpy(v)) for key, v in model_state(model).items()}


def load_backbone(model: keras.Model, weights: str | os.PathLike, head: Sequence[str]) -> dict[str, list[str]]:
    """Load every weight but the head's into ``model``; the head keeps its fresh initialisation.

    Unlike ``zoo.load(..., num_classes=N)`` the head is fresh even when the class count is the
    same (new classes, new head). Returns ``{"loaded": [...], "reinitialized": [...]}`` keys.

    Example:
        >>> model = zoo.create("cnn", num_classes=3)                                 # doctest: +SKIP
        >>> load_backbone(model, "weights/cnn.fmnist", ("predictions",))["reinitialized"]  # doctest: +SKIP
        ['predictions/bias', 'predictions/kernel']
    """
    fresh = {key: value for key, value in _all_arrays(model).items() if any(key.startswith(f"{h}/") for h in head)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The head of .* has a different shape")
        report = load_weights(model, weights, head=head)
    state = model_state(model)
    for key, value in fresh.items():
        state[key].assign(value)
    return {"loaded": sorted(set(report.loaded) - set(fresh)), "reinitialized": sorted(fresh)}

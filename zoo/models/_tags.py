"""Weight-tag metadata shared by the architectures trained on Fashion-MNIST."""

from __future__ import annotations

from typing import Any, Mapping

from zoo.data.fashion_mnist import LABEL_NAMES
from zoo.recipe import Recipe
from zoo.registry import WeightSpec

#: How Fashion-MNIST weights expect their input: raw grayscale pixels (rescaled inside the
#: model), a light item on a dark background, trimmed to the item with its longest side filling
#: the frame (Fashion-MNIST's own conversion); other pictures are made so (``zoo.preprocess``
#: reads ``polarity``, ``trim`` and ``resize`` from here).
RAW_PIXELS = {
    "input": "float32 or uint8 pixels in [0, 255], NHWC, grayscale",
    "rescaling": "inside the model (Rescaling 1/255 layer)",
    "polarity": "light_on_dark",
    "trim": True,
    "resize": "fit_and_pad",
}
#: The localizer finds the item on its canvas: pictures are not trimmed to it.
LOCALIZATION_PIXELS = {**RAW_PIXELS, "trim": False}


def fashion_mnist_weights(
    arch: str,
    *,
    tag: str = "fmnist",
    overrides: Mapping[str, Any] | None = None,
    targets: Mapping[str, float] | None = None,
    release_floor: Mapping[str, float] | None = None,
    dataset: str = "fashion_mnist",
    description: str = "Trained from scratch on Fashion-MNIST (60,000 train images, 10 classes).",
    train_command: str | None = None,
    recipe: Recipe | None = None,
) -> WeightSpec:
    """A :class:`WeightSpec` for Fashion-MNIST weights of ``arch``.

    Example:
        >>> fashion_mnist_weights("cnn").tag
        'fmnist'
    """
    return WeightSpec(
        tag=tag,
        dataset=dataset,
        description=description,
        overrides=dict(overrides or {}),
        label_names=LABEL_NAMES,
        preprocessing=LOCALIZATION_PIXELS if dataset.endswith("_localization") else RAW_PIXELS,
        targets=dict(targets or {}),
        release_floor=dict(release_floor or {}),
        hub_repo_id=f"keras-zoo/{arch}.{tag}",
        train_command=train_command or f"python scripts/train.py {arch}",
        recipe=recipe,
    )

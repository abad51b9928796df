"""Learning-rate schedules that Keras does not have: warm restarts of a warmed-up cosine.

Keras' ``CosineDecayRestarts`` has no warm-up and ties each cycle's length and peak to the
first one by fixed factors; a recipe's restarts name their epochs and peaks instead
(``zoo.recipe.Recipe.restarts``), so :class:`Piecewise` chains ordinary ``CosineDecay``
schedules, each from its own first step.

Example:
    >>> import keras
    >>> first = keras.optimizers.schedules.CosineDecay(0.1, 100)
    >>> second = keras.optimizers.schedules.CosineDecay(0.02, 50)
    >>> schedule = Piecewise([first, second], boundaries=[100])
    >>> [round(float(schedule(step)), 4) for step in (0, 99, 100, 150)]
    [0.1, 0.0, 0.02, 0.0]
"""

from __future__ import annotations

from typing import Any, Sequence

import keras

__all__ = ["Piecewise"]


@keras.saving.register_keras_serializable(package="zoo")
class Piecewise(keras.optimizers.schedules.LearningRateSchedule):
    """``schedules[i]`` from step ``boundaries[i - 1]`` on (``schedules[0]`` from step 0), each
    called with the steps since its own start.

    Example:
        >>> import keras
        >>> constant = keras.optimizers.schedules.CosineDecay(0.1, 10, alpha=1.0)
        >>> Piecewise([constant, constant], boundaries=[5]).get_config()["boundaries"]
        [5]
    """

    def __init__(self, schedules: Sequence[keras.optimizers.schedules.LearningRateSchedule], boundaries: Sequence[int]):
        if len(schedules) != len(boundaries) + 1 or list(boundaries) != sorted(set(boundaries)) or any(
            b <= 0 for b in boundaries
        ):
            raise ValueError(
                "Piecewise needs one schedule more than boundaries, and boundaries increasing and > 0. "
                f"Received: {len(schedules)} schedules, boundaries={list(boundaries)!r}"
            )
        self.schedules = list(schedules)
        self.boundaries = [int(b) for b in boundaries]

    def __call__(self, step: Any) -> Any:
        step = keras.ops.cast(step, "float32")
        rate = self.schedules[0](step)
        for boundary, schedule in zip(self.boundaries, self.schedules[1:]):
            # Both sides are finite for any step; where() keeps the piece whose interval holds it.
            rate = keras.ops.where(step >= boundary, schedule(keras.ops.maximum(step - boundary, 0.0)), rate)
        return rate

    def get_config(self) -> dict[str, Any]:
        return {
            "schedules": [keras.optimizers.schedules.serialize(s) for s in self.schedules],
            "boundaries": list(self.boundaries),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Piecewise":
        schedules = [keras.optimizers.schedules.deserialize(s) for s in config["schedules"]]
        return cls(schedules, config["boundaries"])

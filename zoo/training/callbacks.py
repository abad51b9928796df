"""Small Keras callbacks of the training loop: best-epoch weights and the learning rate in logs.

Example:
    >>> best = BestWeights("runs/cnn-0/best", monitor="val_accuracy", mode="max")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import keras

__all__ = ["BestWeights", "LogLearningRate"]


class LogLearningRate(keras.callbacks.Callback):
    """Adds the optimizer's current ``learning_rate`` to the epoch logs (hence history.csv).

    Example:
        >>> callbacks = [LogLearningRate(), keras.callbacks.CSVLogger("history.csv")]
    """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None and self.model.optimizer is not None:
            rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            logs["learning_rate"] = float(rate)


class BestWeights(keras.callbacks.Callback):
    """Saves the weights of the best epoch so far as safetensors in ``folder``.

    ``folder/model.safetensors`` holds the weights and ``folder/best.json`` the epoch and the
    monitored value; both survive a killed run, so a resumed run keeps comparing against the
    true best. When ``monitor`` never improves (e.g. NaN), the last epoch is kept.

    Example:
        >>> best = BestWeights("best", monitor="val_loss", mode="min")
        >>> best.is_better(0.5), best.is_better(float("nan"))
        (True, False)
    """

    def __init__(self, folder: str | os.PathLike, monitor: str = "val_accuracy", mode: str = "max"):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"`mode` must be 'min' or 'max'. Received: mode={mode!r}")
        self.folder = Path(folder)
        self.monitor = monitor
        self.mode = mode
        self.best: float | None = None
        self.best_epoch: int | None = None

    @property
    def weights_path(self) -> Path:
        return self.folder / "model.safetensors"

    @property
    def record_path(self) -> Path:
        return self.folder / "best.json"

    def is_better(self, value: float) -> bool:
        """Whether ``value`` improves on the best so far."""
        if value is None or math.isnan(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.record_path.exists() and self.weights_path.exists():
            record = json.loads(self.record_path.read_text())
            self.best, self.best_epoch = record["value"], record["epoch"]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from zoo.weights import save_weights

        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(
                f"BestWeights monitors {self.monitor!r}, which is not in the epoch logs: "
                f"{sorted(logs)}. Set the recipe's `monitor` to one of them."
            )
        value = float(logs[self.monitor])
        if self.is_better(value) or not self.weights_path.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            save_weights(self.model, self.weights_path, overwrite=True)
            self.best = value if not math.isnan(value) else self.best
            self.best_epoch = epoch
            record = {"epoch": epoch, "value": self.best, "monitor": self.monitor}
            self.record_path.write_text(json.dumps(record))

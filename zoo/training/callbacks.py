"""Small Keras callbacks of the training loop: best-epoch weights, the learning rate in logs,
epoch timing, and a backup of the training state that survives a kill at any moment.

Example:
    >>> best = BestWeights("runs/cnn-0/best", monitor="val_accuracy", mode="max")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np
from safetensors.numpy import load_file, save_file

from zoo.atomic import atomic_write_text, fsync_file
from zoo.weights import save_weights

__all__ = [
    "BestWeights", "EpochTimer", "LogLearningRate", "ResumableBackup", "ResumedEpochLogs", "carried_figures",
    "exclude_epoch", "summarize_timing",
]

#: Beside ``timing.json``: epochs left out of a run's time and speed figures, each with why.
EXCLUDED_NAME = "timing.excluded.json"


class LogLearningRate(keras.callbacks.Callback):
    """Adds the ``learning_rate`` of each epoch's last step to its logs (hence history.csv).

    Under a schedule the optimizer's own ``learning_rate`` is read at its step counter, which at
    the end of an epoch is already the next epoch's first step: a warm restart would show in the
    row of the epoch before it. The last step's rate does not depend on where a run was resumed.

    Example:
        >>> callbacks = [LogLearningRate(), keras.callbacks.CSVLogger("history.csv")]
    """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        optimizer = self.model.optimizer
        if logs is None or optimizer is None:
            return
        schedule = getattr(optimizer, "_learning_rate", None)
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            rate = schedule(keras.ops.maximum(optimizer.iterations - 1, 0))
        else:
            rate = optimizer.learning_rate
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(rate))


class EpochTimer(keras.callbacks.Callback):
    """Records each epoch's training seconds, images, image size and machine in ``timing.json``.

    The file survives a killed run and grows across sessions, so a run trained over several
    sessions still knows its total time and throughput (:func:`summarize_timing`), by machine when
    it moved. Set ``image_size`` before each phase of a progressive-resizing run, ``machine``
    (``zoo.training.report.trained_on``) once, and ``carried_seconds`` (the time an epoch took
    before a kill, from its backup) before a ``fit`` that continues it.

    Example:
        >>> timer = EpochTimer("runs/cnn-0/timing.json", images_per_epoch=55000)
    """

    def __init__(self, path: str | os.PathLike, images_per_epoch: int, image_size: int | None = None):
        super().__init__()
        self.path = Path(path)
        self.images_per_epoch = int(images_per_epoch)
        self.image_size = image_size
        self.carried_seconds = 0.0
        self.machine: str | None = None
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        record = json.loads(self.path.read_text()) if self.path.exists() else {"epochs": {}}
        record["epochs"][str(epoch)] = {
            "seconds": round(self.carried_seconds + time.perf_counter() - self._started, 2),
            "images": self.images_per_epoch,
            "image_size": self.image_size,
            **({"machine": self.machine} if self.machine else {}),
        }
        atomic_write_text(self.path, json.dumps(record, indent=1))


def exclude_epoch(timing: str | os.PathLike, epoch: int, reason: str) -> dict:
    """Move ``epoch``'s record (1-based, as Keras prints it) from ``timing.json`` to ``timing.excluded.json``
    beside it, with ``reason``: an epoch slowed by something else (the run paused, a test suite beside
    it) then leaves the run's hours and images/s, and its card says which epochs were left out and why.
    Safe while the run trains (the timer re-reads ``timing.json``); both files are written atomically.
    Returns the moved record.

    Example:
        >>> exclude_epoch("runs/cnn-0/timing.json", 13, "paused 15 minutes for the test suites")  # doctest: +SKIP
        {'seconds': 1262.33, 'images': 54784, 'image_size': 16, 'reason': 'paused 15 minutes for the test suites'}
    """
    timing = Path(timing).expanduser()
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"Say why the epoch is left out: `reason` must be a non-empty string. Received: reason={reason!r}")
    records = json.loads(timing.read_text()) if timing.exists() else {"epochs": {}}
    key = str(int(epoch) - 1) if isinstance(epoch, int) and not isinstance(epoch, bool) else None
    if key not in records["epochs"]:
        timed = sorted(int(k) + 1 for k in records["epochs"])
        raise ValueError(f"No timing record of epoch {epoch!r} in {str(timing)!r}. Accepted: one of the timed epochs "
                         f"{timed[:3] + ['...'] + timed[-3:] if len(timed) > 6 else timed}. Received: epoch={epoch!r}")
    excluded_path = timing.with_name(EXCLUDED_NAME)
    excluded = json.loads(excluded_path.read_text()) if excluded_path.exists() else {"epochs": {}}
    moved = {**records["epochs"].pop(key), "reason": reason.strip()}
    excluded["epochs"][key] = moved
    atomic_write_text(excluded_path, json.dumps(excluded, indent=1))  # first: a kill between the writes loses nothing
    atomic_write_text(timing, json.dumps(records, indent=1))
    return moved


def summarize_timing(path: str | os.PathLike, epochs: int) -> dict | None:
    """Hours and images per second of a run from its ``timing.json`` (``None`` without one).

    ``epochs_timed`` says how many of the run's ``epochs`` the figures cover (a run started by
    an older version may have epochs without a record; ``epochs_excluded`` maps the 1-based epochs
    :func:`exclude_epoch` left out to why). Seconds include validation. A run whose
    epochs trained on more than one machine also gets ``images_per_second_by_machine`` (an epoch
    continued after a kill counts for the machine that finished it).

    Example:
        >>> summarize_timing("/nonexistent/timing.json", 3) is None
        True
    """
    path = Path(path)
    if not path.exists():
        return None
    records = json.loads(path.read_text())["epochs"]
    seconds = sum(r["seconds"] for r in records.values())
    images = sum(r["images"] for r in records.values())
    by_size: dict[str, list[float]] = {}
    by_machine: dict[str, list[float]] = {}
    for r in records.values():
        for groups, key in ((by_size, str(r["image_size"] or "full")), (by_machine, r.get("machine") or "not recorded")):
            totals = groups.setdefault(key, [0.0, 0.0])
            totals[0] += r["images"]
            totals[1] += r["seconds"]
    summary = {
        "epochs_timed": len(records),
        "epochs": epochs,
        "hours": round(seconds / 3600, 2),
        "images_per_second": round(images / seconds, 1) if seconds else None,
        "images_per_second_by_size": {k: round(v[0] / v[1], 1) for k, v in by_size.items() if v[1]},
    }
    if len(by_machine) > 1:  # an average over machines says little about either
        summary["images_per_second_by_machine"] = {k: round(v[0] / v[1], 1) for k, v in by_machine.items() if v[1]}
    excluded = path.with_name(EXCLUDED_NAME)
    if excluded.exists():
        left_out = json.loads(excluded.read_text())["epochs"]
        summary["epochs_excluded"] = {str(int(k) + 1): r.get("reason", "") for k, r in sorted(left_out.items(), key=lambda i: int(i[0]))}
    return summary


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

    def restore_record(self) -> None:
        """Take the best value and epoch from a previous process's ``best.json``, if any."""
        if self.record_path.exists() and self.weights_path.exists():
            record = json.loads(self.record_path.read_text())
            self.best, self.best_epoch = record["value"], record["epoch"]

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.restore_record()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
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
            atomic_write_text(self.record_path, json.dumps(record))


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose state survives a kill at any moment, random state included.

    Keras' callback overwrites ``latest.weights.h5`` and then ``training_metadata.json`` in
    place: a kill during the write leaves a corrupt file or a pair of different epochs. It also
    leaves out the seed generators' state, so after a resume dropout draws the masks of epoch 0
    again and the run ends elsewhere than an uninterrupted one. Here each backup goes to
    the slot (``a``/``b``) that ``training_metadata.json`` does not name: model and optimizer in
    ``slot-<s>.weights.h5``, every other variable of the model (seed generators) in
    ``slot-<s>.state.safetensors`` (with torch's global generator, which its unseeded dropout
    draws from); both are fsynced, then ``training_metadata.json`` is replaced atomically to name
    the new slot. A backup of Keras' own callback is still restored.

    With ``interval_s``, the state is also saved in the middle of an epoch, after the first batch
    that ends ``interval_s`` seconds or more after the last save: ``training_metadata.json`` then
    names the epochs completed and the batches done of the next one (``{"epoch": 3, "batch":
    120}``), and a resumed run continues at that batch (``zoo.training.fit.fit_run`` trains the
    rest of the epoch, :class:`zoo.data.pipeline.EpochRemainder`), so a kill loses at most about
    ``interval_s`` seconds of work instead of the epoch in progress. The time only decides
    when a save happens, never what is trained. Such a backup also records ``seconds``, the
    epoch's training time so far, and ``logs``, the epoch's training figures so far (means over
    its batches; left out when a compiled metric is not a mean). ``batch_offset``,
    ``carried_seconds`` and ``carried_logs`` describe a ``fit`` that continues an epoch: the
    batches it skips (its batch 0 is the epoch's batch ``batch_offset``), the seconds the epoch
    took before and its figures over those batches (:meth:`epoch_logs` merges them with the
    ``fit``'s own, :class:`ResumedEpochLogs` at the epoch's end). For single-process runs: each
    process decides on its own clock.

    Example:
        >>> backup = ResumableBackup("runs/cnn-0/backup", interval_s=600)
        >>> backup.save_freq, backup.interval_s
        ('epoch', 600.0)
    """

    def __init__(self, backup_dir: str | os.PathLike, interval_s: float | None = None):
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=False)
        self.folder = Path(backup_dir)
        if interval_s is not None and (
            isinstance(interval_s, bool) or not isinstance(interval_s, (int, float)) or not interval_s >= 0
        ):
            raise ValueError(f"`interval_s` must be None or a number of seconds >= 0. Received: interval_s={interval_s!r}")
        self.interval_s = None if interval_s is None else float(interval_s)
        self.batch_offset = 0
        self.carried_seconds = 0.0
        self.carried_logs: dict[str, float] = {}
        self._epoch = 0
        self._epoch_started = time.monotonic()
        self._pending_rng: dict[str, np.ndarray] | None = None
        self._last_save = time.monotonic()

    @property
    def metadata_path(self) -> Path:
        return self.folder / "training_metadata.json"

    def _slot(self) -> str | None:
        if not self.metadata_path.exists():
            return None
        return json.loads(self.metadata_path.read_text()).get("slot")

    def _extra_state(self) -> dict[str, keras.Variable]:
        """The model's variables that ``save_weights`` leaves out (seed generator states)."""
        saved = {id(v) for v in self.model.weights}
        extra = [v for v in self.model.variables if id(v) not in saved]
        # Keyed by position: seed generator paths carry a per-process counter.
        return {f"{i:04d}": v for i, v in enumerate(extra)}

    def on_train_begin(self, logs: dict | None = None) -> None:
        slot = self._slot()
        if slot is not None:
            self._weights_path = str(self.folder / f"slot-{slot}.weights.h5")
        # Keras keeps the epoch a backup restored on the model, for every later fit: a run of several
        # fits with a backup each (fine-tuning phases) would start the next one there.
        self.model._initial_epoch = None
        super().on_train_begin(logs)
        self.restore_state()
        self._last_save = time.monotonic()

    def restore_state(self) -> bool:
        """Set the seed generators and the global generators (not the weights) to the last backup's;
        returns whether the backup had a state. A run of several ``fit`` calls (the fine-tuning
        phases) resumed between two calls restores the previous call's this way. After a backup
        inside an epoch, the global generators are set at the next ``fit``'s first batch.
        """
        self._pending_rng = None
        slot = self._slot()
        state_path = self.folder / f"slot-{slot}.state.safetensors"
        if slot is None or not state_path.exists():
            return False
        arrays, variables = load_file(str(state_path)), self._extra_state()
        global_rng = {k: arrays.pop(k) for k in list(arrays) if k.startswith(_RNG_PREFIX)}
        if json.loads(self.metadata_path.read_text()).get("batch"):
            # Saved after a batch: the state follows the creation of that epoch's batch iterator,
            # which draws from torch's global generator (DataLoader's base seed). The resumed
            # fit creates its iterator first, then trains: set the state right before its first batch.
            self._pending_rng = global_rng
        else:
            _set_global_rng(global_rng)
        shapes = {k: tuple(a.shape) for k, a in arrays.items()}
        if shapes != {k: tuple(v.shape) for k, v in variables.items()}:
            raise ValueError(
                f"The backup {str(state_path)!r} does not fit this model: it holds {len(arrays)} state "
                f"variables {sorted(shapes.values())}, the model has {len(variables)}. Resume with the "
                "settings the run started with."
            )
        for key, variable in variables.items():
            variable.assign(arrays[key])
        return True

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        self._epoch_started = time.monotonic()

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self._pending_rng is not None:
            _set_global_rng(self._pending_rng)
            self._pending_rng = None

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.interval_s is None or time.monotonic() - self._last_save < self.interval_s:
            return
        steps = (self.params or {}).get("steps")
        if steps is not None and batch + 1 >= steps:
            return  # the epoch's end saves it
        seconds = self.carried_seconds + time.monotonic() - self._epoch_started
        so_far = self.epoch_logs(logs or {}, batches=batch + 1) if _metrics_are_means(self.model) else None
        self._save(epoch=self._epoch, batch=self.batch_offset + batch + 1, seconds=seconds, logs=so_far)

    def epoch_logs(self, logs: dict, batches: int) -> dict[str, float]:
        """The epoch's training figures over its first ``batch_offset + batches`` batches, from
        ``logs`` (this ``fit``'s means over its ``batches`` batches) and ``carried_logs`` (the
        means over the ``batch_offset`` batches before it). The training set drops its remainder,
        so batches hold equally many examples and the means weigh by batch counts. A figure that
        ``carried_logs`` lacks (a backup written before they were recorded) is left out: this
        ``fit``'s value alone covers only part of the epoch.

        Example:
            >>> backup = ResumableBackup("runs/cnn-0/backup")
            >>> backup.batch_offset, backup.carried_logs = 3, {"loss": 1.0}
            >>> backup.epoch_logs({"loss": 2.0, "val_loss": 5.0}, batches=1)
            {'loss': 1.25}
        """
        own = {k: float(v) for k, v in logs.items() if not k.startswith("val_") and _is_real(v)}
        done = self.batch_offset
        if not done:
            return own
        carried = self.carried_logs
        return {k: (carried[k] * done + v * batches) / (done + batches) for k, v in own.items() if k in carried}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        self._save(epoch=epoch + 1, batch=0)

    def load_into(self, model: keras.Model) -> bool:
        """Load the last backup's weights and optimizer state into ``model`` (as a ``fit`` with
        this callback does when it starts); returns whether there was a backup."""
        slot = self._slot()
        if slot is None:
            return False
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(str(self.folder / f"slot-{slot}.weights.h5"))
        return True

    def _save(self, *, epoch: int, batch: int, seconds: float | None = None, logs: dict | None = None) -> None:
        """Write the training state to the free slot, then name it: ``epoch`` epochs done and
        ``batch`` batches of the next (trained in ``seconds``, with the training figures ``logs``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        slot = "b" if self._slot() == "a" else "a"
        # The slot that the metadata does not name: a kill while writing it costs nothing.
        weights = self.folder / f"slot-{slot}.weights.h5"
        self.model.save_weights(str(weights), overwrite=True)
        fsync_file(weights)
        state = {k: np.asarray(keras.ops.convert_to_numpy(v)) for k, v in self._extra_state().items()}
        state.update(_global_rng())
        state_path = self.folder / f"slot-{slot}.state.safetensors"
        save_file(state, str(state_path))
        fsync_file(state_path)
        record: dict = {"epoch": epoch, "batch": batch, "slot": slot}
        if seconds is not None:
            record["seconds"] = round(seconds, 2)
        if logs:
            record["logs"] = logs
        atomic_write_text(self.metadata_path, json.dumps(record))
        self._weights_path = str(weights)
        self._last_save = time.monotonic()


class ResumedEpochLogs(keras.callbacks.Callback):
    """Makes the logs of an epoch continued after a kill cover the whole epoch.

    A ``fit`` that trains the rest of an epoch (``backup.batch_offset > 0``) logs means over the
    remaining batches only; at its epoch's end this merges them with the backup's figures for
    the batches before the kill (:meth:`ResumableBackup.epoch_logs`), so history.csv's row is the
    one an uninterrupted run writes. Put it before the callbacks that read epoch logs
    (``CSVLogger``, ``BestWeights``); Keras' ``History`` and progress bar come after them all.

    Example:
        >>> backup = ResumableBackup("runs/cnn-0/backup")
        >>> callbacks = [ResumedEpochLogs(backup), keras.callbacks.CSVLogger("history.csv"), backup]
    """

    def __init__(self, backup: ResumableBackup):
        super().__init__()
        self.backup = backup
        self._batches = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._batches = 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._batches += 1  # the batches trained, also when a callback stops the epoch early

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None or not self._batches or not self.backup.batch_offset or not self.backup.carried_logs:
            return
        logs.update(self.backup.epoch_logs(logs, batches=self._batches))


def carried_figures(logs: object) -> dict[str, float]:
    """The training figures of a backup record's ``"logs"`` (figure name -> real number), checked;
    raises ``ValueError`` when they are not such a mapping (a record edited or damaged by hand).

    Example:
        >>> carried_figures({"loss": 0.5, "accuracy": 0.8})
        {'loss': 0.5, 'accuracy': 0.8}
        >>> carried_figures(None)
        {}
    """
    if logs is None:
        return {}
    if not isinstance(logs, dict) or not all(isinstance(k, str) and _is_real(v) for k, v in logs.items()):
        raise ValueError(
            "A backup's training figures must map figure names to numbers, e.g. "
            f'{{"loss": 0.52, "accuracy": 0.81}}. Received: logs={logs!r}'
        )
    return {k: float(v) for k, v in logs.items()}


def _is_real(value: object) -> bool:
    """A real number (Keras hands callbacks their logs as Python floats); not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _metrics_are_means(model: keras.Model) -> bool:
    """Whether every figure that ``fit`` logs is a mean over examples (the loss trackers,
    accuracy, box IoU): only such figures of two parts of an epoch can be merged."""
    for metric in model.metrics:
        inner = [metric] if isinstance(metric, keras.metrics.Mean) else list(getattr(metric, "metrics", None) or [metric])
        if not all(isinstance(m, keras.metrics.Mean) for m in inner):
            return False
    return True


_RNG_PREFIX = "rng/"


def _global_rng() -> dict[str, np.ndarray]:
    """Global generator states that training draws from, by backend (torch's; none elsewhere:
    TensorFlow and JAX draw every random number from the model's seed generators)."""
    if keras.backend.backend() != "torch":
        return {}
    import torch

    states = {f"{_RNG_PREFIX}torch": torch.get_rng_state().numpy()}
    if torch.cuda.is_available():
        states.update({f"{_RNG_PREFIX}torch_cuda_{i}": s.numpy() for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return states


def _set_global_rng(states: dict[str, np.ndarray]) -> None:
    if not states or keras.backend.backend() != "torch":
        return
    import torch

    if f"{_RNG_PREFIX}torch" in states:
        torch.set_rng_state(torch.from_numpy(states[f"{_RNG_PREFIX}torch"]))
    cuda = [states[k] for k in sorted(states) if k.startswith(f"{_RNG_PREFIX}torch_cuda_")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([torch.from_numpy(c) for c in cuda])

"""The run folder: its layout, and the rule that an existing run is never silently replaced.

Layout of a finished run::

    runs/cnn-0/
        run.json               marker: architecture, recipe, command, status (written first);
                               the machine of each session (``sessions``)
        config.json            zoo.format.save_folder: the builder's arguments
        metadata.json          metrics, recipe, training facts, weight hashes
        model.safetensors      the best epoch (by the recipe's ``monitor``)
        last.safetensors       the last epoch
        metrics.json           test metrics of model.safetensors (zoo.evaluation.evaluate)
        history.csv            one row per epoch (keras.callbacks.CSVLogger)
        timing.json            seconds, images and image size of every epoch (all sessions)
        timing.excluded.json   epochs left out of the figures, each with why (``callbacks.exclude_epoch``)
        training_curves.png
        confusion_matrix.png   classifiers
        boxes.png              the localizer: predicted vs true boxes
        README.md              model card (zoo.cards.render_card)

While training, ``backup/`` (:class:`zoo.training.callbacks.ResumableBackup`) and ``best/`` (best
weights so far) hold the state needed to resume; both are removed when the run completes.
``.run.lock`` holds the pid of the process training into the folder: while it is locked
(``fcntl.flock``, released by the kernel when that process ends, however it ends) a second
training into the folder is refused with :class:`RunInUseError`. Every file is written
atomically (``zoo.atomic``).

Example:
    >>> import tempfile
    >>> run = prepare_run_dir(Path(tempfile.mkdtemp()) / "cnn-0", resume=False, overwrite=False)
    >>> run.weights.name
    'model.safetensors'
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.atomic import atomic_write_text, is_temporary, lock_exclusively
from zoo.plots import BOXES_NAME, CONFUSION_NAME, CURVES_NAME

__all__ = ["RunDir", "RunExistsError", "RunInUseError", "RunLock", "default_run_dir", "prepare_run_dir"]

MARKER = "run.json"
LOCK_NAME = ".run.lock"


class RunExistsError(FileExistsError):
    """The run folder already holds a run and neither ``resume`` nor ``overwrite`` was given."""


class RunInUseError(RunExistsError):
    """Another process (or an unfinished plan of this one) is training into the run folder."""


class RunLock:
    """An exclusive lock on a run folder: ``.run.lock`` holding the holder's pid, host and command.

    The lock is an ``fcntl.flock`` on that file: the kernel drops it when the holder's process
    ends, so the file of a killed run never blocks the next one. The file itself is never
    removed (removing it would let two processes lock two different files).

    Example:
        >>> import tempfile
        >>> lock = RunLock(tempfile.mkdtemp()).acquire()
        >>> lock.holder()["pid"] == os.getpid()
        True
        >>> lock.release()
    """

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def holder(self) -> dict[str, Any]:
        """What the lock file says about its holder (empty when unreadable)."""
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def acquire(self) -> "RunLock":
        """Take the lock or raise :class:`RunInUseError` naming the holder; returns ``self``."""
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = lock_exclusively(self.path)
        except BlockingIOError:
            holder = self.holder()
            who = "this process" if holder.get("pid") == os.getpid() else f"process {holder.get('pid', '?')}"
            hint = (
                " An earlier plan of this process (prepare_run / prepare_run_dir) still holds it: finish "
                "that run or call its run.release()." if who == "this process" else
                " Wait for it to end (or stop it), or choose another output folder."
            )
            raise RunInUseError(
                f"The run folder {str(self.path.parent)!r} is in use by {who} on "
                f"{holder.get('host', '?')} (since {holder.get('since', '?')}, command: "
                f"{holder.get('command', '?')}): a second training into the same folder is refused.{hint}"
            ) from None
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock back (closing the file releases it)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run folder.

    Example:
        >>> RunDir(Path("runs/x")).history
        PosixPath('runs/x/history.csv')
    """

    path: Path
    lock: RunLock | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:  # "~/runs/x" is the user's home, as zoo.load reads it
        object.__setattr__(self, "path", Path(self.path).expanduser())

    marker = property(lambda self: self.path / MARKER)
    config = property(lambda self: self.path / "config.json")
    weights = property(lambda self: self.path / "model.safetensors")
    last = property(lambda self: self.path / "last.safetensors")
    metrics = property(lambda self: self.path / "metrics.json")
    history = property(lambda self: self.path / "history.csv")
    timing = property(lambda self: self.path / "timing.json")
    timing_excluded = property(lambda self: self.path / "timing.excluded.json")
    curves = property(lambda self: self.path / CURVES_NAME)
    confusion = property(lambda self: self.path / CONFUSION_NAME)
    boxes = property(lambda self: self.path / BOXES_NAME)
    readme = property(lambda self: self.path / "README.md")
    backup = property(lambda self: self.path / "backup")
    best = property(lambda self: self.path / "best")

    @property
    def is_run(self) -> bool:
        """Whether the folder was created by :func:`zoo.training.train`."""
        return self.marker.exists()

    @property
    def is_complete(self) -> bool:
        """Whether training finished and the results were written."""
        return self.is_run and self.read_marker().get("status") == "complete"

    def read_marker(self) -> dict[str, Any]:
        """The content of ``run.json`` (empty when missing)."""
        return json.loads(self.marker.read_text()) if self.marker.exists() else {}

    def write_marker(self, **fields: Any) -> None:
        """Merge ``fields`` into ``run.json`` (written atomically)."""
        data = {**self.read_marker(), **fields}
        atomic_write_text(self.marker, json.dumps(data, indent=2, default=str))

    def release(self) -> None:
        """Give back the folder's lock (:func:`prepare_run_dir` took it), if held."""
        if self.lock is not None:
            self.lock.release()

    def backed_up_epochs(self) -> int:
        """Epochs completed according to the BackupAndRestore state (0 when none)."""
        return int(self.backup_record().get("epoch", 0))

    def backed_up_batches(self) -> int:
        """Batches done of the epoch after :meth:`backed_up_epochs`, according to a backup made in
        the middle of that epoch (0 when the backup is at an epoch's end, or none)."""
        return int(self.backup_record().get("batch") or 0)

    def recorded_epochs(self) -> int:
        """Epochs that left a record (``best/best.json``, ``timing.json``): one may be past the
        backup, when a run was killed between an epoch's records and its backup (0 when none)."""
        counts = [0]
        best = self.best / "best.json"
        if best.exists():
            counts.append(int(json.loads(best.read_text())["epoch"]) + 1)
        if self.timing.exists():
            counts += [int(epoch) + 1 for epoch in json.loads(self.timing.read_text()).get("epochs", {})]
        return max(counts)

    def backup_record(self) -> dict[str, Any]:
        """The backup's ``training_metadata.json`` (empty when none): ``epoch`` (epochs done),
        ``batch`` (batches done of the next), ``slot``; a backup inside an epoch adds ``seconds``
        (training time of that epoch so far) and, when they are means, ``logs`` (its training
        figures so far)."""
        path = self.backup / "training_metadata.json"
        return json.loads(path.read_text()) if path.exists() else {}


def default_run_dir(arch: str, seed: int = 0, root: str | os.PathLike = "runs") -> Path:
    """``runs/<arch>-<seed>``: stable, so rerunning with ``--resume`` finds it again.

    Example:
        >>> default_run_dir("resnet34", seed=1)
        PosixPath('runs/resnet34-1')
    """
    return Path(root) / f"{arch.replace('.', '-')}-{seed}"


def _contents(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name != LOCK_NAME] if folder.is_dir() else []


# Weight files of a run saved in shards (model-00001-of-00003.safetensors) and their index.
_RUN_SHARDS = re.compile(r"^(model|last)(-\d{5}-of-\d{5}\.safetensors|\.safetensors\.index\.json)$")


def _written_by_train(run: RunDir, entry: Path) -> bool:
    """Whether ``entry`` of a run folder is one that training writes (so ``overwrite`` may delete it)."""
    layout = (
        run.marker, run.config, run.weights, run.last, run.metrics, run.history, run.timing, run.timing_excluded,
        run.curves, run.confusion, run.boxes, run.readme, run.backup, run.best, run.path / "metadata.json",
    )
    return entry.name in {p.name for p in layout} or bool(_RUN_SHARDS.match(entry.name)) or is_temporary(entry)


def prepare_run_dir(path: str | os.PathLike, *, resume: bool, overwrite: bool) -> RunDir:
    """Create or reuse the run folder at ``path`` following the refuse-to-overwrite rule, locked.

    * missing or empty folder: used as is (``resume`` then simply starts from scratch);
    * a run folder and ``resume``: reused; training continues from its last backed-up
      epoch (a complete run is refused: nothing to resume);
    * a run folder and ``overwrite``: emptied first, when it holds only what training writes
      (anything else a user put there, e.g. notes or an export: :class:`RunExistsError`);
    * anything else that is not empty: :class:`RunExistsError`. Folders not created by
      ``train`` are never deleted, even with ``overwrite``;
    * a folder another process is training into: :class:`RunInUseError`, before anything is
      touched (even with ``overwrite``).

    The returned :class:`RunDir` holds the folder's lock until ``run.release()``, or until the
    process ends.

    Example:
        >>> import tempfile
        >>> run = prepare_run_dir(Path(tempfile.mkdtemp()) / "cnn-0", resume=False, overwrite=True)
        >>> run.path.name, run.lock.held
        ('cnn-0', True)
        >>> run.release()
    """
    if resume and overwrite:
        raise ValueError("Pass either resume=True or overwrite=True, not both.")
    run = RunDir(Path(path))
    if run.path.exists() and not run.path.is_dir():
        raise RunExistsError(f"{str(run.path)!r} exists and is not a folder.")
    if _contents(run.path) and not run.is_run:
        raise RunExistsError(
            f"{str(run.path)!r} is not empty and is not a zoo run folder (no {MARKER}); "
            "it is never deleted or reused. Choose another output folder."
        )
    lock = RunLock(run.path).acquire()
    try:
        if _contents(run.path):
            if overwrite:
                foreign = sorted(p.name for p in _contents(run.path) if not _written_by_train(run, p))
                if foreign:
                    raise RunExistsError(
                        f"{str(run.path)!r} holds files that training did not write: {foreign}. "
                        "--overwrite replaces a run but never deletes anything else: move them out first, "
                        "or choose another output folder."
                    )
                for child in _contents(run.path):
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            elif resume:
                if run.is_complete:
                    raise RunExistsError(
                        f"The run in {str(run.path)!r} is already complete: nothing to resume. "
                        "Pass overwrite=True (--overwrite) to train it again, or choose another "
                        "output folder."
                    )
            else:
                state = "a complete run" if run.is_complete else "an unfinished run"
                raise RunExistsError(
                    f"{str(run.path)!r} already holds {state}. Pass resume=True (--resume) to "
                    "continue an unfinished run from its last backup, overwrite=True (--overwrite) "
                    "to replace it, or choose another output folder."
                )
    except BaseException:
        lock.release()
        raise
    return RunDir(run.path, lock)

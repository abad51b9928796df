"""The run folder: its layout, and the rule that an existing run is never silently replaced.

Layout of a finished run::

    runs/cnn-0/
        run.json               marker: architecture, recipe, command, status (written first)
        config.json            zoo.format.save_folder: the builder's arguments
        metadata.json          metrics, recipe, training facts, weight hashes
        model.safetensors      the best epoch (by the recipe's ``monitor``)
        last.safetensors       the last epoch
        metrics.json           test metrics of model.safetensors (zoo.evaluation.evaluate)
        history.csv            one row per epoch (keras.callbacks.CSVLogger)
        timing.json            seconds, images and image size of every epoch (all sessions)
        training_curves.png
        confusion_matrix.png   classifiers
        boxes.png              the localizer: predicted vs true boxes
        README.md              model card (zoo.cards.render_card)

While training, ``backup/`` (keras.callbacks.BackupAndRestore) and ``best/`` (best weights so
far) hold the state needed to resume; both are removed when the run completes.

Example:
    >>> import tempfile
    >>> run = prepare_run_dir(Path(tempfile.mkdtemp()) / "cnn-0", resume=False, overwrite=False)
    >>> run.weights.name
    'model.safetensors'
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RunDir", "RunExistsError", "default_run_dir", "prepare_run_dir"]

MARKER = "run.json"


class RunExistsError(FileExistsError):
    """The run folder already holds a run and neither ``resume`` nor ``overwrite`` was given."""


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run folder.

    Example:
        >>> RunDir(Path("runs/x")).history
        PosixPath('runs/x/history.csv')
    """

    path: Path

    marker = property(lambda self: self.path / MARKER)
    config = property(lambda self: self.path / "config.json")
    weights = property(lambda self: self.path / "model.safetensors")
    last = property(lambda self: self.path / "last.safetensors")
    metrics = property(lambda self: self.path / "metrics.json")
    history = property(lambda self: self.path / "history.csv")
    timing = property(lambda self: self.path / "timing.json")
    curves = property(lambda self: self.path / "training_curves.png")
    confusion = property(lambda self: self.path / "confusion_matrix.png")
    boxes = property(lambda self: self.path / "boxes.png")
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
        """Merge ``fields`` into ``run.json``."""
        data = {**self.read_marker(), **fields}
        self.marker.write_text(json.dumps(data, indent=2, default=str))

    def backed_up_epochs(self) -> int:
        """Epochs completed according to the BackupAndRestore state (0 when none)."""
        path = self.backup / "training_metadata.json"
        if not path.exists():
            return 0
        return int(json.loads(path.read_text()).get("epoch", 0))


def default_run_dir(arch: str, seed: int = 0, root: str | os.PathLike = "runs") -> Path:
    """``runs/<arch>-<seed>``: stable, so rerunning with ``--resume`` finds it again.

    Example:
        >>> default_run_dir("resnet34", seed=1)
        PosixPath('runs/resnet34-1')
    """
    return Path(root) / f"{arch.replace('.', '-')}-{seed}"


def prepare_run_dir(path: str | os.PathLike, *, resume: bool, overwrite: bool) -> RunDir:
    """Create or reuse the run folder at ``path`` following the refuse-to-overwrite rule.

    * missing or empty folder: used as is (``resume`` then simply starts from scratch);
    * a run folder and ``resume``: reused; training continues from its last backed-up
      epoch (a complete run is refused: nothing to resume);
    * a run folder and ``overwrite``: emptied first;
    * anything else that is not empty: :class:`RunExistsError`. Folders not created by
      ``train`` are never deleted, even with ``overwrite``.

    Example:
        >>> import tempfile
        >>> prepare_run_dir(Path(tempfile.mkdtemp()) / "cnn-0", resume=False, overwrite=True).path.name
        'cnn-0'
    """
    if resume and overwrite:
        raise ValueError("Pass either resume=True or overwrite=True, not both.")
    run = RunDir(Path(path))
    if run.path.exists() and not run.path.is_dir():
        raise RunExistsError(f"{str(run.path)!r} exists and is not a folder.")
    if run.path.is_dir() and any(run.path.iterdir()):
        if not run.is_run:
            raise RunExistsError(
                f"{str(run.path)!r} is not empty and is not a zoo run folder (no {MARKER}); "
                "it is never deleted or reused. Choose another output folder."
            )
        if overwrite:
            shutil.rmtree(run.path)
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
                "continue an unfinished run from its last epoch, overwrite=True (--overwrite) "
                "to replace it, or choose another output folder."
            )
    run.path.mkdir(parents=True, exist_ok=True)
    return run

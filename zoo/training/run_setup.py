"""What every kind of training run does before and after its epochs.

Both :mod:`zoo.training.fit` (Fashion-MNIST runs) and :mod:`zoo.training.finetune` (image
folders) prepare a run the same way: the command's flags applied to the recipe
(:func:`apply_flags`), the run folder opened, checked against a resumed run's settings and
marked (:func:`open_run`), the model's mixed-precision policy (:func:`training_dtype`); and
close it the same way (:func:`close_run`). This module holds that once.

Example:
    >>> from zoo.training.recipes import get_recipe
    >>> recipe, _ = apply_flags(get_recipe("resnet34"), epochs=None, batch_size=64, lr=None, mixed_precision=False)
    >>> recipe.batch_size, recipe.lr, recipe.mixed_precision
    (64, 0.025, False)
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import keras
import numpy as np

from zoo.atomic import atomic_write_text
from zoo.data.fashion_mnist import check_limit
from zoo.recipe import DESCRIPTIVE_FIELDS, changes_before
from zoo.registry import get_spec, split_name
from zoo.tasks import get_task
from zoo.training.callbacks import BestWeights
from zoo.training.distribute import check_distribute
from zoo.training.precision import resolve_mixed_precision
from zoo.training.recipes import Recipe
from zoo.training.report import push_run, write_results
from zoo.training.run_dir import RunDir, prepare_run_dir

__all__ = [
    "MIXED_POLICY",
    "RunFit",
    "RunPlan",
    "apply_flags",
    "check_backup_minutes",
    "check_monitor",
    "check_resume",
    "check_run_arguments",
    "close_run",
    "open_run",
    "record_session",
    "run_settings",
    "scaled_lr",
    "training_dtype",
    "truncate_history",
]

MIXED_POLICY = "mixed_bfloat16"


@dataclass(kw_only=True)
class RunPlan:
    """What every run decides before a weight moves; each kind of run adds its own fields.

    ``run`` is the folder :func:`open_run` opened: locked until the run ends (``run.release()``).
    """

    name: str
    recipe: Recipe
    model_config: dict[str, Any]
    run: RunDir
    command: str
    precision_reason: str
    seed: int = 0
    distribute: bool = False
    verbose: int = 1
    callbacks: Sequence[keras.callbacks.Callback] = ()


@dataclass(kw_only=True)
class RunFit:
    """What training produced in every kind of run: the model, the best epoch, time and devices."""

    model: keras.Model
    best: BestWeights
    seconds: float
    distribution: str
    num_replicas: int


def scaled_lr(recipe: Recipe, batch_size: int | None, lr: float | None) -> float | None:
    """The peak learning rate for a batch-size override: ``lr`` when given, else linear scaling.

    A recipe's ``lr`` is tuned for its ``batch_size``; with another batch size and no explicit
    ``lr`` the rate scales linearly (Goyal et al., 2017), so a smaller batch does not diverge.
    Returns ``None`` (keep the recipe's) when neither is overridden.

    Example:
        >>> from zoo.training.recipes import get_recipe
        >>> scaled_lr(get_recipe("resnet34"), 64, None), scaled_lr(get_recipe("resnet34"), 64, 0.3)
        (0.025, 0.3)
    """
    if lr is not None or batch_size is None or batch_size == recipe.batch_size:
        return lr
    return recipe.lr * batch_size / recipe.batch_size


def apply_flags(
    recipe: Recipe,
    *,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    mixed_precision: bool | str | None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Recipe, str]:
    """``recipe`` with field ``overrides`` and the command's flags (``None``: the recipe's) and
    the precision decided.

    ``epochs`` and the overrides are applied together, so a new length moves the progressive
    resolutions and the warm restarts to the same share of the run only when the overrides do
    not give them (``Recipe.replace``). A new batch size scales the learning rate unless ``lr``
    is given (:func:`scaled_lr`); ``mixed_precision`` ``None`` keeps the recipe's (``"auto"``
    by default). The recipe's ``monitor`` must be a figure the run logs (:func:`check_monitor`).
    Returns the recipe and why its precision was chosen
    (:func:`zoo.training.precision.resolve_mixed_precision`).

    Example:
        >>> from zoo.training.recipes import get_recipe
        >>> recipe, reason = apply_flags(get_recipe("cnn"), epochs=3, batch_size=None, lr=None, mixed_precision=False)
        >>> recipe.epochs, recipe.mixed_precision
        (3, False)
        >>> apply_flags(get_recipe("resnet34"), epochs=64, batch_size=None, lr=None, mixed_precision=False,
        ...             overrides={"restarts": [[40, 0.2]]})[0].restarts
        ((40, 0.2),)
    """
    given = {**dict(overrides or {}), **({"epochs": epochs} if epochs is not None else {})}
    original, recipe = recipe, recipe.replace(**given) if given else recipe
    # The batch size is checked before the lr scaled from it, so a bad one is reported as such.
    sized = recipe.replace(batch_size=batch_size) if batch_size is not None else recipe
    peak_lr = scaled_lr(recipe, batch_size, lr)
    recipe = sized.replace(lr=peak_lr) if peak_lr is not None else sized
    check_monitor(recipe)
    use_mixed, reason = resolve_mixed_precision(recipe.mixed_precision if mixed_precision is None else mixed_precision)
    return _noted_changes(original, recipe.replace(mixed_precision=use_mixed), given), reason


def _noted_changes(original: Recipe, recipe: Recipe, given: Mapping[str, Any]) -> Recipe:
    """``recipe`` whose notes (written for ``original``) name the fields a run changed, unless
    the run gave notes of its own: a card must not describe a schedule the run did not train.

    Example:
        >>> base = Recipe(arch="cnn", epochs=4, notes="A 4-epoch recipe.")
        >>> _noted_changes(base, base.replace(epochs=2), {"epochs": 2}).notes
        "A 4-epoch recipe. (This run changed the recipe's epochs; the recipe's table has the values it trained with.)"
    """
    changed = [name for name in recipe.to_dict()
               if name not in ("notes", "mixed_precision") and getattr(recipe, name) != getattr(original, name)]
    if not changed or "notes" in given or not original.notes:
        return recipe
    return recipe.replace(notes=f"{original.notes} (This run changed the recipe's {', '.join(changed)}; "
                                "the recipe's table has the values it trained with.)")


def check_run_arguments(*, limit: int | None, seed: int, distribute: bool) -> None:
    """Refuse a run's arguments before anything is written: the data limit, the seed, the devices.

    The recipe's own fields (epochs, batch size, lr...) are checked by ``Recipe``.

    Example:
        >>> check_run_arguments(limit=None, seed=0, distribute=False)
        >>> check_run_arguments(limit=0, seed=0, distribute=False)
        Traceback (most recent call last):
        ...
        ValueError: `limit` must be None or a positive int. Received: limit=0
    """
    check_limit(limit)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"`seed` must be an int from 0 to 2**32 - 1. Received: seed={seed!r}")
    check_distribute(distribute)


def check_monitor(recipe: Recipe) -> None:
    """Refuse a ``monitor`` that the run will not log (it would fail after the first epoch).

    Example:
        >>> check_monitor(Recipe(arch="cnn", monitor="val_loss"))
        >>> check_monitor(Recipe(arch="cnn", monitor="val_acc"))
        Traceback (most recent call last):
        ...
        ValueError: `monitor` must be a figure by which a classification run can pick its best epoch: one of ['accuracy', 'loss', 'val_accuracy', 'val_loss']. Received: monitor='val_acc'
    """
    figures = get_task(recipe.task).logged_figures
    known = sorted([*figures, *(f"val_{name}" for name in figures)])
    if recipe.monitor not in known:
        raise ValueError(
            f"`monitor` must be a figure by which a {recipe.task} run can pick its best epoch: one of {known}. "
            f"Received: monitor={recipe.monitor!r}"
        )


def check_backup_minutes(minutes: float | None) -> None:
    """Refuse a backup interval that is not ``None`` or a number of minutes >= 0.

    Example:
        >>> check_backup_minutes(10)
        >>> check_backup_minutes(-1)
        Traceback (most recent call last):
        ...
        ValueError: `backup_minutes` must be None (backups at epoch ends only) or a number of minutes >= 0. Received: backup_minutes=-1
    """
    if minutes is None:
        return
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float, np.integer, np.floating)) or not minutes >= 0:
        raise ValueError(
            "`backup_minutes` must be None (backups at epoch ends only) or a number of minutes >= 0. "
            f"Received: backup_minutes={minutes!r}"
        )


def run_settings(name: str, recipe: Recipe, model_overrides: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """What a resumed run must share with the run it continues (stored in ``run.json``).

    Example:
        >>> from zoo.training.recipes import get_recipe
        >>> sorted(run_settings("cnn", get_recipe("cnn"), {"input_shape": (28, 28, 1)}, seed=0))
        ['model_overrides', 'name', 'recipe', 'seed']
    """
    overrides = {k: list(v) if isinstance(v, tuple) else v for k, v in model_overrides.items()}
    return {"name": name, "recipe": recipe.to_dict(), "model_overrides": overrides, **extra}


def check_resume(
    run: RunDir, settings: Mapping[str, Any], *, epochs_begun: int | None = None
) -> dict[str, Any] | None:
    """Refuse to resume ``run`` with settings other than those it was started with.

    Recipe fields added to zoo after the run started are compatible while they hold their
    default, and the recipe's notes are not compared (``zoo.recipe.DESCRIPTIVE_FIELDS``: the
    given ones are recorded). The backend must be the run's too: its record and card name one backend. With
    ``epochs_begun`` (the epochs the run has finished or started), the recipe's schedule
    fields (``zoo.recipe.SCHEDULE_FIELDS``: its length, warm restarts and progressive
    resolutions) may change when those epochs train the same under the new recipe
    (``zoo.recipe.changes_before``), e.g. a run lengthened before its last learning-rate cycle
    begins; the new settings then reproduce the whole run from scratch. Returns that change
    (``{"epochs_begun": ..., "from": {...}, "to": {...}}``) or ``None``; raises ``ValueError``
    naming what differs otherwise.

    Example:
        >>> check_resume(run, run_settings("cnn", recipe, {}))   # doctest: +SKIP
    """
    marker = run.read_marker()
    backend = keras.backend.backend()
    if marker.get("backend") not in (None, backend):
        raise ValueError(
            f"The run in {str(run.path)!r} trains on the {marker['backend']} backend; resume it with "
            f"`--backend {marker['backend']}` (or KERAS_BACKEND={marker['backend']}). Received: backend={backend!r}"
        )
    stored = marker.get("settings")
    if stored is not None and isinstance(stored.get("recipe"), dict):
        defaults = Recipe(arch=settings["recipe"]["arch"]).to_dict()
        current = dict(settings["recipe"])
        for key in set(current) - set(stored["recipe"]):
            if json.dumps(current[key]) == json.dumps(defaults.get(key)):
                del current[key]
        settings = {**settings, "recipe": current}
    if stored is None:
        return None
    stored, settings = json.loads(json.dumps(stored)), json.loads(json.dumps(settings))
    for side in (stored, settings):  # a recipe's notes describe it; they train nothing (zoo.recipe.DESCRIPTIVE_FIELDS)
        if isinstance(side.get("recipe"), dict):
            for name in DESCRIPTIVE_FIELDS:
                side["recipe"].pop(name, None)
    if stored == settings:
        return None
    changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
    if changed != ["recipe"] or epochs_begun is None:
        raise ValueError(
            f"Cannot resume {str(run.path)!r} with different settings "
            f"({'; '.join(_setting_changes(stored, settings))}). Rerun with the original arguments, or pass "
            "overwrite=True (--overwrite) to start again."
        )
    old_fields, new_fields = stored["recipe"], settings["recipe"]
    fields = sorted(k for k in set(old_fields) | set(new_fields) if old_fields.get(k) != new_fields.get(k))
    try:
        old = Recipe(**{**Recipe(arch=old_fields["arch"]).to_dict(), **old_fields})
        new = Recipe(**new_fields)
    except (TypeError, ValueError, KeyError) as error:  # a recipe field removed since the run started
        raise ValueError(
            f"Cannot resume {str(run.path)!r}: its recorded recipe does not fit this version of zoo ({error}). "
            "Rerun with the original arguments and version, or pass overwrite=True (--overwrite) to start again."
        ) from None
    changes = changes_before(old, new, epochs_begun, input_size=_input_size(settings))
    if changes:
        raise ValueError(
            f"Cannot resume {str(run.path)!r} with different settings: the recipe would train the {epochs_begun} "
            f"epochs it has begun otherwise ({'; '.join(changes)}). A resumed run may change only its schedule "
            "after them: its length, later warm restarts and later resolutions (`--epochs` also moves the "
            "resolutions and the restarts unless `--set resolutions=...` and `--set restarts=...` give them). "
            "Rerun with the original arguments, or pass overwrite=True (--overwrite) to start again."
        )
    return {
        "epochs_begun": epochs_begun,
        "from": {k: old_fields.get(k) for k in fields},
        "to": {k: new_fields.get(k) for k in fields},
    }


def _input_size(settings: Mapping[str, Any]) -> int | None:
    """The input height of the model a run's ``settings`` describe (``None`` when they name none)."""
    name = settings.get("name")
    if not isinstance(name, str):
        return None
    config = get_spec(name).config_for(split_name(name)[1], dict(settings.get("model_overrides") or {}))
    shape = config.get("input_shape")
    return int(shape[0]) if shape and shape[0] is not None else None


def _setting_changes(stored: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """``"name: stored -> given"`` for each setting that differs, recipe fields one by one."""
    changes = []
    for key in sorted(set(stored) | set(settings)):
        before, after = stored.get(key), settings.get(key)
        if before == after:
            continue
        if key == "recipe" and isinstance(before, dict) and isinstance(after, dict):
            changes += [
                f"recipe.{field}: {before.get(field)!r} -> {after.get(field)!r}"
                for field in sorted(set(before) | set(after)) if before.get(field) != after.get(field)
            ]
        else:
            changes.append(f"{key}: {before!r} -> {after!r}")
    return changes


def open_run(
    output_dir: str | os.PathLike,
    *,
    resume: bool,
    overwrite: bool,
    architecture: str,
    settings: Mapping[str, Any],
    command: str,
    epochs_done: Callable[[RunDir], int],
    schedule_may_change: bool = False,
) -> tuple[RunDir, int]:
    """Open and lock the run folder, check a resumed run, and mark the folder as training.

    Returns the folder (locked until ``run.release()``) and the epochs already done
    (``epochs_done(run)`` when resuming, else 0). Nothing stays locked when a check fails.
    ``schedule_may_change``: a resumed run may get a new length, later warm restarts and
    later resolutions (:func:`check_resume`); the change is noted and kept in ``run.json``
    (``schedule_changes``), and the new settings and command replace the old ones.

    Example:
        >>> run, done = open_run("runs/x", resume=False, overwrite=False, architecture="cnn",
        ...                      settings={}, command="", epochs_done=RunDir.backed_up_epochs)  # doctest: +SKIP
    """
    run = prepare_run_dir(output_dir, resume=resume, overwrite=overwrite)
    try:
        done = epochs_done(run) if resume else 0
        fields: dict[str, Any] = {}
        if resume and not run.marker.exists():  # a mistyped --output would otherwise start hours of training unnoticed
            print(f"[zoo] --resume: {run.path} holds no run yet, so training starts at epoch 1 (check --output "
                  "if you meant to continue a run)", flush=True)
        if resume:
            # An epoch may have written its best weights and timing but not its backup yet: it was begun.
            begun = (max(done + (1 if run.backed_up_batches() else 0), run.recorded_epochs())
                     if schedule_may_change else None)
            change = check_resume(run, settings, epochs_begun=begun)
            if change is not None:
                previous = run.read_marker()
                change["command_was"] = previous.get("command")
                fields["schedule_changes"] = [*previous.get("schedule_changes", []), change]
                print(f"[zoo] the run in {run.path} changes its schedule after the {begun} epochs it has begun, "
                      f"which train the same: {change['from']} -> {change['to']}", flush=True)
        run.write_marker(status="training", architecture=architecture, settings=dict(settings), command=command,
                         backend=keras.backend.backend(), **fields)
    except BaseException:
        run.release()
        raise
    return run, done


def record_session(run: RunDir, where: str, *, epochs_done: int, batches_done: int = 0) -> None:
    """Add this session to ``run.json``'s ``sessions``: the machine it trains on (``where``,
    :func:`zoo.training.report.trained_on`), the point it starts from and when (UTC). The card
    names every machine a run trained on (:func:`zoo.training.report.trained_on_sessions`).

    Example:
        >>> record_session(run, trained_on(), epochs_done=19, batches_done=40)  # doctest: +SKIP
    """
    session = {
        "trained_on": where, "epochs_done": int(epochs_done), "batches_done": int(batches_done),
        "began": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    run.write_marker(sessions=[*run.read_marker().get("sessions", []), session])


def training_dtype(name: str, mixed_precision: bool) -> dict[str, Any]:
    """The model override that trains ``name`` in mixed precision (``{}`` in float32).

    Mixed precision is the model's own dtype policy; the global policy is left alone.

    Example:
        >>> training_dtype("cnn", True), training_dtype("cnn", False)
        ({'dtype': 'mixed_bfloat16'}, {})
    """
    if not mixed_precision:
        return {}
    if "dtype" not in get_spec(name).default_config:
        raise ValueError(
            f"Mixed precision trains with the model's own dtype policy, and the builder of {name!r} takes "
            "no `dtype` argument. Add one (see zoo/models/cnn.py) or train with mixed_precision=False. "
            "Received: mixed_precision=True"
        )
    return {"dtype": MIXED_POLICY}


def truncate_history(path: Path, epochs: int) -> None:
    """Keep the rows of the first ``epochs`` epochs (a killed run may have logged one more).

    Example:
        >>> truncate_history(Path("/nonexistent/history.csv"), 3)
    """
    if not path.exists():
        return
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    kept = [rows[0]] + [row for row in rows[1:] if row and int(float(row[0])) < epochs]
    text = io.StringIO(newline="")
    csv.writer(text).writerows(kept)
    atomic_write_text(path, text.getvalue())


def close_run(
    run: RunDir,
    final: keras.Model,
    metadata: Mapping[str, Any],
    evaluated: tuple[np.ndarray, Any, Any],
    *,
    summary: str,
    push: str | None = None,
) -> None:
    """Write a finished run's results, drop its resume state, unlock it, report, and push.

    ``evaluated`` = (images, targets, outputs) of the split the metrics are from. The resume
    state (``best/``, ``backup/``) is removed only once the results exist.

    Example:
        >>> close_run(run, final, metadata, (x, y, outputs), summary="done")   # doctest: +SKIP
    """
    images, targets, outputs = evaluated
    metrics = metadata["metrics"]
    write_results(run, final, dict(metadata), metrics, images, targets, outputs)
    run.write_marker(status="complete", metrics=metrics, training=metadata["training"])
    shutil.rmtree(run.best, ignore_errors=True)
    shutil.rmtree(run.backup, ignore_errors=True)
    run.release()
    print(summary)
    if push:
        print(f"[zoo] pushed {run.path} to {push} at {push_run(run.path, push)}")

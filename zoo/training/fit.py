"""``train``: one call from an architecture name to a finished run folder.

``train`` = :func:`prepare_run` (recipe, config, run folder: a :class:`TrainingPlan`) ->
:func:`fit_run` (data, model, one ``model.fit`` per resolution phase: a :class:`FitResult`) ->
:func:`finalize_run` (test metrics, exported folder, figures, card: a :class:`RunResult`).

Example:
    >>> from zoo.training import train
    >>> run = train("cnn", output_dir="runs/cnn-quick", epochs=1, limit=512)  # doctest: +SKIP
    >>> sorted(p.name for p in run.iterdir())                              # doctest: +SKIP
    ['README.md', 'config.json', 'confusion_matrix.png', 'history.csv', ...]
"""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import keras

from zoo.api import create, resolve
from zoo.data import LABEL_NAMES
from zoo.data.fashion_mnist import SPLIT_SIZES, check_data_dir, load_fashion_mnist
from zoo.data.pipeline import EpochRemainder
from zoo.evaluation import predict
from zoo.hub import push_target
from zoo.logits import logits_view
from zoo.registry import WeightSpec, get_spec, split_name
from zoo.tasks import task_of
from zoo.training.callbacks import (
    BestWeights, EpochTimer, LogLearningRate, ResumableBackup, ResumedEpochLogs, carried_figures, summarize_timing,
)
from zoo.training.data import TrainingData, check_limit_leaves_training, load_training_data, validation_size
from zoo.training.distribute import check_parallel_split, data_parallel, device_count
from zoo.training.initial_weights import InitialWeights, check_outside_output, check_same_model, initial_weights
from zoo.training.recipes import Recipe, get_recipe
from zoo.training.report import summary_line, trained_on, trained_on_sessions
from zoo.training.run_dir import RunDir
from zoo.training.run_setup import (
    MIXED_POLICY,
    RunFit,
    RunPlan,
    apply_flags,
    check_backup_minutes,
    check_run_arguments,
    close_run,
    open_run,
    record_session,
    run_settings,
    scaled_lr,
    training_dtype,
    truncate_history,
)
from zoo.training.schedules import Piecewise
from zoo.weights import load_weights, save_weights

#: Minutes between backups in the middle of an epoch (:class:`ResumableBackup`'s ``interval_s``):
#: a killed run loses at most about this much training. A backup of ResNet-34 (weights and
#: optimizer, ~170 MB) takes about a second.
DEFAULT_BACKUP_MINUTES = 10.0

#: Keras' ``fit`` calls the dataset's ``on_epoch_end`` once before its first epoch
#: (``EpochIterator.reset``), so after ``set_epoch(e)`` the fit's epoch ``e`` trains on the
#: dataset's epoch ``e + 1``. A resumed epoch (:class:`EpochRemainder`) must use the same one;
#: tests/test_mid_epoch_resume.py fails if Keras changes this.
FIT_EPOCH_SHIFT = 1

__all__ = [
    "DEFAULT_BACKUP_MINUTES", "MIXED_POLICY", "build_training_model", "compile_model", "make_optimizer", "make_schedule", "scaled_lr", "train", "training_phases",
    "train_command",
]


def make_schedule(recipe: Recipe, steps_per_epoch: int) -> Any:
    """Linear warm-up to ``recipe.lr``, then cosine decay to ``lr * min_lr_ratio`` (or flat);
    with ``recipe.restarts``, the cosine restarts at each of their epochs from their peak.

    Warm-up is capped at half of the first cycle, so very short runs still reach the peak rate.

    Example:
        >>> schedule = make_schedule(get_recipe("cnn", epochs=4, warmup_epochs=1), 10)
        >>> round(float(schedule(10)), 6), float(schedule(40))
        (0.05, 0.0)
    """
    (_, first_end, _), *later = recipe.lr_cycles()
    first_cycle = max(1, first_end * steps_per_epoch)
    warmup = min(int(round(recipe.warmup_epochs * steps_per_epoch)), first_cycle // 2)
    alpha = 1.0 if recipe.schedule == "constant" else recipe.min_lr_ratio
    decay_steps = max(1, first_cycle - warmup)
    if warmup == 0:
        schedule = keras.optimizers.schedules.CosineDecay(recipe.lr, decay_steps, alpha=alpha)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps, alpha=alpha, warmup_target=recipe.lr, warmup_steps=warmup
        )
    if not later:
        return schedule
    # Warm restarts (SGDR): each later cycle decays from its own peak until the next one starts.
    cycles = [
        keras.optimizers.schedules.CosineDecay(peak, max(1, (end - start) * steps_per_epoch), alpha=alpha)
        for start, end, peak in later
    ]
    return Piecewise([schedule, *cycles], boundaries=[start * steps_per_epoch for start, _, _ in later])


def make_optimizer(recipe: Recipe, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The recipe's optimizer with its schedule; no weight decay on biases and BN parameters.

    Example:
        >>> make_optimizer(get_recipe("resnet34"), 100).nesterov
        True
    """
    schedule = make_schedule(recipe, steps_per_epoch)
    decay = recipe.weight_decay or None
    if recipe.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=recipe.momentum, nesterov=recipe.nesterov, weight_decay=decay)
    elif recipe.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=recipe.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(schedule, weight_decay=decay)
    if recipe.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def compile_model(model: keras.Model, recipe: Recipe, steps_per_epoch: int) -> keras.Model:
    """The model that trains ``model``, compiled for its task with the recipe's optimizer, label
    smoothing and loss weights: :func:`zoo.logits.logits_view` of ``model`` -- the same layers and
    weights, the logits as outputs, so that the cross-entropy is computed from logits under every
    backend (``model`` itself when it outputs logits already). Fit the returned model.

    The task (``zoo.tasks``) gives the losses and metrics; the recipe must be for the model's
    task. With ``label_smoothing > 0`` the class targets must be one-hot
    (``zoo.training.data.make_targets``). A recipe ``bn_momentum`` is set on every
    BatchNormalization layer (nested models included).

    Example:
        >>> model = create("cnn")
        >>> trainer = compile_model(model, get_recipe("cnn"), steps_per_epoch=10)
        >>> trainer.loss.get_config()["from_logits"], trainer.get_layer("fc1") is model.get_layer("fc1")
        (True, True)
    """
    task = task_of(model)
    if recipe.task != task.name:
        raise ValueError(
            f"Recipe task {recipe.task!r} does not fit model {model.name!r}, a {task.name} model. "
            f"Received: recipe.task={recipe.task!r}"
        )
    if recipe.bn_momentum is not None:
        for layer in _all_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = recipe.bn_momentum
    return task.compile(
        logits_view(model), make_optimizer(recipe, steps_per_epoch), label_smoothing=recipe.label_smoothing,
        loss_weights=recipe.loss_weights or None,
    )


def _all_layers(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """``layer`` and every layer inside it (nested models, layers with sublayers)."""
    yield from layer._flatten_layers(include_self=True, recursive=True)


def train_command(arch: str, **flags: Any) -> str:
    """The ``scripts/train.py`` command line for these arguments (defaults left out).

    Example:
        >>> train_command("cnn", epochs=3, seed=0, resume=False, output_dir="runs/x")
        'python scripts/train.py cnn --epochs 3 --output runs/x'
    """
    names = {"output_dir": "--output", "batch_size": "--batch-size", "data_dir": "--data-dir"}
    parts = ["python", "scripts/train.py", arch]
    for key, value in flags.items():
        if key == "recipe_settings":  # --set FIELD=VALUE, shell-quoted: runnable as written
            parts += [part for name, setting in (value or {}).items() for part in ("--set", _setting_text(name, setting))]
            continue
        if key == "mixed_precision" and value is False:
            parts.append("--no-mixed-precision")  # explicit: the default ("auto") depends on the machine
            continue
        if value is None or value is False or (key == "seed" and value == 0):
            continue
        flag = names.get(key, "--" + key.replace("_", "-"))
        parts += [flag] if value is True else [flag, shlex.quote(str(value))]  # runnable as written: "My Photos"
    return " ".join(parts)


def _setting_text(name: str, value: Any) -> str:
    """``name=value`` for ``--set``, the value as :func:`zoo.recipe.parse_recipe_settings` reads it back."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return shlex.quote(f"{name}={value}")  # a plain string stays plain
    if isinstance(value, tuple):
        value = [list(v) if isinstance(v, tuple) else v for v in value]
    return shlex.quote(f"{name}={json.dumps(value, separators=(',', ':'))}")


def training_phases(recipe: Recipe) -> list[tuple[int, int, int | None]]:
    """``(first_epoch, end_epoch, image_size)`` of each resolution phase of ``recipe``.

    A recipe without progressive resizing has one phase at the model's own size (``None``).

    Example:
        >>> training_phases(Recipe(arch="r", epochs=52, resolutions=((0, 16), (18, 22), (24, 28))))
        [(0, 18, 16), (18, 24, 22), (24, 52, 28)]
        >>> training_phases(get_recipe("cnn", epochs=5))
        [(0, 5, None)]
    """
    if not recipe.resolutions:
        return [(0, recipe.epochs, None)]
    firsts = [first for first, _ in recipe.resolutions]
    ends = firsts[1:] + [recipe.epochs]
    return [(first, end, size) for (first, size), end in zip(recipe.resolutions, ends)]


def _training_overrides(recipe: Recipe, overrides: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """Model overrides of the model being trained: any height and width under progressive resizing.

    The weights do not depend on the resolution (global pooling); the run folder's config
    keeps the full input size, which the recipe's last resolution must equal.
    """
    if not recipe.resolutions:
        return dict(overrides)
    height, width, channels = config["input_shape"]
    final = recipe.resolutions[-1][1]
    if (height, width) != (final, final):
        raise ValueError(
            f"The last progressive resolution must equal the model's input size {height}x{width}. "
            f"Received: resolutions={list(recipe.resolutions)!r}"
        )
    return {**overrides, "input_shape": (None, None, channels)}


def build_training_model(
    name: str, recipe: Recipe, model_config: Mapping[str, Any], model_overrides: Mapping[str, Any], *,
    steps_per_epoch: int,
) -> tuple[keras.Model, keras.Model]:
    """The model a run of ``recipe`` trains, in the recipe's precision, taking any image size when
    the recipe resizes progressively (``model_config`` is the run's full config), and the compiled
    model that fits it (:func:`compile_model`: its logits view, the same weights).

    Example:
        >>> recipe = get_recipe("resnet34", mixed_precision=False)
        >>> config = get_spec("resnet34").config_for("fmnist", {})
        >>> model, trainer = build_training_model("resnet34", recipe, config, {}, steps_per_epoch=10)
        >>> model.input_shape, model.layers[-1].name, trainer.layers[-1].name
        ((None, None, None, 1), 'probabilities', 'predictions')
    """
    overrides = _training_overrides(recipe, model_overrides, model_config)
    overrides = {**training_dtype(name, recipe.mixed_precision), **overrides}
    model = create(name, **overrides)
    return model, compile_model(model, recipe, steps_per_epoch=steps_per_epoch)


@dataclass(kw_only=True)
class TrainingPlan(RunPlan):
    """Everything decided before a weight moves: recipe, model config, run folder, command.

    Made by :func:`prepare_run`; :func:`fit_run` trains it and :func:`finalize_run` writes the
    results. The run folder's marker (``run.json``) is written when the plan is made, and the
    folder stays locked (``.run.lock``, :class:`zoo.training.run_dir.RunLock`) until
    :func:`finalize_run` (or ``plan.run.release()``): a second training into it is refused.
    """

    weight: WeightSpec | None
    model_overrides: dict[str, Any]
    initial_epoch: int
    initial_batch: int = 0
    limit: int | None = None
    data_dir: str | os.PathLike | None = None
    backup_minutes: float | None = DEFAULT_BACKUP_MINUTES
    initial_weights: InitialWeights | None = None


@dataclass(kw_only=True)
class FitResult(RunFit):
    """What training produced: the trained model, its data, the best epoch and the run's figures."""

    data: TrainingData
    optimizer_steps: int


@dataclass(frozen=True)
class RunResult:
    """A finished run: its folder, test metrics, the best epoch and the training facts."""

    path: Path
    metrics: Mapping[str, float]
    best: Mapping[str, Any]
    training: Mapping[str, Any]


def prepare_run(
    arch_or_name: str | Recipe,
    *,
    output_dir: str | os.PathLike,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    limit: int | None = None,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    mixed_precision: bool | None = None,
    distribute: bool = False,
    data_dir: str | os.PathLike | None = None,
    verbose: int = 1,
    recipe_overrides: Mapping[str, Any] | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    command: str | None = None,
    backup_minutes: float | None = DEFAULT_BACKUP_MINUTES,
    init_from: str | os.PathLike | None = None,
) -> TrainingPlan:
    """Resolve the recipe and model config, prepare the run folder, record what will run.

    Arguments as in :func:`train`. Raises before anything is written when an override, the
    run folder or a resumed run's settings do not fit.

    Example:
        >>> import tempfile
        >>> plan = prepare_run("cnn", output_dir=Path(tempfile.mkdtemp()) / "run", epochs=2, limit=256)
        >>> plan.recipe.epochs, plan.model_config["dropout"], plan.command.split()[2]
        (2, 0.25, 'cnn')
    """
    if isinstance(arch_or_name, Recipe):
        name, recipe = arch_or_name.arch, arch_or_name
    else:
        name, recipe = arch_or_name, get_recipe(arch_or_name)
    check_run_arguments(limit=limit, seed=seed, distribute=distribute)
    check_backup_minutes(backup_minutes)
    seed = int(seed)  # a numpy integer too: Keras seeds with a plain int
    recipe, precision_reason = apply_flags(
        recipe, epochs=epochs, batch_size=batch_size, lr=lr, mixed_precision=mixed_precision, overrides=recipe_overrides
    )
    use_mixed = recipe.mixed_precision
    overrides = {**recipe.model_overrides, **dict(model_overrides or {})}
    spec = get_spec(name)
    tag = split_name(name)[1]
    model_config = spec.config_for(tag, overrides)  # validates the overrides early
    # What fit_run will build, checked before the run folder is touched: the last resolution must
    # be the input size, and mixed precision needs a builder with a `dtype` argument (apply_flags
    # checked the monitor).
    _training_overrides(recipe, overrides, model_config)
    training_dtype(name, use_mixed)
    # Refused now, with no run folder left behind: a mistyped --data-dir, a failed Keras download
    # (no folder found: it is fetched now, into Keras' cache), a --limit that leaves nothing to train on.
    if check_data_dir(data_dir) is None:
        load_fashion_mnist("test", data_dir=data_dir, limit=1)
    check_limit_leaves_training(recipe, limit)
    if distribute:  # every device takes a share of each batch: refused now, not after the first epoch
        images = min(limit or SPLIT_SIZES["train"], SPLIT_SIZES["train"])
        val_count = validation_size(recipe, images)
        check_parallel_split(device_count(True), batch_size=recipe.batch_size, train_count=images - val_count,
                             val_count=val_count, train_hint="change --limit", val_hint="raise --limit")
    start = None
    if init_from is not None:  # every weight continues: same architecture, same builder arguments
        resolved = resolve(init_from)
        start = initial_weights(name, init_from, resolved)
        check_same_model(model_config, resolved, init_from)
        check_outside_output(start.path, output_dir, init_from)
    # The recorded command leaves out --output and --data-dir: paths of this machine.
    command = command or train_command(
        name, backend=keras.backend.backend(), init_from=start and start.record["base_model"], epochs=epochs, batch_size=batch_size, lr=lr, limit=limit,
        seed=seed, mixed_precision=use_mixed, distribute=distribute, recipe_settings=recipe_overrides,
    ) + (f"  # model_overrides={dict(overrides)!r}" if overrides else "")
    run, initial_epoch = open_run(  # locked until finalize_run
        output_dir, resume=resume, overwrite=overwrite, architecture=name, command=command,
        settings=run_settings(name, recipe, overrides, seed=seed, limit=limit,
                              **({"initial_weights": dict(start.record)} if start else {})),
        epochs_done=RunDir.backed_up_epochs,
        schedule_may_change=True,
    )
    return TrainingPlan(
        name=name, recipe=recipe, weight=spec.weight(tag), model_config=model_config, model_overrides=overrides,
        run=run, command=command, precision_reason=precision_reason, initial_epoch=initial_epoch,
        initial_batch=run.backed_up_batches() if resume else 0, seed=seed,
        limit=limit, data_dir=data_dir, distribute=distribute, verbose=verbose, callbacks=tuple(callbacks),
        backup_minutes=backup_minutes, initial_weights=start,
    )


def backup_interval_s(recipe: Recipe, backup_minutes: float | None) -> float | None:
    """Seconds between backups inside an epoch (``None``: at epoch ends only).

    A resumed epoch's training figures are merged from two parts (equal to an uninterrupted
    run's up to float rounding, and only when every metric is a mean), so a recipe that picks
    its best epoch by a training figure (``monitor`` without ``val_``) gets no backups inside
    epochs: a rounding difference could change which epoch is picked.

    Example:
        >>> backup_interval_s(get_recipe("cnn"), 10), backup_interval_s(get_recipe("cnn", monitor="loss"), 10)
        (600.0, None)
    """
    check_backup_minutes(backup_minutes)
    if backup_minutes is None or not recipe.monitor.startswith("val_"):
        return None
    return 60.0 * float(backup_minutes)


def _carried_logs(record: Mapping[str, Any], run: RunDir, *, epoch: int, batches: int) -> dict[str, float]:
    """The training figures of epoch ``epoch``'s first ``batches`` batches that a backup inside it
    kept, so that its history.csv row covers it whole; ``{}``, with a note, when it kept none."""
    try:
        figures = carried_figures(record.get("logs"))
    except ValueError as error:
        print(f"[zoo] ignored the training figures of {run.backup / 'training_metadata.json'}: {error}", flush=True)
        figures = {}
    if not figures:
        print(f"[zoo] the backup keeps no training figures of epoch {epoch}'s first {batches} batches: its row "
              "in history.csv covers the batches trained from now on", flush=True)
    return figures


def fit_run(plan: TrainingPlan) -> FitResult:
    """Load the data, build and compile the model, and train every phase of the plan's recipe.

    One ``model.fit`` per resolution phase: TensorFlow's input pipeline fixes the batch shape of
    a fit, so each image size gets its own. The optimizer state carries over; after a kill,
    BackupAndRestore's epoch count skips the phases (and epochs) already done. A backup made in
    the middle of an epoch (``plan.backup_minutes``) is continued by a ``fit`` of that epoch's
    remaining batches, the same batches an uninterrupted run trains on, so the weights come out
    the same; that epoch's row of ``history.csv`` merges the backup's training figures for the
    batches before the kill with the remaining batches' (:class:`ResumedEpochLogs`), so it is
    the uninterrupted run's row up to float rounding.

    Example:
        >>> fitted = fit_run(plan)                       # doctest: +SKIP
        >>> fitted.optimizer_steps                       # doctest: +SKIP
        14
    """
    recipe, run = plan.recipe, plan.run
    keras.utils.set_random_seed(plan.seed)
    with data_parallel(plan.distribute, batch_size=recipe.batch_size) as parallel:
        data = load_training_data(
            recipe, input_shape=plan.model_config["input_shape"], seed=plan.seed, limit=plan.limit,
            data_dir=plan.data_dir, num_replicas=parallel.num_replicas,
        )
        where = trained_on(parallel.description)
        record_session(run, where, epochs_done=plan.initial_epoch, batches_done=plan.initial_batch)
        with parallel.scope():
            model, trainer = build_training_model(
                plan.name, recipe, plan.model_config, plan.model_overrides, steps_per_epoch=len(data.train)
            )
            if plan.initial_weights is not None and not (plan.initial_epoch or plan.initial_batch):
                load_weights(model, plan.initial_weights.path)  # a resumed run starts from its backup instead
        best = BestWeights(run.best, monitor=recipe.monitor, mode=recipe.monitor_mode)
        timer = EpochTimer(run.timing, images_per_epoch=len(data.train) * recipe.batch_size)
        timer.machine = where
        backup = ResumableBackup(run.backup, interval_s=backup_interval_s(recipe, plan.backup_minutes))
        truncate_history(run.history, plan.initial_epoch)
        all_callbacks = [
            ResumedEpochLogs(backup),  # first: the callbacks after it record a continued epoch's figures whole
            LogLearningRate(),
            timer,
            best,
            keras.callbacks.CSVLogger(str(run.history), append=True),
            backup,
            *plan.callbacks,
        ]
        started, fitted_here = time.perf_counter(), False
        for first, end, size in training_phases(recipe):
            done = run.backed_up_epochs()
            if done >= end:
                continue
            data.train.set_image_size(size)
            timer.image_size = size or int(plan.model_config["input_shape"][0])
            start = max(first, done)
            record = run.backup_record()
            batches_done = int(record.get("batch") or 0) if done >= first else 0
            fitted_here = True
            # shuffle=False: the dataset shuffles itself, keyed by (seed, epoch). Keras' own batch
            # shuffling draws from Python's global `random`, whose state a resumed process lacks.
            fit = dict(validation_data=data.val, callbacks=all_callbacks, verbose=plan.verbose, shuffle=False)
            if batches_done:  # killed in the middle of epoch `start`: its remaining batches first
                rest = EpochRemainder(data.train, epoch=start + FIT_EPOCH_SHIFT, first=batches_done)
                print(f"[zoo] epoch {start + 1} continues at batch {batches_done + 1} of {len(data.train)} "
                      "(backed up in the middle of the epoch)", flush=True)
                # The epoch's record (timing.json) covers it whole: the seconds before the kill come from the backup.
                backup.batch_offset = batches_done
                backup.carried_seconds = timer.carried_seconds = float(record.get("seconds") or 0.0)
                backup.carried_logs = _carried_logs(record, run, epoch=start + 1, batches=batches_done)
                try:
                    trainer.fit(rest, initial_epoch=start, epochs=start + 1, **fit)
                finally:
                    backup.batch_offset, backup.carried_seconds, timer.carried_seconds = 0, 0.0, 0.0
                    backup.carried_logs = {}
                start += 1
                if start >= end:
                    continue
            data.train.set_epoch(start)  # Keras' fit moves it on by FIT_EPOCH_SHIFT before the first epoch
            trainer.fit(data.train, initial_epoch=start, epochs=end, **fit)
        if not fitted_here:  # killed after the last epoch's backup, before the results: take its state
            backup.load_into(trainer)
            best.restore_record()  # no `fit` ran, so no on_train_begin read it
        seconds = time.perf_counter() - started
        optimizer_steps = int(keras.ops.convert_to_numpy(trainer.optimizer.iterations))
        save_weights(model, run.last, overwrite=True)
    return FitResult(
        model=model, data=data, best=best, seconds=seconds, optimizer_steps=optimizer_steps,
        distribution=parallel.description, num_replicas=parallel.num_replicas,
    )


def finalize_run(plan: TrainingPlan, fitted: FitResult, *, push: str | None = None) -> RunResult:
    """Evaluate the best epoch on the test split and write the run folder's results.

    The exported model is a float32, single-device model holding the best epoch's weights; the
    resume state (``best/``, ``backup/``) is removed once the results exist. ``push`` uploads
    the finished folder (``zoo.push``).

    Example:
        >>> result = finalize_run(plan, fit_run(plan))   # doctest: +SKIP
        >>> result.metrics                               # doctest: +SKIP
        {'accuracy': 0.7432}
    """
    recipe, run, weight, data = plan.recipe, plan.run, plan.weight, fitted.data
    reuse = fitted.num_replicas == 1 and not recipe.mixed_precision and not recipe.resolutions
    final = fitted.model if reuse else create(plan.name, **plan.model_overrides)
    load_weights(final, fitted.best.weights_path)
    outputs = predict(final, data.x_test)
    metrics = task_of(final).metrics_from_predictions(data.y_test, outputs)
    best = fitted.best
    monitored = {"monitor": recipe.monitor, "value": best.best, "epoch": None if best.best_epoch is None else best.best_epoch + 1}
    training = {
        "epochs": recipe.epochs, "resumed_from_epoch": plan.initial_epoch if plan.initial_epoch or plan.initial_batch else None,
        "resumed_from_batch": plan.initial_batch or None, "best": monitored,
        "examples": data.counts, "limit": plan.limit, "seconds_this_session": round(fitted.seconds, 1),
        "optimizer_steps": fitted.optimizer_steps, "distribute": fitted.distribution,
        "mixed_precision": recipe.mixed_precision, "precision": plan.precision_reason,
        "timing": summarize_timing(run.timing, recipe.epochs),
    }
    changes = run.read_marker().get("schedule_changes")
    if changes:  # kept with the weights: the card says how the run's schedule changed on resume
        training["schedule_changes"] = changes
    metadata = {
        "dataset": weight.dataset if weight else "fashion_mnist",
        "label_names": list(weight.label_names if weight and weight.label_names else LABEL_NAMES),
        "preprocessing": dict(weight.preprocessing) if weight else {},
        "metrics": metrics,
        "evaluation": {"split": "test", "examples": data.counts["test"], "limit": plan.limit},
        "recipe": recipe.to_dict(),
        "seed": plan.seed,
        "backend": keras.backend.backend(),
        "train_command": plan.command,
        "trained_on": trained_on_sessions(
            run.read_marker().get("sessions", []), current=trained_on(fitted.distribution), epochs=recipe.epochs
        ),
        "license": weight.license if weight else "apache-2.0",
        "training": training,
        **(dict(plan.initial_weights.record) if plan.initial_weights else {}),
    }
    summary = summary_line(plan.name, metrics, monitored, recipe.epochs, fitted.seconds, run.path)
    close_run(run, final, metadata, (data.x_test, data.y_test, outputs), summary=summary, push=push)
    return RunResult(path=run.path, metrics=metrics, best=monitored, training=training)


def train(
    arch_or_name: str | Recipe,
    *,
    output_dir: str | os.PathLike,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    limit: int | None = None,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    mixed_precision: bool | None = None,
    distribute: bool = False,
    push: str | None = None,
    data_dir: str | os.PathLike | None = None,
    verbose: int = 1,
    recipe_overrides: Mapping[str, Any] | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    command: str | None = None,
    backup_minutes: float | None = DEFAULT_BACKUP_MINUTES,
    init_from: str | os.PathLike | None = None,
) -> Path:
    """Train ``arch_or_name`` (``"cnn"``, ``"resnet34.fmnist"`` or a :class:`Recipe`) on Fashion-MNIST.

    :func:`prepare_run` -> :func:`fit_run` -> :func:`finalize_run`, returning the run folder.
    ``epochs``, ``batch_size`` and ``lr`` override the recipe (so does ``recipe_overrides``,
    any field; a new batch size scales the learning rate unless ``lr`` is given, and a new
    ``epochs`` moves the progressive resolutions and the warm restarts to the same share of the
    run unless ``recipe_overrides`` give them); ``model_overrides`` go to ``zoo.create`` (e.g. a
    smaller localizer ``{"input_shape": (71, 71, 1)}``). ``limit`` keeps the first ``limit``
    images of each split. An existing run folder is refused unless ``resume`` (continue from
    the last backup, at an epoch's end or inside one, with the optimizer state; the settings
    must be the run's, but for a schedule that trains the epochs begun the same, see
    ``zoo.training.run_setup.check_resume``) or ``overwrite``. ``mixed_precision`` (True / False; None: the recipe's, ``"auto"`` by default:
    ``mixed_bfloat16`` where the device runs bfloat16 natively, see :mod:`zoo.training.precision`)
    trains with ``mixed_bfloat16``; ``distribute`` trains data-parallel over all local devices
    (:mod:`zoo.training.distribute`); ``push`` uploads the finished folder with ``zoo.push``
    (all but ``last.safetensors``, ``run.json``, ``history.csv`` and ``timing.json``).
    Extra Keras ``callbacks`` run after the built-in ones (once per resolution phase for
    ``on_train_begin``/``on_train_end``). ``backup_minutes``: the training state is also backed up
    in the middle of an epoch after this many minutes since the last backup, and a resumed run
    continues at the batch where it stopped (``None``: at epoch ends only); it never changes
    what is trained. ``init_from`` (a registered name with weights, ``hf://...``, a zoo folder of
    the same architecture and builder arguments) gives the initial value of every weight instead
    of a random one: the run continues training them under the recipe (e.g. a short stage at a
    low learning rate after a release); ``metadata.json`` records them (``base_model``, the
    sha256 of each weights file, :mod:`zoo.training.initial_weights`).

    Example:
        >>> run = train("cnn", output_dir="runs/cnn-try", epochs=2, limit=1024)  # doctest: +SKIP
        >>> json.loads((run / "metrics.json").read_text())                     # doctest: +SKIP
        {'accuracy': 0.7432}
    """
    if push is not None:
        push_target(push)  # now, not after training
    plan = prepare_run(
        arch_or_name, output_dir=output_dir, epochs=epochs, batch_size=batch_size, lr=lr, limit=limit,
        seed=seed, resume=resume, overwrite=overwrite, mixed_precision=mixed_precision, distribute=distribute,
        data_dir=data_dir, verbose=verbose, recipe_overrides=recipe_overrides, model_overrides=model_overrides,
        callbacks=callbacks, command=command, backup_minutes=backup_minutes, init_from=init_from,
    )
    try:
        return finalize_run(plan, fit_run(plan), push=push).path
    finally:
        plan.run.release()

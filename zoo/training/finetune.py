"""Fine-tuning on a user's image folder: ``finetune`` from trained weights to a run folder.

``finetune`` = :func:`prepare_finetune` (folder scanned and read, weights found, run folder:
a :class:`FineTunePlan`) -> :func:`fit_finetune` (an optional linear probe, then every layer)
-> :func:`finalize_finetune` (validation metrics, exported folder with the folder's class names).

* Data: :mod:`zoo.data.folder`, one sub-folder per class; the class names are the sorted folder
  names. Pictures are preprocessed as the initial weights were trained (their ``preprocessing``
  record, ``zoo.preprocess``) and split into train and validation (stratified, seeded). There is
  no test split: the reported metrics are the validation split's, and say so.
* Weights: ``init_from`` (a registered name with weights, ``hf://...``, a zoo folder) gives every
  weight but the head, which is freshly initialised for ``num_classes`` = the number of classes.
* Linear probe (``freeze_backbone=True``): the first ``probe_epochs`` epochs train the head alone
  (every other layer ``trainable=False``; batch norm then runs in inference mode) at
  ``probe_lr`` (default: ten times ``lr``), then the model is recompiled with every layer
  trainable at the lower ``lr`` for the remaining epochs. ``probe_epochs == epochs`` is a pure
  linear probe. Both phases are recorded in ``metadata.json`` (``training.phases``).
* Recipe: the architecture's recipe made for fine-tuning (:func:`finetune_recipe`: 10 epochs, a
  tenth of its learning rate when starting from weights, no progressive resizing, its
  augmentation); flags override single fields.
* Resume (``resume=True``, ``--resume``) after a kill at any moment: each phase backs up to its own
  :class:`~zoo.training.callbacks.ResumableBackup` (``backup/<phase>/``: weights, optimizer, seed
  generators, torch's generator) and the data shuffles itself by (seed, epoch), so a resumed run
  ends at the weights of an uninterrupted one. The run folder stays locked until the run ends or fails.

The run folder loads with ``zoo.load(run)`` and its ``metadata.json`` records ``label_names``
(the folder names), ``base_model`` (the initial weights), ``preprocessing`` and the data.

Example:
    >>> run = finetune("cnn", data="my_pictures", init_from="cnn.fmnist", output_dir="runs/mine",
    ...                freeze_backbone=True, epochs=4)                       # doctest: +SKIP
    >>> zoo.load(run).output_shape                                           # doctest: +SKIP
    (None, 3)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import keras
import numpy as np

from zoo.api import create, resolve
from zoo.data.folder import DEFAULT_VAL_FRACTION, FolderData, load_image_folder
from zoo.data.pipeline import ArrayDataset
from zoo.evaluation import predict
from zoo.format import sha256_of
from zoo.hub import push_target
from zoo.preprocess import preprocessing_of
from zoo.registry import get_spec, split_name
from zoo.tasks import task_of
from zoo.training.callbacks import BestWeights, EpochTimer, LogLearningRate, ResumableBackup, summarize_timing
from zoo.training.data import make_targets
from zoo.training.distribute import check_parallel_split, data_parallel, device_count
from zoo.training.fit import compile_model, train_command
from zoo.training.initial_weights import check_architecture, check_outside_output, initial_weights, recorded_handle
from zoo.training.report import summary_line, trained_on, trained_on_sessions
from zoo.training.run_dir import RunDir
from zoo.training.run_setup import (
    RunFit,
    RunPlan,
    apply_flags,
    check_run_arguments,
    close_run,
    open_run,
    record_session,
    run_settings,
    scaled_lr,
    training_dtype,
    truncate_history,
)
from zoo.training.transfer import (
    AUTO,
    FINETUNE_EPOCHS,
    FineTune,
    Phase,
    finetune_recipe,
    load_backbone,
    phases_of,
    set_backbone_trainable,
)
from zoo.weights import load_weights, save_weights

__all__ = ["FineTuneFit", "FineTunePlan", "finalize_finetune", "finetune", "fit_finetune", "prepare_finetune"]


@dataclass(kw_only=True)
class FineTunePlan(RunPlan):
    """Everything decided before a weight moves: data, initial weights, recipe, phases, run folder."""

    settings: FineTune
    phases: list[Phase]
    data: FolderData
    init_weights: Path | None
    base: dict[str, Any]
    preprocessing: dict[str, Any]
    license: str
    resumed_from: int


@dataclass(kw_only=True)
class FineTuneFit(RunFit):
    """What training produced: the trained model, the best epoch, the load report, timings."""

    init_report: dict[str, list[str]]


def _run_preprocessing(input_shape: Sequence[int], preprocessing: Mapping[str, Any]) -> dict[str, Any]:
    """The run's preprocessing record: what ``zoo.preprocess`` did to the pictures, and the input."""
    colour = "grayscale" if int(input_shape[-1]) == 1 else "RGB"
    steps = {k: v for k, v in preprocessing.items() if k not in ("input", "rescaling")}
    return {
        "input": f"float32 or uint8 pixels in [0, 255], NHWC, {colour}",
        "rescaling": "inside the model (Rescaling layer)",
        **steps,
    }


def prepare_finetune(
    name: str,
    *,
    data: str | os.PathLike,
    output_dir: str | os.PathLike,
    init_from: str | os.PathLike | None = None,
    freeze_backbone: bool = False,
    probe_epochs: int | None = None,
    probe_lr: float | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    polarity: str | None = AUTO,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    mixed_precision: bool | None = None,
    distribute: bool = False,
    verbose: int = 1,
    recipe_overrides: Mapping[str, Any] | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    command: str | None = None,
) -> FineTunePlan:
    """Check everything, read the pictures, find the weights, then prepare the run folder.

    Arguments as in :func:`finetune`. Every problem (a bad folder, an unreadable picture,
    weights of another architecture, an existing run folder) raises before anything is written.

    Example:
        >>> plan = prepare_finetune("cnn", data="pics", init_from="cnn", output_dir="runs/mine")  # doctest: +SKIP
        >>> plan.model_config["num_classes"], [p.name for p in plan.phases]                       # doctest: +SKIP
        (3, ['unfrozen'])
    """
    check_run_arguments(limit=None, seed=seed, distribute=distribute)
    seed = int(seed)  # a numpy integer too: Keras seeds with a plain int
    spec = get_spec(name)
    if spec.task != "classification":
        raise ValueError(
            f"Image folders hold one class per sub-folder: they fine-tune classifiers. {spec.name!r} is a "
            f"{spec.task} model. Received: arch={name!r}"
        )
    if "num_classes" not in spec.default_config:
        raise ValueError(f"The builder of {spec.name!r} takes no `num_classes`: it cannot learn a folder's classes.")
    epochs_given = epochs
    if freeze_backbone and probe_epochs is None:
        total = epochs if epochs is not None else (recipe_overrides or {}).get("epochs", FINETUNE_EPOCHS)
        probe_epochs = max(1, int(total) // 2)
    resolved = resolve(init_from) if init_from is not None else None
    if resolved is not None:
        check_architecture(name, resolved, init_from)
        if resolved.weights is not None:
            check_outside_output(resolved.weights, output_dir, init_from)
    init_metadata = dict(resolved.metadata) if resolved is not None else {}
    polarity_flag = None if polarity == AUTO else (polarity or "none")
    if polarity == AUTO:
        polarity = preprocessing_of(init_metadata).get("polarity") if resolved is not None else None
    settings = FineTune(
        init_from=None if init_from is None else recorded_handle(init_from), freeze_backbone=freeze_backbone,
        probe_epochs=probe_epochs or 0, probe_lr=probe_lr, val_fraction=val_fraction, polarity=polarity,
    )
    output, pictures = Path(output_dir).expanduser().resolve(), Path(data).expanduser().resolve()
    if output == pictures or pictures in output.parents:
        raise ValueError(
            f"The run folder {str(output_dir)!r} lies inside the image folder {str(data)!r}: it would be read "
            "as a class. Choose an output folder outside it."
        )

    base_config = dict(resolved.config) if resolved is not None else spec.config_for(split_name(name)[1], {})
    config = {**base_config, **dict(model_overrides or {})}
    if "include_top" in spec.default_config:
        config["include_top"] = True
    spec.config_for(None, config)  # unknown overrides raise before any picture is read
    input_shape = tuple(config["input_shape"])
    preprocessing = {**preprocessing_of(init_metadata), "polarity": polarity}
    folder = load_image_folder(data, input_shape, preprocessing=preprocessing, val_fraction=val_fraction, seed=seed)
    config["num_classes"] = len(folder.class_names)

    recipe, precision_reason = apply_flags(
        finetune_recipe(name, from_weights=resolved is not None), epochs=epochs, batch_size=batch_size, lr=lr,
        mixed_precision=mixed_precision, overrides=recipe_overrides,
    )
    # Neither is applied to the phases: refused, not recorded unapplied (sizes all at the input size train the same).
    if any(size != input_shape[0] for _, size in recipe.resolutions) or recipe.restarts:
        raise ValueError(
            "A fine-tune trains every epoch at the model's input size, with one cosine per phase: `resolutions` "
            "(progressive resizing) and `restarts` are for Fashion-MNIST recipe runs. Accepted: none of them "
            f"(--set 'resolutions=[]'). Received: resolutions={list(map(list, recipe.resolutions))}, "
            f"restarts={list(map(list, recipe.restarts))}"
        )
    # A batch is at most the training pictures (a multiple of the devices of a distributed run); the
    # rate follows a capped batch as it follows --batch-size.
    devices = device_count(distribute) or 1
    capped = min(recipe.batch_size, len(folder.y_train))
    if capped < recipe.batch_size and capped >= devices:
        capped -= capped % devices
    check_parallel_split(devices, batch_size=capped, train_count=len(folder.y_train), val_count=len(folder.y_val),
                         train_hint="add pictures", val_hint=f"raise --val-fraction (now {val_fraction}) or add pictures")
    rate = scaled_lr(recipe, capped, lr)
    recipe = recipe.replace(batch_size=capped, lr=recipe.lr if rate is None else rate, val_size=len(folder.y_val))
    use_mixed = recipe.mixed_precision
    phases = phases_of(recipe, settings)
    # With the sha256 of its weight files: a resumed run must start from the same weights, whatever the handle names now.
    base = initial_weights(name, init_from, resolved).record if resolved is not None else {
        "base_model": None, "base_model_repo": None}
    command = command or train_command(
        name, backend=keras.backend.backend(), data=_folder_name(data), init_from=base["base_model"],
        freeze_backbone=freeze_backbone, probe_epochs=probe_epochs if freeze_backbone else None, probe_lr=probe_lr,
        epochs=epochs_given, batch_size=batch_size, lr=lr,
        val_fraction=None if val_fraction == DEFAULT_VAL_FRACTION else val_fraction, polarity=polarity_flag, seed=seed,
        mixed_precision=use_mixed, distribute=distribute, recipe_settings=recipe_overrides,
    )

    run_config = {k: v for k, v in config.items() if k != "num_classes"}
    run, resumed_from = open_run(  # locked until finalize_finetune
        output_dir, resume=resume, overwrite=overwrite, architecture=name, command=command,
        settings=run_settings(name, recipe, run_config, seed=seed, fine_tuning=asdict(settings),
                              classes=list(folder.class_names), examples=folder.counts,
                              initial_weights=dict(base), **_pictures_record(folder, output_dir, resume)),
        epochs_done=lambda run: max((_backed_up(run, phase) for phase in phases), default=0),
    )
    return FineTunePlan(
        name=split_name(name)[0], recipe=recipe, settings=settings, phases=phases, data=folder,
        model_config=config, init_weights=resolved.weights if resolved is not None else None, base=base,
        preprocessing=_run_preprocessing(input_shape, preprocessing),
        license=init_metadata.get("license") or "apache-2.0",
        run=run, command=command, precision_reason=precision_reason, resumed_from=resumed_from, seed=seed,
        distribute=distribute, verbose=verbose, callbacks=tuple(callbacks),
    )


def _phase_backup(run: RunDir, phase: Phase) -> Path:
    return run.backup / phase.name


def _backed_up(run: RunDir, phase: Phase) -> int:
    """Epochs finished according to ``phase``'s backup (:class:`ResumableBackup`; 0 when none)."""
    path = _phase_backup(run, phase) / "training_metadata.json"
    return int(json.loads(path.read_text()).get("epoch", 0)) if path.exists() else 0


def _phase_end_weights(run: RunDir, phase: Phase) -> Path:
    return run.backup / f"{phase.name}-end.safetensors"


def _folder_name(folder: str | os.PathLike) -> str:
    """The name a picture folder is recorded by: ``.`` and ``~/x`` by their own names, a link by its name (not its target's)."""
    return Path(os.path.abspath(os.path.expanduser(folder))).name


def _pictures_record(folder: FolderData, output_dir: str | os.PathLike, resume: bool) -> dict[str, str]:
    """What identifies the run's pictures in ``run.json``: ``pictures_files_sha256``; a run begun by
    an earlier zoo stored ``pictures_sha256`` (of the decoded pixels) instead, and its resume
    compares that hash again, like with like."""
    stored = RunDir(Path(output_dir)).read_marker().get("settings") or {} if resume else {}
    if "pictures_sha256" in stored:
        return {"pictures_sha256": _decoded_pictures_sha256(folder)}
    return {"pictures_files_sha256": _pictures_sha256(folder)}


def _decoded_pictures_sha256(folder: FolderData) -> str:
    """The earlier identity of a run's pictures: one sha256 of the decoded arrays and labels."""
    digest = hashlib.sha256()
    for array in (folder.x_train, folder.y_train, folder.x_val, folder.y_val):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _pictures_sha256(folder: FolderData) -> str:
    """One sha256 of the pictures a run trains and validates on: each one's path in the folder, label,
    split and file bytes (a resumed run must see the same pictures, not only as many). The files,
    not the decoded pixels: another machine's image decoder may round a JPEG differently."""
    digest = hashlib.sha256()
    for split, files, labels in (("train", folder.files_train, folder.y_train), ("val", folder.files_val, folder.y_val)):
        for file, label in zip(files, labels):
            relative = Path(file).relative_to(folder.root).as_posix()
            digest.update(f"{split}\0{relative}\0{int(label)}\0{sha256_of(file)}\n".encode())
    return digest.hexdigest()


def _existing_end_weights(run: RunDir, phase: Phase) -> Path:
    """The weights ``phase`` ended with, which a resumed run continues from (refused when missing)."""
    end_weights = _phase_end_weights(run, phase)
    if not end_weights.exists():
        raise ValueError(
            f"Cannot resume {str(run.path)!r}: its {phase.name!r} phase is done but its last "
            f"weights ({end_weights.name}) are missing. Pass overwrite=True (--overwrite) to start again."
        )
    return end_weights


def _datasets(plan: FineTunePlan, num_replicas: int) -> tuple[ArrayDataset, ArrayDataset]:
    recipe, folder = plan.recipe, plan.data
    num_classes = len(folder.class_names)
    batch = recipe.batch_size
    train = ArrayDataset(
        folder.x_train, make_targets(folder.y_train, recipe, num_classes), batch_size=batch, shuffle=True,
        seed=plan.seed, augmenter=recipe.augmenter(), dtype="uint8", drop_remainder=len(folder.x_train) >= batch,
    )
    val_batch = min(batch, len(folder.x_val))
    if num_replicas > 1:
        val_batch = max(num_replicas, val_batch - val_batch % num_replicas)
    val = ArrayDataset(
        folder.x_val, make_targets(folder.y_val, recipe, num_classes), batch_size=val_batch, shuffle=False,
        dtype="uint8", drop_remainder=num_replicas > 1 and len(folder.x_val) >= val_batch,
    )
    return train, val


class _PhaseEndWeights(keras.callbacks.Callback):
    """Saves the weights of a phase's last epoch, before its backup records the phase as done:
    a run killed at any moment after that finds them when it resumes with the next phase."""

    def __init__(self, path: Path, end: int):
        super().__init__()
        self.path, self.end = path, end

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 == self.end:
            save_weights(self.model, self.path, overwrite=True)


def _phase_callbacks(plan: FineTunePlan, phase: Phase, shared: Sequence[keras.callbacks.Callback]) -> Iterator[Any]:
    yield from shared
    yield keras.callbacks.CSVLogger(str(plan.run.history), append=True)
    yield _PhaseEndWeights(_phase_end_weights(plan.run, phase), phase.end)
    # Model, optimizer, seed generators and torch's generator, written so that a kill never spoils them.
    yield ResumableBackup(_phase_backup(plan.run, phase))
    yield from plan.callbacks


def fit_finetune(plan: FineTunePlan) -> FineTuneFit:
    """Build the model, load the initial weights, and train each phase (probe, then unfrozen).

    Each phase is compiled anew (what trains changes) with its own schedule; after a kill,
    the phases and epochs already done are skipped and the last one continues from its backup.

    Example:
        >>> fitted = fit_finetune(prepare_finetune("cnn", data="pics", output_dir="r"))  # doctest: +SKIP
    """
    recipe, run = plan.recipe, plan.run
    spec = get_spec(plan.name)
    keras.utils.set_random_seed(plan.seed)
    with data_parallel(plan.distribute, batch_size=recipe.batch_size) as parallel:
        train, val = _datasets(plan, parallel.num_replicas)
        where = trained_on(parallel.description)
        record_session(run, where, epochs_done=plan.resumed_from)
        overrides = {**dict(plan.model_config), **training_dtype(plan.name, recipe.mixed_precision)}
        with parallel.scope():
            model = create(plan.name, **overrides)
            report = {"loaded": [], "reinitialized": []}
            if plan.init_weights is not None:
                report = load_backbone(model, plan.init_weights, spec.head)
        best = BestWeights(run.best, monitor=recipe.monitor, mode=recipe.monitor_mode)
        timer = EpochTimer(run.timing, images_per_epoch=len(train) * recipe.batch_size)
        timer.machine = where
        timer.image_size = int(plan.model_config["input_shape"][0])
        truncate_history(run.history, plan.resumed_from)
        shared = [LogLearningRate(), timer, best]
        started = time.perf_counter()
        previous: Phase | None = None
        skipped = False  # whether this process skipped `previous` (a run resumed after it)
        for phase in plan.phases:
            done = _backed_up(run, phase)
            if done >= phase.end:
                previous, skipped = phase, True
                continue
            if done == 0 and previous is not None and skipped:
                # Resumed between two phases: start where the previous one ended, its random state included.
                load_weights(model, _existing_end_weights(run, previous))
                prior = ResumableBackup(_phase_backup(run, previous))
                prior.set_model(model)
                prior.restore_state()
            set_backbone_trainable(model, phase.backbone_trainable, spec.head)
            with parallel.scope():
                phase_recipe = recipe.replace(epochs=phase.epochs, lr=phase.lr)
                trainer = compile_model(model, phase_recipe, steps_per_epoch=len(train))
            train.set_epoch(max(phase.first, done))
            # shuffle=False: the dataset shuffles itself, keyed by (seed, epoch). Keras' own batch
            # shuffling draws from Python's global `random`, whose state a resumed process lacks.
            trainer.fit(
                train, validation_data=val, initial_epoch=max(phase.first, done), epochs=phase.end,
                callbacks=list(_phase_callbacks(plan, phase, shared)), verbose=plan.verbose, shuffle=False,
            )
            previous, skipped = phase, False
        if skipped:  # killed after the last phase's backup, before the results: take where it ended
            load_weights(model, _existing_end_weights(run, previous))
            best.restore_record()  # no `fit` ran, so no on_train_begin read it
        set_backbone_trainable(model, True, spec.head)
        seconds = time.perf_counter() - started
        save_weights(model, run.last, overwrite=True)
    return FineTuneFit(
        model=model, best=best, init_report=report, seconds=seconds, distribution=parallel.description,
        num_replicas=parallel.num_replicas,
    )


def finalize_finetune(plan: FineTunePlan, fitted: FineTuneFit, *, push: str | None = None) -> Path:
    """Evaluate the best epoch on the validation split and write the run folder's results.

    The exported model is a float32 ``plan.name`` (no weight tag: these are new weights) with
    the best epoch's weights; ``metadata.json`` records the folder's class names as
    ``label_names``, ``base_model``, the preprocessing, the data and both phases.

    Example:
        >>> finalize_finetune(plan, fit_finetune(plan))   # doctest: +SKIP
        PosixPath('runs/mine')
    """
    recipe, run, folder = plan.recipe, plan.run, plan.data
    final = create(plan.name, **plan.model_config)
    final.zoo_config = {"architecture": plan.name, "tag": None, "config": dict(plan.model_config)}
    load_weights(final, fitted.best.weights_path)
    outputs = predict(final, folder.x_val)
    metrics = task_of(final).metrics_from_predictions(folder.y_val, outputs)
    best = fitted.best
    epoch = None if best.best_epoch is None else best.best_epoch + 1
    monitored = {"monitor": recipe.monitor, "value": best.best, "epoch": epoch}
    phases = [
        {**asdict(phase), "epochs": [phase.first + 1, phase.end],
         "trains": "every layer" if phase.backbone_trainable else "the head only"}
        for phase in plan.phases
    ]
    training = {
        "epochs": recipe.epochs, "resumed_from_epoch": plan.resumed_from or None, "best": monitored,
        "examples": dict(folder.counts), "limit": None, "seconds_this_session": round(fitted.seconds, 1),
        "distribute": fitted.distribution, "mixed_precision": recipe.mixed_precision,
        "precision": plan.precision_reason,
        "timing": summarize_timing(run.timing, recipe.epochs), "phases": phases,
    }
    if fitted.init_report["loaded"] or fitted.init_report["reinitialized"]:
        training["initialized"] = {k: len(v) for k, v in fitted.init_report.items()}
    metadata = {
        "dataset": None,
        "data": {
            "kind": "image_folder", "name": _folder_name(folder.root),
            "classes": list(folder.class_names), "examples": folder.counts,
            "val_fraction": plan.settings.val_fraction, "split_seed": plan.seed, "preprocessing_steps": folder.notes,
        },
        "label_names": list(folder.class_names),
        "preprocessing": plan.preprocessing,
        **plan.base,
        "fine_tuning": asdict(plan.settings),
        "metrics": metrics,
        "evaluation": {"split": "validation", "examples": len(folder.y_val), "limit": None},
        "recipe": recipe.to_dict(),
        "seed": plan.seed,
        "backend": keras.backend.backend(),
        "train_command": plan.command,
        "trained_on": trained_on_sessions(
            run.read_marker().get("sessions", []), current=trained_on(fitted.distribution), epochs=recipe.epochs
        ),
        "license": plan.license,
        "training": training,
    }
    summary = summary_line(plan.name, metrics, monitored, recipe.epochs, fitted.seconds, run.path)
    # The metrics are the validation split's.
    close_run(run, final, metadata, (folder.x_val, folder.y_val, outputs),
              summary=summary.replace(" test ", " validation ", 1), push=push)
    return run.path


def finetune(
    name: str,
    *,
    data: str | os.PathLike,
    output_dir: str | os.PathLike,
    init_from: str | os.PathLike | None = None,
    freeze_backbone: bool = False,
    probe_epochs: int | None = None,
    probe_lr: float | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    polarity: str | None = AUTO,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    mixed_precision: bool | None = None,
    distribute: bool = False,
    push: str | None = None,
    verbose: int = 1,
    recipe_overrides: Mapping[str, Any] | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    command: str | None = None,
) -> Path:
    """Train architecture ``name`` on the image folder ``data``; returns the run folder.

    ``init_from``: the weights to start from (a registered name with weights such as
    ``"resnet34.fmnist"``, ``"hf://namespace/name@rev"`` or a zoo folder) -- every weight but the
    head; ``None`` trains from scratch. ``freeze_backbone``: a linear probe of ``probe_epochs``
    (default: half of ``epochs``, at least 1) epochs at ``probe_lr`` (default ``10 * lr``) before
    every layer trains at ``lr``. ``epochs``, ``batch_size``, ``lr`` and ``recipe_overrides``
    override :func:`finetune_recipe`; the batch is capped at the number of training pictures.
    ``val_fraction`` of the pictures (stratified, fixed by ``seed``) are held out for validation.
    ``polarity`` (``"auto"``: the initial weights' record; ``"light_on_dark"``; ``None``) says
    how pictures are presented (``zoo.preprocess``). ``resume``/``overwrite``/``mixed_precision``/
    ``distribute``/``push``/``callbacks`` as in :func:`zoo.training.train`.

    Example:
        >>> run = finetune("cnn", data="my_pictures", init_from="cnn.fmnist", output_dir="runs/mine",
        ...                freeze_backbone=True, epochs=6)                           # doctest: +SKIP
        >>> json.loads((run / "metadata.json").read_text())["label_names"]          # doctest: +SKIP
        ['boot', 'sandal', 'sneaker']
    """
    if push is not None:
        push_target(push)  # now, not after training
    plan = prepare_finetune(
        name, data=data, output_dir=output_dir, init_from=init_from, freeze_backbone=freeze_backbone,
        probe_epochs=probe_epochs, probe_lr=probe_lr, epochs=epochs, batch_size=batch_size, lr=lr,
        val_fraction=val_fraction, polarity=polarity, seed=seed, resume=resume, overwrite=overwrite,
        mixed_precision=mixed_precision, distribute=distribute, verbose=verbose, recipe_overrides=recipe_overrides,
        model_overrides=model_overrides, callbacks=callbacks, command=command,
    )
    try:
        return finalize_finetune(plan, fit_finetune(plan), push=push)
    finally:
        plan.run.release()

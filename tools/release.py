"""Releases (a maintainer tool): stage a run's weights in ``weights/<arch>.<tag>/`` and record them.

The staging folder holds exactly what gets pushed to the Hub (``config.json``, safetensors
weights, ``README.md`` and its images). The release record ``zoo/released/<arch>.<tag>.json``
carries every file's sha256 and size, the test metrics, the train command and, once
published, the Hub repo and pinned revision. ``registry.json`` is regenerated from both.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras

from zoo import atomic
from zoo import format as zoo_format
from zoo import hub
from zoo.api import load
from zoo.format import read_folder
from zoo.registry import FileRecord, Release, WeightSpec, get_spec, set_release, split_name
from zoo.training.run_dir import RunDir

ROOT = Path(__file__).resolve().parent.parent  # the checkout
RECORDS_DIR = ROOT / "zoo" / "released"
SLICE_SIZE = 1000
#: Largest change of a test metric that converting the stored weights (float16, bfloat16) may
#: cause: 0.05 accuracy points.
STORAGE_TOLERANCE = 0.0005
_STAGED = ("config.json", "metadata.json", "*.safetensors", "*.safetensors.index.json", "README.md", "*.png")
_WEIGHT_FILES = ("config.json", "metadata.json", "*.safetensors", "*.safetensors.index.json")
#: metadata.json keys that ``zoo.format.save_folder`` writes itself (the rest is the run's, among
#: them ``backend``: the backend the weights were trained on, not the one that converts them).
_FOLDER_KEYS = ("keras_version", "zoo_version", "input_spec", "weights")


def record_path(name: str) -> Path:
    """Where the release record of ``arch.tag`` lives."""
    return RECORDS_DIR / f"{name}.json"


def write_record(name: str, release: Release) -> Path:
    """Write the release record of ``name``."""
    path = record_path(name)
    atomic.atomic_write_text(path, json.dumps(release.to_dict(), indent=2, sort_keys=True) + "\n")
    set_release(name, release)
    return path


def slice_metrics(folder: Path, size: int = SLICE_SIZE, data_dir: str | Path | None = None) -> dict[str, float]:
    """Test metrics on the first ``size`` test images, keyed ``<metric>@test[:size]``.

    CI re-measures these on every released tag (a fast check that the weights still
    reproduce); the full-test figures come from the run's ``metrics.json``.
    """
    from zoo.evaluation import evaluate_name

    measured = evaluate_name(folder, limit=size, data_dir=data_dir)
    return {f"{key}@test[:{size}]": value for key, value in measured.items()}


def stage_release(
    run_dir: str | Path,
    name: str,
    *,
    overwrite: bool = False,
    notes: str = "",
    slice_size: int | None = SLICE_SIZE,
    data_dir: str | Path | None = None,
    storage_dtype: str | None = None,
    max_shard_size: int | None = None,
    tolerance: float = STORAGE_TOLERANCE,
    allow_below_floor: bool = False,
) -> Release:
    """Copy a run folder's release files to ``weights/<arch>.<tag>/`` and write its record.

    The record holds the run's test metrics plus the same metrics on the first
    ``slice_size`` test images (``None`` skips that evaluation). ``notes`` go into the record and,
    as a last "Release notes" section, into the model card.

    With ``storage_dtype`` (``"float16"``, ``"bfloat16"``) or ``max_shard_size`` (bytes), the
    weights are written again in that form instead of copied; the staged files are then
    evaluated on the run's test images (the whole test split unless the run used ``--limit``)
    next to the run's own weights, on the same backend, and a metric that moved by more than
    ``tolerance`` stops the release.
    The record, config.json and model card carry the figures of the staged files; config.json
    keeps the run's figures next to them. Weights that score below the tag's ``release_floor``
    (``zoo.registry.WeightSpec``), and neither are runs trained or measured with ``--limit``
    (``allow_below_floor=True`` is for trial
    stagings that are never committed, such as ``scripts/gpu_release.py --dry-run``). The folder is built aside and swapped in when
    complete, so a failed staging leaves an existing release untouched; the previous release is
    removed only after the new record is written, and a staging killed between the swap and the
    record is undone by the next one (the previous folder goes back with its record).

    Example:
        >>> stage_release("runs/cnn-0", "cnn.fmnist")  # doctest: +SKIP
        >>> stage_release("runs/resnet34-0", "resnet34.fmnist", storage_dtype="float16",
        ...               max_shard_size=15 * 2**20)  # doctest: +SKIP
    """
    arch, tag = split_name(name)
    spec = get_spec(name)
    weight = spec.weight(tag)
    if weight is None or tag is None:
        raise ValueError(f"A release needs a registered 'arch.tag' name. Received: name={name!r}")
    run_dir = Path(run_dir)
    config = read_folder(run_dir).fields
    if config.get("architecture") != arch:
        raise ValueError(
            f"The run in {str(run_dir)!r} trained {config.get('architecture')!r}, not {arch!r}. "
            f"Received: name={name!r}"
        )
    _check_finished(run_dir)
    short = _short_splits(config)
    if short and not allow_below_floor:
        # The floor and the card's "test split (10,000 images)" are about the whole split and a full run.
        raise ValueError(
            f"The run in {str(run_dir)!r} used --limit (trained or measured on the first images only): a release "
            "is trained on the whole training split and measured on the whole test split. Train again without "
            "--limit, or stage a trial with allow_below_floor=True (--below-floor), never committed. "
            f"Received: {', '.join(short)}"
        )
    target = ROOT / "weights" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock_weights_folder(target.parent)  # one staging at a time: the swap and record go together
    try:
        _recover_dead_stagings(name, target)
        if not overwrite:
            for existing in (target, record_path(name)):  # the record alone is a release too (its folder moved away)
                if existing.exists():
                    raise FileExistsError(f"{str(existing)!r} exists; pass overwrite=True to replace that release.")
        return _stage(
            run_dir, name, target, config, weight, storage_dtype=storage_dtype, max_shard_size=max_shard_size,
            tolerance=tolerance, data_dir=data_dir, slice_size=slice_size, notes=notes,
            allow_below_floor=allow_below_floor,
        )
    finally:
        os.close(lock)


def _stage(
    run_dir: Path, name: str, target: Path, config: dict[str, Any], weight: WeightSpec, *,
    storage_dtype: str | None, max_shard_size: int | None, tolerance: float, data_dir: str | Path | None,
    slice_size: int | None, notes: str | None, allow_below_floor: bool,
) -> Release:
    """Build the release aside, swap it in at ``target`` and write its record (under the lock)."""
    # Built next to the target and swapped in only when complete: a failed or killed staging (a
    # conversion that moves the metrics, a crash, kill -9) leaves an existing release as it was.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.staging-{os.getpid()}-", dir=target.parent))
    os.chmod(staging, 0o777 & ~atomic.umask())  # mkdtemp's 0o700 would become the release's
    swapped = committed = False
    try:
        metrics, config, names = _fill_staging(
            run_dir, staging, config, storage_dtype=storage_dtype, max_shard_size=max_shard_size,
            tolerance=tolerance, data_dir=data_dir,
        )
        if not allow_below_floor:
            check_release_floor(name, metrics, weight.release_floor)
        if slice_size:
            metrics.update(slice_metrics(staging, slice_size, data_dir=data_dir))
        if notes:
            _add_notes_to_card(staging / zoo_format.CARD_NAME, notes)
        files = zoo_format.file_records(staging, names)
        release = Release(
            files=files,
            metrics=metrics,
            train_command=config.get("train_command", weight.train_command),
            seed=config.get("seed"),
            backend=config.get("backend"),
            trained_on=config.get("trained_on"),
            storage_dtype=config.get("weights", {}).get("storage_dtype", "float32"),
            local_dir=str(target.relative_to(ROOT)),
            notes=notes,
        )
        _sync_tree(staging)
        _swap_in(staging, target)
        swapped = True
        # The record is the commit point. Killed before it is written, the new folder disagrees
        # with the old record and the previous release waits in ``staging`` for the next staging
        # to put it back (_recover_dead_stagings); it is removed only once the record is written.
        write_record(name, release)
        committed = True
    finally:
        if swapped and not committed:  # an error after the swap: the previous release goes back
            _undo_swap(staging, target)
        shutil.rmtree(staging, ignore_errors=True)  # the new release's scraps, or the previous one
    return release


def _lock_weights_folder(folder: Path) -> int:
    """Lock ``folder`` (``weights/``) for one staging, waiting for another staging to end."""
    try:
        return atomic.lock_exclusively(folder)
    except BlockingIOError:
        logging.getLogger(__name__).warning("Another release staging holds %s; waiting for it to end.", folder)
        return atomic.lock_exclusively(folder, wait=True)


def _undo_swap(staging: Path, target: Path) -> None:
    """Put back what ``_swap_in(staging, target)`` replaced: the previous release, or no release."""
    if staging.exists():
        _swap_in(staging, target)
    else:
        os.rename(target, staging)


def _check_finished(run_dir: Path) -> None:
    """Raise ``ValueError`` unless ``run_dir`` holds a finished run: test metrics written and, for a
    training run folder (``run.json``), the status ``complete``."""
    run = RunDir(run_dir)
    if run.is_run and not run.is_complete:
        status = run.read_marker().get("status")
        raise ValueError(
            f"The run in {str(run_dir)!r} has not finished (run.json status {status!r}): resume it with "
            f"`python scripts/train.py ... --resume` and stage it once it is complete. Received: run_dir={str(run_dir)!r}"
        )
    if not run.metrics.exists():
        raise ValueError(
            f"The run in {str(run_dir)!r} has no metrics.json (the test figures a run writes when it completes). "
            f"Received: run_dir={str(run_dir)!r}"
        )


def _add_notes_to_card(card: Path, notes: str) -> None:
    """Append the release's ``notes`` to its model card (when the run wrote one) as a last section."""
    if card.exists():
        atomic.atomic_write_text(card, card.read_text().rstrip("\n") + f"\n\n## Release notes\n\n{notes.strip()}\n")


def _short_splits(config: dict[str, Any]) -> list[str]:
    """``"key=value"`` for each Fashion-MNIST split a run's record says it used only in part
    (``--limit`` below the split's size); empty for a full run (or a limit beyond the split).

    Example:
        >>> _short_splits({"evaluation": {"limit": 256, "examples": 256}, "training": {"limit": 256}})
        ['evaluation.limit=256 (256 of 10000 test images)', 'training.limit=256 (256 of 60000 train images)']
        >>> _short_splits({"evaluation": {"limit": 100000, "examples": 10000}, "training": {"limit": None}})
        []
    """
    from zoo.data.fashion_mnist import SPLIT_SIZES

    short = []
    for key, split in (("evaluation", "test"), ("training", "train")):
        limit = (config.get(key) or {}).get("limit")
        if limit is not None and limit < SPLIT_SIZES[split]:
            short.append(f"{key}.limit={limit} ({limit} of {SPLIT_SIZES[split]} {split} images)")
    return short


def check_release_floor(name: str, metrics: dict[str, float], floor: dict[str, float]) -> None:
    """Raise ``ValueError`` when ``metrics`` miss a metric of ``floor`` or score below it.

    Example:
        >>> check_release_floor("cnn.fmnist", {"accuracy": 0.94}, {"accuracy": 0.93})
        >>> check_release_floor("cnn.fmnist", {"accuracy": 0.91}, {"accuracy": 0.93})
        Traceback (most recent call last):
        ...
        ValueError: cnn.fmnist is not released below its floor {'accuracy': 0.93}: the run scores accuracy=0.91. Received: metrics={'accuracy': 0.91}
    """
    missing = sorted(key for key in floor if key not in metrics)
    below = [f"{key}={metrics[key]:.4g}" for key in sorted(floor) if key in metrics and metrics[key] < floor[key]]
    if missing or below:
        found = f"the run scores {', '.join(below)}" if below else f"the run has no {missing} figure"
        raise ValueError(
            f"{name} is not released below its floor {dict(floor)}: {found}. Received: metrics={metrics}"
        )


def _recover_dead_stagings(name: str, target: Path) -> None:
    """Clear what stagings of ``target`` left when their process died, and undo a half-done swap.

    A staging killed after its swap but before its record was written leaves ``target`` holding
    files that its record does not list, and the previous release in the dead staging folder
    (or, where folders cannot be exchanged, in ``.<name>.previous-<pid>``). When a dead folder
    matches the record and ``target`` does not, the dead folder goes back to ``target``; then
    every dead folder is removed.
    """
    prefixes = (f".{target.name}.staging-", f".{target.name}.previous-")
    # Called under the weights folder's lock: no staging is running, so every such folder is a dead one's.
    dead = [path for path in sorted(target.parent.iterdir()) if path.name.startswith(prefixes) and path.is_dir()]
    if not dead:
        return
    recorded = _recorded_files(name)
    if recorded is not None and not _holds(target, recorded):
        previous = next((path for path in dead if _holds(path, recorded)), None)
        if previous is not None:
            _swap_in(previous, target)  # ``previous`` now holds the unrecorded files, if any
    for path in dead:
        shutil.rmtree(path, ignore_errors=True)


def _recorded_files(name: str) -> tuple[FileRecord, ...] | None:
    """The files listed by the release record of ``name`` on disk, or None without a record."""
    path = record_path(name)
    if not path.exists():
        return None
    return Release.from_dict(json.loads(path.read_text())).files


def _holds(folder: Path, files: tuple[FileRecord, ...]) -> bool:
    """Whether ``folder`` holds every file of ``files`` with its recorded size and sha256."""
    if not folder.is_dir():
        return False
    try:
        zoo_format.verify_files(folder, files)
    except zoo_format.IntegrityError:
        return False
    return True


def _sync_tree(folder: Path) -> None:
    """fsync every file of ``folder`` and the folder itself (before it is swapped in)."""
    for path in folder.iterdir():
        if path.is_file():
            atomic.fsync_file(path)
    atomic.fsync_dir(folder)


def _swap_in(staging: Path, target: Path) -> None:
    """Put the complete ``staging`` folder at ``target`` in one step; ``staging`` then holds the
    previous release (if any), for the caller to remove.

    Where the system cannot swap two folders atomically (``zoo.atomic.exchange``), the previous
    release is renamed aside first: a kill between the two renames leaves it intact under
    ``.<name>.previous-<pid>`` instead of at ``target``.
    """
    if not target.exists():
        os.rename(staging, target)
    elif not atomic.exchange(staging, target):
        aside = target.with_name(f".{target.name}.previous-{os.getpid()}")
        os.rename(target, aside)
        os.rename(staging, target)
        os.rename(aside, staging)
    atomic.fsync_dir(target.parent)


def _fill_staging(
    run_dir: Path,
    staging: Path,
    config: dict[str, Any],
    *,
    storage_dtype: str | None,
    max_shard_size: int | None,
    tolerance: float,
    data_dir: str | Path | None,
) -> tuple[dict[str, float], dict[str, Any], list[str]]:
    """Copy (or convert) the run's release files into ``staging``: (metrics, config, file names)."""
    convert = storage_dtype is not None or max_shard_size is not None
    for pattern in _STAGED:
        for path in sorted(run_dir.glob(pattern)):
            if path.name == "last.safetensors" or (convert and any(path.match(p) for p in _WEIGHT_FILES)):
                continue
            shutil.copy2(path, staging / path.name)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if convert:
        metrics = _convert_weights(
            run_dir, staging, metrics, storage_dtype=storage_dtype or "float32",
            max_shard_size=max_shard_size, tolerance=tolerance, data_dir=data_dir,
        )
        config = read_folder(staging).fields
    names = sorted(p.name for pattern in _STAGED for p in staging.glob(pattern))
    return metrics, config, names


def _training_with_current_timing(run_dir: Path, training: Any) -> Any:
    """The run's ``training`` record with its time and speed figures summarized again from its
    ``timing.json``: epochs left out after the run ended (``zoo.training.callbacks.exclude_epoch``)
    leave the figures and are named on the card."""
    from zoo.training.callbacks import summarize_timing

    timing = (training or {}).get("timing") if isinstance(training, dict) else None
    if not timing or not (run_dir / "timing.json").exists():
        return training
    return {**training, "timing": summarize_timing(run_dir / "timing.json", timing["epochs"])}


def _convert_weights(
    run_dir: Path,
    target: Path,
    run_metrics: dict[str, float],
    *,
    storage_dtype: str,
    max_shard_size: int | None,
    tolerance: float,
    data_dir: str | Path | None,
) -> dict[str, float]:
    """Write the run's weights into ``target`` as ``storage_dtype`` (sharded above
    ``max_shard_size``), measure them on the run's test images (the whole test split unless the
    run used ``--limit``) next to the run's own weights, and check the drift.

    Returns the staged files' metrics; config.json and README.md of ``target`` carry them.
    """
    from zoo.cards import render_card
    from zoo.evaluation import evaluate_name
    from zoo.training.report import training_text
    from zoo.weights import DEFAULT_MAX_SHARD_SIZE

    run = read_folder(run_dir)
    run_config = run.fields
    model = load(run_dir)
    metadata = {key: value for key, value in run.metadata.items() if key not in _FOLDER_KEYS}
    metadata["training"] = _training_with_current_timing(run_dir, metadata.get("training"))
    zoo_format.save_folder(
        model, target, metadata=metadata, storage_dtype=storage_dtype,
        max_shard_size=max_shard_size or DEFAULT_MAX_SHARD_SIZE, overwrite=True,
    )
    limit = (run_config.get("evaluation") or {}).get("limit")  # the run's own test images
    # Both sides measured here, on this backend: the run's figure may come from another backend,
    # whose rounding differences would count against the tolerance as if they were the conversion's.
    before = evaluate_name(run_dir, limit=limit, data_dir=data_dir)
    measured = evaluate_name(target, limit=limit, data_dir=data_dir)
    drift = {key: measured[key] - before[key] for key in measured if key in before}
    too_far = {key: round(value, 6) for key, value in drift.items() if abs(value) > tolerance}
    if too_far:
        raise ValueError(
            f"Storing the weights as {storage_dtype} moved test metrics by more than {tolerance}: "
            f"{too_far} (the run's weights: {before}, staged: {measured}; the run's own record: "
            f"{run_metrics}). Release the float32 weights instead."
        )
    staged = read_folder(target)
    metadata = dict(staged.metadata)
    metadata["metrics"] = measured
    metadata["metrics_before_conversion"] = {
        "storage_dtype": run_config.get("weights", {}).get("storage_dtype", "float32"),
        "measured_with": keras.backend.backend(),
        **before,
    }
    zoo_format.write_folder_files(target, staged.build, metadata)
    config = read_folder(target).fields
    if (target / zoo_format.CARD_NAME).exists() or (run_dir / zoo_format.CARD_NAME).exists():
        card = render_card(config, metrics=measured, folder=target, training=training_text(config))
        (target / zoo_format.CARD_NAME).write_text(card)
    return measured


def register_publication(name: str, repo_id: str, revision: str) -> Release:
    """Pin the Hub repo and revision of an existing release record.

    Example:
        >>> register_publication("cnn.fmnist", "keras-zoo/cnn.fmnist", "3f1c...")  # doctest: +SKIP
    """
    path = record_path(name)
    if not path.exists():
        raise ValueError(f"No release record for {name!r}; stage the release first. Received: name={name!r}")
    release = replace(Release.from_dict(json.loads(path.read_text())), hub_repo_id=repo_id, hub_revision=revision)
    write_record(name, release)
    return release


def publish(
    folder: str | Path,
    repo_id: str,
    *,
    register: str | None = None,
    **push_options: Any,
) -> str:
    """Push a run or release folder with :func:`zoo.push`; with ``register``, pin the commit.

    Pinning writes the repo id and commit sha into the tag's release record and regenerates
    ``registry.json``, so ``zoo.load(register)`` pulls exactly that commit from the Hub. The
    release's own card replaces the Hub's, the pushed commit is pulled back and checked against
    the record before it is pinned, and no staging can change the record meanwhile (the lock on
    ``weights/``).

    Example:
        >>> publish("weights/cnn.fmnist", "keras-zoo/cnn.fmnist", register="cnn.fmnist")  # doctest: +SKIP
    """
    repo_id = hub.push_target(repo_id)  # hf://namespace/name too; checked before anything is pushed
    if register is None:
        return hub.push(folder, repo_id, **push_options)
    (ROOT / "weights").mkdir(exist_ok=True)
    lock = _lock_weights_folder(ROOT / "weights")  # the record read here is the one pinned below
    try:
        return _publish_registered(Path(folder), repo_id, register, push_options)
    finally:
        os.close(lock)


def _publish_registered(folder: Path, repo_id: str, register: str, push_options: dict[str, Any]) -> str:
    """``publish`` with ``register``, under the lock on ``weights/``."""
    from zoo.catalog import check_no_plugins, write_catalog

    check_no_plugins()  # registry.json is regenerated after the push: nothing may stop it then
    if not record_path(register).exists():
        raise ValueError(
            f"No release record for {register!r}; stage it with scripts/release.py first. "
            f"Received: register={register!r}"
        )
    if push_options.get("create_pr"):
        raise ValueError(
            "A pull request's commit is not on a branch until it is merged: push with create_pr, merge it, "
            f"then pin the merged commit. Received: register={register!r}, create_pr=True"
        )
    # The pinned commit must hold the recorded files, or every installed zoo would refuse to load it.
    recorded = Release.from_dict(json.loads(record_path(register).read_text())).files
    zoo_format.verify_files(folder, recorded)
    sha = hub.push(folder, repo_id, **{**push_options, "replace_card": True})
    with tempfile.TemporaryDirectory(prefix="zoo-publish-check-") as cache:  # what an installed zoo will pull
        hub.pull(repo_id, revision=sha, cache_dir=cache, records=recorded,
                 token=push_options.get("token"), endpoint=push_options.get("endpoint"))
    register_publication(register, repo_id, sha)
    write_catalog(ROOT / "registry.json")
    return sha

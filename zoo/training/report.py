"""What a finished run writes: exported model, metrics, figures, model card, summary line.

Example:
    >>> print(summary_line("cnn", {"accuracy": 0.9}, {"monitor": "val_accuracy", "value": 0.9, "epoch": 2}, 2, 5.0, Path("r")))
    [zoo] cnn: test accuracy 0.9000 | best val_accuracy 0.9000 at epoch 2/2 | 5s this session | r
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import keras
import numpy as np

from zoo import plots
from zoo.atomic import atomic_write_text
from zoo.cards import public_command, render_card
from zoo.format import read_folder, save_folder
from zoo.hub import push, push_target
from zoo.recipe import DESCRIPTIVE_FIELDS
from zoo.tasks import task_of
from zoo.training.precision import accelerator_description
from zoo.training.run_dir import RunDir

__all__ = ["cpu_description", "push_run", "summary_line", "trained_on", "trained_on_sessions", "write_results"]

#: Files of a run folder that stay local when it is pushed (resume state, last epoch, log).
LOCAL_ONLY = ("last.safetensors", "run.json", "history.csv", "timing.json", "timing.excluded.json")


#: CPU flags worth naming in a model card: they decide which kernels (and precisions) run fast.
NOTABLE_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_description(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name, logical core count and notable instruction-set flags.

    Example:
        >>> isinstance(cpu_description(), str)
        True
        >>> cpu_description("/nonexistent").endswith("cores")
        True
    """
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    named = [flag for flag in NOTABLE_CPU_FLAGS if flag in flags]
    text = f"{model}, {os.cpu_count()} cores"
    return f"{text} ({' '.join(named)})" if named else text


def _torch_devices() -> str:
    """The devices torch computes on (``cuda:0, ...`` or ``cpu``)."""
    import torch

    if torch.cuda.is_available():
        return ", ".join(f"cuda:{index}" for index in range(torch.cuda.device_count()))
    return "cpu"


def trained_on(distribution: str = "single device") -> str:
    """Where the run trained: OS, CPU, Keras backend and devices, and the distribution setup.

    Example:
        >>> trained_on().startswith(platform.system())
        True
    """
    try:
        devices = ", ".join(keras.distribution.list_devices())
    except Exception:  # Keras lists no devices on torch
        devices = _torch_devices() if keras.backend.backend() == "torch" else "unknown devices"
    try:
        accelerator = accelerator_description()
    except Exception:  # a card is not worth a failed run: the device listing above stands alone
        accelerator = None
    if accelerator:
        devices = f"{devices} ({accelerator})"
    return (
        f"{platform.system()} {platform.machine()}; CPU {cpu_description()}; "
        f"{keras.backend.backend()} on {devices}; {distribution}"
    )


def trained_on_sessions(sessions: Sequence[Mapping[str, Any]], *, current: str, epochs: int) -> str:
    """Where a run trained, session by session: the machine alone when one machine trained every
    epoch, else each machine (in parentheses) with the epochs it trained, joined by `` | `` (an
    epoch continued from a backup made inside it counts for both machines).

    ``sessions`` are ``run.json``'s records (:func:`zoo.training.run_setup.record_session`), each
    ``trained_on`` and the point it started from: ``epochs_done`` and ``batches_done`` (of the next
    epoch). A session that trained nothing (the next one starts where it did, or it only wrote the
    results) is left out. ``current`` (:func:`trained_on` of the finishing session) stands for a
    run without records (a ``run.json`` from before they were kept).

    Example:
        >>> a = {"trained_on": "CPU A", "epochs_done": 0, "batches_done": 0}
        >>> b = {"trained_on": "CPU B", "epochs_done": 19, "batches_done": 40}
        >>> trained_on_sessions([a], current="CPU A", epochs=52)
        'CPU A'
        >>> trained_on_sessions([a, b], current="CPU B", epochs=52)
        'epochs 1-20 (CPU A) | epochs 20-52 (CPU B)'
    """
    starts = [(int(s["epochs_done"]), int(s.get("batches_done") or 0)) for s in sessions]
    ranges: list[list[Any]] = []  # [machine, first epoch, last epoch], 1-based
    for index, session in enumerate(sessions):
        end = starts[index + 1] if index + 1 < len(sessions) else (epochs, 0)
        if end <= starts[index]:
            continue  # trained nothing
        first, last = starts[index][0] + 1, end[0] + (1 if end[1] else 0)
        if ranges and ranges[-1][0] == session["trained_on"]:
            ranges[-1][2] = last
        else:
            ranges.append([session["trained_on"], first, last])
    if not ranges:
        return current
    if len(ranges) == 1 and ranges[0][1] == 1:
        return ranges[0][0]
    spans = [(f"epoch {first}" if first == last else f"epochs {first}-{last}", machine) for machine, first, last in ranges]
    return " | ".join(f"{span} ({machine})" for span, machine in spans)


def write_results(
    run: RunDir, model: keras.Model, metadata: dict[str, Any], metrics: dict[str, float],
    x_test: np.ndarray, y_test: Any, outputs: Any,
) -> None:
    """Write config.json + model.safetensors, metrics.json, the plots and README.md into ``run``.

    ``outputs`` are ``model``'s predictions on ``x_test`` (``zoo.evaluation.predict``).

    Example:
        >>> write_results(run, model, metadata, metrics, x_test, y_test, outputs)  # doctest: +SKIP
    """
    save_folder(model, run.path, metadata=metadata, overwrite=True)
    atomic_write_text(run.metrics, json.dumps(metrics, indent=2) + "\n")
    plots.plot_history(run.history, run.curves)
    task_of(model).plot_results(run.path, x_test, y_test, outputs, metadata["label_names"])
    card = render_card(read_folder(run.path).fields, metrics=metrics, folder=run.path, training=training_text(metadata))
    atomic_write_text(run.readme, card)


def training_text(metadata: Mapping[str, Any]) -> str:
    """The model card's "Training" section: train command, backend, seed, data sizes, recipe.

    Example:
        >>> training_text(read_folder("runs/cnn-0").metadata).startswith("Trained with:")  # doctest: +SKIP
        True
    """
    recipe = metadata["recipe"]
    rows = "\n".join(f"| {key} | {value} |" for key, value in recipe.items() if key != "notes")
    training = metadata["training"]
    best, examples = training["best"], training["examples"]
    precision = "mixed_bfloat16" if training.get("mixed_precision") else "float32"
    if (metadata.get("evaluation") or {}).get("split") == "validation":  # an image folder has no test split
        images = f"Images: {examples['train']} train, {examples['val']} validation (the metrics above)."
    else:
        images = (
            f"Images: {examples['train']} train, {examples['val']} validation (from the train split), "
            f"{examples['test']} test (the metrics above)."
        )
    return (
        f"Trained with:\n\n```bash\n{metadata['train_command']}\n```\n\n"
        f"Trained on: {metadata.get('trained_on', 'unknown')}; precision {precision}. "
        f"{_timing_text(training.get('timing'))}{_storage_text(metadata)}"
        f"{_schedule_changes_text(training.get('schedule_changes'), metadata['train_command'])}\n\n"
        f"Backend: {metadata['backend']}, seed {metadata['seed']}, {training['distribute']}. "
        f"{images} Best epoch by {best['monitor']}: "
        f"{best['epoch']} of {training['epochs']} ({_four_digits(best['value'])}). {recipe.get('notes', '')}\n\n"
        f"| recipe | value |\n|---|---|\n{rows}"
    )


def _storage_text(metadata: Mapping[str, Any]) -> str:
    """The card's sentence on weights stored in a narrower dtype than float32 (``""`` otherwise).

    Example:
        >>> print(_storage_text({"weights": {"storage_dtype": "float16"}, "metrics_before_conversion":
        ...     {"storage_dtype": "float32", "measured_with": "tensorflow", "accuracy": 0.94312}}))
         Weights stored as float16 (loaded into float32); the metrics above were measured on the stored weights (float32 before the conversion: accuracy 0.9431, measured with tensorflow).
    """
    dtype = (metadata.get("weights") or {}).get("storage_dtype", "float32")
    if dtype == "float32":
        return ""
    before = dict(metadata.get("metrics_before_conversion") or {})
    before_dtype = before.pop("storage_dtype", "float32")
    backend = before.pop("measured_with", None)
    figures = ", ".join(f"{key} {_four_digits(value)}" for key, value in before.items())
    where = f", measured with {backend}" if backend else ""
    detail = f" ({before_dtype} before the conversion: {figures}{where})" if figures else ""
    return f" Weights stored as {dtype} (loaded into float32); the metrics above were measured on the stored weights{detail}."


def _schedule_changes_text(changes: Sequence[Mapping[str, Any]] | None, command: str) -> str:
    """The card's sentences on schedule fields changed when the run was resumed (``""`` when none).

    ``command`` is the run's final recorded command; a change made without another command was
    a change of the recipe's defaults.

    Example:
        >>> _schedule_changes_text([{"epochs_begun": 3, "from": {"notes": "a"}, "to": {"notes": "b"}}], "c")
        ''
        >>> print(_schedule_changes_text([{"epochs_begun": 18, "from": {"resolutions": [[0, 16], [30, 28]]},
        ...     "to": {"resolutions": [[0, 16], [24, 28]]}, "command_was": "python scripts/train.py resnet34"}],
        ...     "python scripts/train.py resnet34"))
         The schedule changed when the run was resumed after 18 epochs had begun (which train the same under both): resolutions [[0, 16], [30, 28]] -> [[0, 16], [24, 28]], by the recipe's defaults under the same command. The command above trains the whole run under the final schedule.
    """
    changes, sentences = list(changes or ()), []
    following = [change.get("command_was") for change in changes[1:]] + [command]
    for change, command_after in zip(changes, following):
        fields = "; ".join(  # older zoo versions also noted edits of the notes, which train nothing
            f"{name} {json.dumps(change['from'].get(name))} -> {json.dumps(value)}"
            for name, value in change["to"].items() if name not in DESCRIPTIVE_FIELDS
        )
        if not fields:
            continue
        before = change.get("command_was")
        if before and before != command_after:
            how = f", with the command `{public_command(before)}` before"
        else:
            how = ", by the recipe's defaults under the same command" if before else ""
        sentences.append(
            f" The schedule changed when the run was resumed after {change['epochs_begun']} epochs had begun "
            f"(which train the same under both): {fields}{how}."
        )
    if not sentences:
        return ""
    return "".join(sentences) + " The command above trains the whole run under the final schedule."


def _four_digits(value: float | None) -> str:
    """``value`` with 4 decimals (``n/a`` for ``None``).

    Example:
        >>> _four_digits(0.09803921729326248), _four_digits(None)
        ('0.0980', 'n/a')
    """
    return "n/a" if value is None else f"{value:.4f}"


def _timing_text(timing: Mapping[str, Any] | None) -> str:
    """One sentence on training time and throughput (``summarize_timing``'s figures).

    Example:
        >>> _timing_text({"epochs_timed": 2, "epochs": 2, "hours": 0.5, "images_per_second": 61.1,
        ...               "images_per_second_by_size": {"28": 61.1}})
        'Training took 0.5 hours (2 of 2 epochs timed), 61.1 images/s (by image size: 28 px: 61.1).'
    """
    if not timing:
        return "Training time was not recorded."
    sizes = ", ".join(f"{size} px: {rate}" for size, rate in timing["images_per_second_by_size"].items())
    machines = timing.get("images_per_second_by_machine") or {}
    by_machine = " | ".join(f"{rate} on ({machine})" for machine, rate in machines.items())
    excluded = timing.get("epochs_excluded") or {}
    left_out = "; ".join(f"epoch {epoch}: {reason}" for epoch, reason in excluded.items())
    return (
        f"Training took {timing['hours']} hours ({timing['epochs_timed']} of {timing['epochs']} epochs timed), "
        f"{timing['images_per_second']} images/s (by image size: {sizes})."
        + (f" Images/s by machine: {by_machine}." if by_machine else "")
        + (f" Left out of these figures ({len(excluded)} epoch(s)): {left_out}." if excluded else "")
    )


def summary_line(name: str, metrics: Mapping[str, float], best: Mapping[str, Any], epochs: int, seconds: float, path: Path) -> str:
    """The one line printed at the end of a run.

    Example:
        >>> summary_line("cnn", {"accuracy": 0.9}, {"monitor": "val_accuracy", "value": 0.91, "epoch": 3}, 3, 12.0, Path("runs/cnn-0"))
        '[zoo] cnn: test accuracy 0.9000 | best val_accuracy 0.9100 at epoch 3/3 | 12s this session | runs/cnn-0'
    """
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "accuracy" or len(metrics) == 1)
    value = _four_digits(best["value"])
    return (
        f"[zoo] {name}: test {shown} | best {best['monitor']} {value} at epoch {best['epoch']}/{epochs} "
        f"| {seconds:.0f}s this session | {path}"
    )


def push_run(run_path: Path, repo_id: str, **kwargs: Any) -> str:
    """Upload a finished run folder with ``zoo.push``, without its local-only files.

    ``last.safetensors`` would otherwise be uploaded (and downloaded by every pull) next to
    ``model.safetensors``. The model card is rendered again with ``repo_id`` so its usage
    snippet loads ``hf://<repo_id>``. Returns the commit sha.

    Example:
        >>> push_run(Path("runs/cnn-0"), "me/cnn.fmnist")  # doctest: +SKIP
        '3f1c...'
    """
    repo_id = push_target(repo_id)
    with tempfile.TemporaryDirectory(prefix="zoo-run-push-") as name:
        staging = Path(name)
        for path in Path(run_path).iterdir():
            if path.is_file() and path.name not in LOCAL_ONLY:
                shutil.copy2(path, staging / path.name)
        config = read_folder(staging).fields
        card = render_card(config, repo_id=repo_id, metrics=config.get("metrics"), folder=staging, training=training_text(config))
        (staging / "README.md").write_text(card)
        return push(staging, repo_id, **kwargs)

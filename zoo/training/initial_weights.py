"""The weights a run starts from (``--init-from``): found, checked against the run, recorded.

Both kinds of run take them: a Fashion-MNIST recipe run continues training every weight of a
model of the same architecture and configuration (timm's ``--initial-checkpoint``; e.g. a second,
short low-learning-rate stage after a release), and a fine-tuning run on an image folder
(:mod:`zoo.training.finetune`) takes all but the head. The run records where the weights came
from as a user can name them again (a registered name, ``hf://...``, a folder's name: never a
path of this machine) with the sha256 of each weights file, so that the record still says
which weights were used after a release of the same name is replaced.

Example:
    >>> from zoo.api import resolve
    >>> start = initial_weights("cnn", "cnn.fmnist", resolve("cnn.fmnist"))
    >>> start.record["base_model"], sorted(start.record["base_model_sha256"])
    ('cnn.fmnist', ['model.safetensors'])
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from zoo.api import Resolved
from zoo.format import sha256_of
from zoo.hub import HF_PREFIX, parse_handle
from zoo.registry import get_spec, split_name
from zoo.weights import INDEX_NAME, weight_files

__all__ = ["InitialWeights", "base_model_record", "check_architecture", "check_outside_output", "check_same_model",
           "initial_weights", "recorded_handle"]

# Builder arguments that do not change which weights a model has, or their shapes.
_SHAPE_FREE_ARGUMENTS = frozenset({"dtype"})


@dataclass(frozen=True)
class InitialWeights:
    """Where a run's initial weights lie (``path``: a weights file or a zoo folder) and the record
    of them that goes into the run's ``metadata.json`` (``base_model``, ``base_model_repo``,
    ``base_model_sha256``: the sha256 of each weights file)."""

    path: Path
    record: Mapping[str, Any]


def recorded_handle(handle: str | os.PathLike) -> str:
    """``handle`` as a run records it: a local folder by its name (like ``--data``), no path of this machine.

    Example:
        >>> recorded_handle("resnet34.fmnist"), recorded_handle("hf://me/net@v1")
        ('resnet34.fmnist', 'hf://me/net@v1')
    """
    text = str(handle)
    if text.startswith(HF_PREFIX) or not Path(text).expanduser().exists():
        return text
    path = Path(text).expanduser().resolve()
    # A weights file: the zoo folder it lies in (its sha256 in the record tells which file; runs
    # begun earlier recorded it so, and a resume compares the record).
    return (path.parent if path.is_file() else path).name


def base_model_record(handle: str | os.PathLike, resolved: Resolved) -> dict[str, Any]:
    """``base_model`` (what the weights came from, as :func:`recorded_handle`) and, when known, its Hub repo.

    Example:
        >>> from zoo.api import resolve
        >>> base_model_record("cnn", resolve("cnn"))["base_model"]
        'cnn.fmnist'
    """
    text = str(handle)
    if text.startswith(HF_PREFIX):
        return {"base_model": text, "base_model_repo": parse_handle(text)[0]}
    if isinstance(handle, str) and not Path(handle).expanduser().exists():
        spec = get_spec(handle)
        weight = spec.weight(split_name(handle)[1])
        full = f"{spec.name}.{weight.tag}" if weight else spec.name
        release = weight.release if weight else None
        repo = (release.hub_repo_id if release else None) or (weight.hub_repo_id if weight else None)
        return {"base_model": full, "base_model_repo": repo}
    metadata = resolved.metadata or {}
    return {"base_model": recorded_handle(handle), "base_model_repo": metadata.get("hub_repo_id")}


def check_architecture(name: str, resolved: Resolved, init_from: Any) -> str:
    """The architecture of ``name``, after checking that the weights ``init_from`` resolved to are one.

    Example:
        >>> from zoo.api import resolve
        >>> check_architecture("cnn", resolve("cnn.fmnist"), "cnn.fmnist")
        'cnn'
    """
    arch = split_name(name)[0]
    if resolved.name is None:
        raise ValueError(
            f"{str(init_from)!r} holds a plain Keras model, not a zoo architecture: training cannot start "
            f"from it as {arch!r}. Received: init_from={str(init_from)!r}"
        )
    init_arch = split_name(resolved.name)[0]
    if init_arch != arch:
        raise ValueError(
            f"The weights of {str(init_from)!r} are a {init_arch!r}; the run trains a {arch!r}. Name the "
            f"same architecture (e.g. `{init_arch} --init-from {init_from}`). Received: arch={name!r}"
        )
    return arch


def check_same_model(model_config: Mapping[str, Any], resolved: Resolved, init_from: Any) -> None:
    """Refuse initial weights built with other arguments than the run's model (other classes,
    input channels, stem...): a recipe run continues every weight, so every shape must match.

    Example:
        >>> from zoo.api import resolve
        >>> check_same_model({"num_classes": 3}, resolve("cnn.fmnist"), "cnn.fmnist")
        Traceback (most recent call last):
        ...
        ValueError: The weights of 'cnn.fmnist' were built with num_classes=10, the run's model with num_classes=3: ...
    """
    differences = [
        (key, resolved.config.get(key), value) for key, value in model_config.items()
        if key not in _SHAPE_FREE_ARGUMENTS and _plain(resolved.config.get(key)) != _plain(value)
    ]
    if differences:
        theirs = ", ".join(f"{key}={value!r}" for key, value, _ in differences)
        ours = ", ".join(f"{key}={value!r}" for key, _, value in differences)
        raise ValueError(
            f"The weights of {str(init_from)!r} were built with {theirs}, the run's model with {ours}: a "
            "Fashion-MNIST run continues every weight of the same model. To train other classes from "
            f"them, fine-tune on an image folder (--data DIR). Received: init_from={str(init_from)!r}"
        )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _weight_files(path: Path) -> list[Path]:
    """The files :func:`zoo.weights.load_weights` reads at ``path``: the weights file or shards, and any index."""
    index = path / INDEX_NAME if path.is_dir() else None
    return sorted([*weight_files(path), *([index] if index is not None and index.is_file() else [])])


def check_outside_output(weights: str | os.PathLike, output_dir: str | os.PathLike, init_from: str | os.PathLike) -> None:
    """Refuse a run whose output folder holds the weights it starts from (``weights``: a file or a zoo folder):
    ``--overwrite`` would delete them before they are read, and the run's end would replace them.

    Example:
        >>> check_outside_output("runs/cnn-0/model.safetensors", "runs/cnn-1", "runs/cnn-0")
        >>> check_outside_output("runs/cnn-0/model.safetensors", "runs/cnn-0", "runs/cnn-0")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: The weights to start from ('runs/cnn-0') lie in the run's output folder 'runs/cnn-0': ...
    """
    source = Path(weights).expanduser().resolve()
    folder = source if source.is_dir() else source.parent
    output = Path(output_dir).expanduser().resolve()
    if folder == output or output in folder.parents:
        raise ValueError(
            f"The weights to start from ({str(init_from)!r}) lie in the run's output folder {str(output_dir)!r}: "
            "training there would delete (--overwrite) or replace them. Choose another output folder (--output). "
            f"Received: init_from={str(init_from)!r}, output_dir={str(output_dir)!r}"
        )


def initial_weights(name: str, init_from: str | os.PathLike, resolved: Resolved) -> InitialWeights:
    """Check that ``resolved`` (``zoo.api.resolve(init_from)``) holds weights of ``name``'s
    architecture and record them: :func:`base_model_record` plus the sha256 of each weights file.

    Example:
        >>> from zoo.api import resolve
        >>> initial_weights("cnn", "cnn", resolve("cnn")).record["base_model"]
        'cnn.fmnist'
    """
    check_architecture(name, resolved, init_from)
    if resolved.weights is None:
        raise ValueError(
            f"{str(init_from)!r} has no trained weights to start from; `zoo list --pretrained` names those "
            f"that do. Received: init_from={str(init_from)!r}"
        )
    path = Path(resolved.weights)
    record = {**base_model_record(init_from, resolved), "base_model_sha256": {p.name: sha256_of(p) for p in _weight_files(path)}}
    return InitialWeights(path=path, record=record)

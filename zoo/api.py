"""The public entry points: ``create``, ``load`` and ``info``.

``load`` takes any handle -- a registered name (``"resnet34"``, ``"cnn.fmnist"``), a Hub handle
(``"hf://namespace/name@revision"``), a zoo folder or a safetensors file in one -- resolves it
once (:func:`resolve`: builder name, config, weight location, hashes checked), builds it
(:func:`build`) and loads the weights (``zoo.weights.load_weights``).

Example:
    >>> model = load("cnn", weights=None)
    >>> model.name
    'cnn'
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import keras
import numpy as np

from zoo import hub
from zoo import weights as weights_io
from zoo._warnings import warn_caller
from zoo.format import (
    CONFIG_NAME, SAFE_MODULES, ZooFolder, check_keras_config, read_folder, verify_files,
)
from zoo.hub import HF_PREFIX
from zoo.registry import WeightSpec, get_spec, list_models, plugin_packages, split_name

__all__ = ["Resolved", "build", "create", "info", "load", "load_resolved", "resolve", "resolve_weights", "weight_info"]


def create(name: str, **overrides: Any) -> keras.Model:
    """Build the untrained model ``name`` (``arch`` or ``arch.tag``) with keyword overrides.

    A tag (or, for a bare name, the default tag) contributes the architecture overrides its
    weights were trained with, e.g. ``resnet34`` builds the 28x28x1 small-stem variant.

    Example:
        >>> model = create("resnet34", num_classes=5)
        >>> model.output_shape
        (None, 5)
    """
    spec = get_spec(name)
    _, tag = split_name(name)
    config = spec.config_for(tag, _plain(overrides))
    model = spec.builder(**config)
    # Like timm's ``pretrained_cfg``: what built this model, for export and pushing (as JSON values).
    recorded = {key: _recorded_value(value) for key, value in config.items()}
    model.zoo_config = {"architecture": spec.name, "tag": tag or spec.default_tag, "config": recorded}
    return model


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays in builder arguments as Python values (``num_classes=y.max() + 1``
    is an ``np.int64``): the builders check them like any int, and config.json records them."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return tuple(_plain(item) for item in value.tolist()) if value.ndim else value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value.item() if isinstance(value, np.generic) else value


def _recorded_value(value: Any) -> Any:
    """A builder argument as ``config.json`` records it: a dtype policy by its name."""
    return value.name if isinstance(value, keras.DTypePolicy) else value


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _release_dir(weight: WeightSpec) -> Path | None:
    release = weight.release
    if release is None or release.local_dir is None:
        return None
    folder = _repo_root() / release.local_dir
    return folder if folder.is_dir() else None


def resolve_weights(name: str) -> tuple[WeightSpec, Path]:
    """Find the released weights of ``name``: a checkout's ``weights/`` folder or the Hub.

    From a checkout, the release folder is used; an installed zoo pulls the record's Hub repo
    (its pinned revision once published, else ``main``). Every file is checked against the
    sha256 in the release record before it is returned.

    Example:
        >>> weight, folder = resolve_weights("cnn.fmnist")
        >>> weight.tag, (folder / "model.safetensors").exists()
        ('fmnist', True)
    """
    spec = get_spec(name)
    _, tag = split_name(name)
    weight = spec.weight(tag)
    if weight is None or weight.release is None:
        label = f"{spec.name}.{weight.tag}" if weight else spec.name
        raise ValueError(
            f"No released weights for {label!r} yet. Released: "
            f"{list_models(pretrained=True) or 'none'}. Use weights=None for an untrained model. "
            f"Received: name={name!r}"
        )
    release = weight.release
    folder = _release_dir(weight)
    if folder is None:
        # Not in a checkout (an installed zoo): the Hub repo of the record, at its pinned revision,
        # else at main -- either way every file must match the sha256 in the record.
        repo_id = release.hub_repo_id or weight.hub_repo_id
        if not repo_id:
            raise FileNotFoundError(
                f"The weights of {spec.name}.{weight.tag} are recorded in {release.local_dir!r} "
                "of a zoo checkout and name no Hub repo. Run from a checkout, or pass "
                "weights=PATH to a copy of that folder."
            )
        folder = hub.pull(repo_id, revision=release.hub_revision, records=release.files)
    else:
        verify_files(folder, release.files)
    return weight, folder


@dataclass(frozen=True)
class Resolved:
    """A handle resolved to what builds the model and where its weights are.

    ``name`` is the registered ``arch`` or ``arch.tag`` that builds it (``None`` for a folder
    holding a plain Keras model), ``config`` the builder's arguments, ``weights`` the folder or
    file of its weights (``None`` when there are none or they were not asked for) and
    ``keras_config`` the Keras serialization of a model without a registered builder.
    ``metadata`` is what is known about the weights (label names, preprocessing, metrics,
    dataset): a folder's ``metadata.json``, or the registry's record of a weight tag.
    ``weights_config`` is the builder's arguments the weights were saved with, when they come
    from another zoo folder than the handle (``None``: the handle's ``config``).
    """

    name: str | None
    config: Mapping[str, Any]
    weights: Path | None
    keras_config: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    weights_config: Mapping[str, Any] | None = None


def _from_folder(folder: ZooFolder, weights: Path | None) -> Resolved:
    if folder.architecture is None:
        if folder.keras_config is None:
            raise ValueError(f"{str(folder.path)!r} names no architecture and holds no Keras config.")
        return Resolved(None, {}, weights, folder.keras_config, dict(folder.metadata))
    tag = folder.tag
    name = folder.architecture
    if tag:
        spec = get_spec(folder.architecture)
        name = f"{name}.{tag}" if tag in spec.weights else name
    return Resolved(name, folder.config or {}, weights, metadata=dict(folder.metadata))


def resolve(handle: str | os.PathLike, weights: str | os.PathLike | None = "default") -> Resolved:
    """Resolve any model handle once: what builds it, with which config, and where its weights are.

    ``handle`` is a registered name (``"resnet34"``, ``"cnn.fmnist"``), a Hub handle
    (``"hf://namespace/name@revision"``), a zoo folder (``config.json`` + safetensors) or a
    safetensors file inside such a folder. ``weights`` means the same for every kind of handle:
    ``"default"`` (the handle's own weights), ``None`` (none: an untrained model) or a path to
    a safetensors file or folder. Hashes are checked before anything is returned. A registered
    name always means the registered model, even where a folder of that name exists (with a
    warning): write ``"./cnn"`` for the folder.

    Example:
        >>> resolved = resolve("cnn", weights=None)
        >>> resolved.name, resolved.config["input_shape"], resolved.weights
        ('cnn', (28, 28, 1), None)
    """
    own = isinstance(weights, str) and weights == "default"
    if not (weights is None or own or isinstance(weights, (str, os.PathLike))):
        raise ValueError(
            "`weights` is 'default' (the handle's own), None (untrained) or a path to a safetensors file or "
            f"folder. Received: weights={weights!r}"
        )
    for argument, value in (("handle", handle), ("weights", weights)):
        if isinstance(value, str) and not value.strip():  # Path("") is the current folder
            raise ValueError(
                f"`{argument}` is empty. A handle is a registered name (zoo.list_models()), 'hf://namespace/name', "
                "a zoo folder or a file in one ('.' for the current folder); weights are 'default', None or a path. "
                f"Received: {argument}={value!r}"
            )
    explicit = None if weights is None or own else Path(weights).expanduser()
    if explicit is not None and not explicit.exists():
        raise FileNotFoundError(
            f"No weights file or folder at {str(weights)!r}. `weights` is 'default' (the handle's own), None "
            f"(untrained) or a path to a safetensors file or folder. Received: weights={weights!r}"
        )
    if isinstance(handle, str) and handle.startswith(HF_PREFIX):
        repo_id, revision = hub.parse_handle(handle)
        folder = read_folder(hub.pull(repo_id, revision=revision, weights=own))
        return _with_weights(_from_folder(folder, folder.path if own else None), explicit)
    path = Path(handle).expanduser() if isinstance(handle, (str, os.PathLike)) else None
    if path is not None and path.exists() and _is_registered_name(handle):
        warnings.warn(
            f"{handle!r} is a registered model name and also a {'folder' if path.is_dir() else 'file'} here: "
            f"loading the registered model. Pass './{handle}' to load the {'folder' if path.is_dir() else 'file'}.",
            stacklevel=3,
        )
        path = None
    if path is not None and not path.exists() and _names_a_path(handle):
        raise FileNotFoundError(
            f"No folder or file at {str(path)!r}. A model handle is a registered name (zoo.list_models()), "
            f"'hf://namespace/name[@revision]', a zoo folder or a safetensors file in one. Received: handle={handle!r}"
        )
    if path is not None and path.is_dir():
        folder = read_folder(path)
        if own:
            _verify_folder(folder)
        return _with_weights(_from_folder(folder, path if own else None), explicit)
    if path is not None and path.is_file() and path.suffix == ".keras":
        raise ValueError(
            f"{str(path)!r} is a .keras file: zoo.load reads it whole (architecture and weights), but it has no "
            "zoo record to resolve or export from. Save it as a zoo folder first, then use the folder: "
            f"zoo.format.save_folder(zoo.load({str(path)!r}), 'my-model'). Received: handle={str(handle)!r}"
        )
    if path is not None and path.is_file():
        if not (path.parent / CONFIG_NAME).is_file():
            raise ValueError(
                f"A weights file alone does not say which model it holds: there is no {CONFIG_NAME} "
                f"next to it. Load it into a named model instead: zoo.load('cnn', weights={str(path)!r}). "
                f"Received: {str(path)!r}"
            )
        folder = read_folder(path.parent)
        resolved = _from_folder(folder, None)
        if own:  # this file of the folder: checked when recorded (a run's last.safetensors is not)
            resolved = replace(resolved, weights=path, metadata=_checked_metadata(folder, path))
        return _with_weights(resolved, explicit)
    if not isinstance(handle, str):
        raise ValueError(f"A model handle is a name, 'hf://...', a folder or a file. Received: {handle!r}")
    spec = get_spec(handle)
    _, tag = split_name(handle)
    config = spec.config_for(tag, {})
    weight = spec.weight(tag)
    metadata = _weight_metadata(weight) if weight is not None else {}
    return _with_weights(Resolved(handle, config, resolve_weights(handle)[1] if own else None, metadata=metadata), explicit)


def _verify_folder(folder: ZooFolder) -> None:
    """Check the files of a zoo folder against its recorded sha256 (all of them: a weights file of
    a sharded save is read with its index and shards). A folder that records none is loaded with a
    warning: nothing says its files are the ones that were saved."""
    if not folder.records:
        warn_caller(
            f"{str(folder.path)!r} records no sha256 of its weight files (no metadata.json, or one without "
            "'weights'): they are loaded unverified."
        )
    verify_files(folder.path, folder.records)


def _checked_metadata(folder: ZooFolder, weights: Path) -> dict[str, Any]:
    """What the zoo ``folder`` says about ``weights`` (the folder, or a file in it), hashes checked.

    A file the folder records (or one of a folder that records none) gets its ``metadata.json``;
    another file beside them (a run's ``last.safetensors``) is loaded unverified, with a warning,
    and keeps the folder's label names and preprocessing but not its metrics, which are the
    recorded weights'."""
    recorded = {record.name for record in folder.records}
    if weights.is_dir() or not recorded or weights.name in recorded:
        _verify_folder(folder)
        return dict(folder.metadata)
    warn_caller(
        f"{weights.name!r} is not one of the weight files {str(folder.path / 'metadata.json')!r} records "
        f"({sorted(recorded)}): it is loaded unverified, and the folder's metrics (of those files) are left out."
    )
    return {key: value for key, value in folder.metadata.items() if key not in ("metrics", "evaluation", "weights")}


def _with_weights(resolved: Resolved, explicit: Path | None) -> Resolved:
    """``resolved`` with the weights given by path, if any, and what is known about them: the
    ``metadata.json`` of their own zoo folder (:func:`_checked_metadata`), over the handle's input
    conventions (dataset, preprocessing); label names and metrics of the handle belong to other weights."""
    if explicit is None:
        return resolved
    kept = {key: resolved.metadata[key] for key in ("dataset", "preprocessing") if key in resolved.metadata}
    folder_path = explicit if explicit.is_dir() else explicit.parent
    folder = read_folder(folder_path) if (folder_path / CONFIG_NAME).is_file() else None
    if folder is None or (folder.architecture is None and folder.keras_config is None):  # no zoo folder
        return replace(resolved, weights=explicit, metadata=kept)
    metadata = {**kept, **_checked_metadata(folder, explicit)}
    return replace(resolved, weights=explicit, metadata=metadata, weights_config=folder.config)


def _is_registered_name(handle: str | os.PathLike) -> bool:
    """Whether ``handle`` is written as a registered name (``arch`` or ``arch.tag``), not a path.

    Example:
        >>> [_is_registered_name(h) for h in ("cnn", "cnn.fmnist", "./cnn", "nonesuch")]
        [True, True, False, False]
    """
    if _names_a_path(handle):
        return False
    try:
        arch, tag = split_name(str(handle))
        spec = get_spec(arch)
    except ValueError:
        return False
    return tag is None or tag in spec.weights


def _names_a_path(handle: str | os.PathLike) -> bool:
    """Whether ``handle`` can only be a path: a path object, or a string with a folder separator,
    a leading ``.`` or ``~``, or a file suffix (a registered name is ``arch`` or ``arch.tag``).

    Example:
        >>> [_names_a_path(h) for h in ("runs/cnn-0", "~/m", "model.safetensors", "cnn.fmnist", "resnet34")]
        [True, True, True, False, False]
    """
    if not isinstance(handle, str):
        return True
    suffixes = (".safetensors", ".json", ".keras", ".h5")
    return any(sep in handle for sep in ("/", os.sep)) or handle.startswith((".", "~")) or handle.endswith(suffixes)


def _weight_metadata(weight: WeightSpec) -> dict[str, Any]:
    """What a folder's ``metadata.json`` would say, from a weight tag's record."""
    release = weight.release
    return {
        "dataset": weight.dataset,
        "label_names": list(weight.label_names),
        "preprocessing": _jsonable(weight.preprocessing),
        "metrics": dict(release.metrics) if release else {},
        "license": weight.license,
        "weights": {"files": {f.name: {"sha256": f.sha256, "size": f.size} for f in release.files}} if release else {},
    }


def build(resolved: Resolved, **overrides: Any) -> keras.Model:
    """Build the (untrained) model of a :class:`Resolved` handle, with builder overrides.

    A registered architecture is built by its builder; a plain Keras model is deserialized
    with ``safe_mode=True`` (registered classes only, no Lambda code).

    Example:
        >>> build(resolve("cnn", weights=None), num_classes=5).output_shape
        (None, 5)
    """
    if resolved.name is None:
        if overrides:
            raise ValueError(
                f"Overrides need a registered architecture; this folder holds a plain Keras model. "
                f"Received: overrides={overrides!r}"
            )
        list_models()  # imports the built-in architectures and plugins, which register their layers with Keras
        return keras.saving.deserialize_keras_object(dict(resolved.keras_config or {}), safe_mode=True)
    return create(resolved.name, **{**resolved.config, **overrides})


def load(handle: str | os.PathLike, weights: str | os.PathLike | None = "default", **overrides: Any) -> keras.Model:
    """Build the model of ``handle`` and load its weights: one path for every kind of handle.

    ``handle``: a registered name (``"cnn"``, ``"resnet34.fmnist"``), ``"hf://namespace/name@rev"``,
    a zoo folder, a safetensors file in one, or a ``.keras`` file (loaded by Keras with
    ``safe_mode=True`` once zoo's layers are registered). ``weights``: ``"default"`` (the handle's own,
    hashes checked), ``None`` (untrained) or a path to a safetensors file or folder (a zoo
    folder's weights bring its own record -- label names, preprocessing -- and are checked against
    its hashes). Builder overrides apply to every kind; a new ``num_classes`` keeps every weight
    but the head, which is freshly initialised (with a warning); without it, weights of another
    head are refused.

    Example:
        >>> model = load("cnn")                      # released Fashion-MNIST weights
        >>> load("cnn", weights=None, num_classes=3).output_shape
        (None, 3)
    """
    keras_file = Path(handle).expanduser() if isinstance(handle, (str, os.PathLike)) else None
    if keras_file is not None and keras_file.suffix == ".keras" and keras_file.is_file():
        return _load_keras_file(keras_file, weights, overrides)
    return load_resolved(resolve(handle, weights), **overrides)


def load_resolved(resolved: Resolved, **overrides: Any) -> keras.Model:
    """Build a :class:`Resolved` handle with builder overrides and load its weights (``load``'s
    second half). The head layers may differ from the weights' only when ``overrides`` change
    ``num_classes`` or ``include_top``: otherwise a mis-shaped head is another model's weights,
    and is refused. ``model.zoo_metadata`` says what is known about the loaded weights.

    Example:
        >>> load_resolved(resolve("cnn"), num_classes=3).output_shape
        (None, 3)
    """
    overrides = _plain(overrides)
    model = build(resolved, **overrides)
    head_changed = _head_changed(resolved, overrides)
    if resolved.weights is not None:
        head = get_spec(resolved.name).head if resolved.name and head_changed else ()
        weights_io.load_weights(model, resolved.weights, head=head)
    model.zoo_metadata = _loaded_metadata(resolved, head_changed)
    return model


def _head_changed(resolved: Resolved, overrides: Mapping[str, Any]) -> bool:
    """Whether ``overrides`` build another head than the weights' (the same value again does not)."""
    saved_with = resolved.config if resolved.weights_config is None else resolved.weights_config
    built_with = {**get_spec(resolved.name).default_config, **saved_with} if resolved.name else {}
    return any(key in overrides and overrides[key] != built_with.get(key) for key in ("num_classes", "include_top"))


def _load_keras_file(path: Path, weights: Any, overrides: Mapping[str, Any]) -> keras.Model:
    """A ``.keras`` file: zoo's layers registered first, then Keras' loader in safe mode."""
    if not (isinstance(weights, str) and weights == "default") or overrides:
        raise ValueError(
            "A .keras file holds its own architecture and weights: it takes no weights= or overrides. "
            f"Received: weights={weights!r}, overrides={dict(overrides)!r}"
        )
    # Keras' safe_mode still imports any module a config names: only keras, zoo and installed zoo plugins here.
    check_keras_config(_keras_archive_config(path), source=path.name, modules=(*SAFE_MODULES, *plugin_packages()))
    list_models()  # imports the built-in architectures and plugins, which register their layers
    return keras.saving.load_model(path, safe_mode=True)


def _keras_archive_config(path: Path) -> Any:
    """The model config inside a ``.keras`` archive (a zip file with ``config.json``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise ValueError(
            f"{str(path)!r} is not a Keras 3 `.keras` archive (a zip file holding config.json): {error}"
        ) from None


def _loaded_metadata(resolved: Resolved, head_changed: bool) -> dict[str, Any]:
    """What is known about the loaded weights (label names, preprocessing, metrics), for predict,
    eval and export: their record, less what no longer holds once the head changed."""
    if resolved.weights is None:
        return {}
    metadata = dict(resolved.metadata)
    if head_changed:
        for key in ("label_names", "metrics", "evaluation"):
            metadata.pop(key, None)
    return metadata


def info(name: str) -> dict[str, Any]:
    """Everything the registry knows about ``name``: config, input spec, parameters, weights.

    Example:
        >>> info("resnet34")["parameters"]
        21297994
    """
    spec = get_spec(name)
    _, tag = split_name(name)
    model = create(name)
    config = spec.config_for(tag, {})
    tags = {}
    for weight_tag, weight in spec.weights.items():
        tags[weight_tag] = weight_info(weight)
    return {
        "name": spec.name,
        "tag": tag or spec.default_tag,
        "description": spec.description,
        "task": spec.task,
        "module": spec.module,
        "default_config": _jsonable(spec.default_config),
        "config": _jsonable(config),
        "input_spec": {"shape": [None, *model.inputs[0].shape[1:]], "dtype": "float32"},
        "outputs": _output_shapes(model),
        "parameters": int(model.count_params()),
        "default_tag": spec.default_tag,
        "weights": tags,
    }


def _output_shapes(model: keras.Model) -> dict[str, list]:
    output = model.outputs[0] if len(model.outputs) == 1 else model.output
    if isinstance(output, dict):
        return {key: list(tensor.shape) for key, tensor in output.items()}
    if isinstance(output, (list, tuple)):  # several outputs in a list: named by the layers that make them
        names = list(getattr(model, "output_names", None) or ())
        if len(names) != len(output) or len(set(names)) != len(names):
            names = [f"output_{index}" for index in range(len(output))]
        return {name: list(tensor.shape) for name, tensor in zip(names, output)}
    return {"output": list(output.shape)}


def weight_info(weight: WeightSpec) -> dict[str, Any]:
    """A JSON-ready description of a weight tag, with its release facts when they exist.

    Example:
        >>> from zoo.registry import get_spec
        >>> weight_info(get_spec("cnn").weights["fmnist"])["dataset"]
        'fashion_mnist'
    """
    data: dict[str, Any] = {
        "available": weight.available,
        "dataset": weight.dataset,
        "description": weight.description,
        "overrides": _jsonable(weight.overrides),
        "label_names": list(weight.label_names),
        "preprocessing": _jsonable(weight.preprocessing),
        "targets": dict(weight.targets),
        "release_floor": dict(weight.release_floor),
        "license": weight.license,
        "hub_repo_id": weight.hub_repo_id,
        "train_command": weight.train_command,
        "recipe": weight.recipe.to_dict() if weight.recipe is not None else None,
    }
    if weight.release is not None:
        data["release"] = weight.release.to_dict()
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value

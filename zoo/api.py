"""The public entry points: ``create``, ``load`` and ``info``.

``load`` accepts a registered name (``"resnet34"``, ``"cnn.fmnist"``), a Hub handle
(``"hf://namespace/name@revision"``) or a local folder laid out like a Hub repo.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras

from zoo import weights as weights_io
from zoo.registry import ModelSpec, WeightSpec, get_spec, split_name

HF_PREFIX = "hf://"


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
    config = spec.config_for(tag, overrides)
    model = spec.builder(**config)
    # Like timm's ``pretrained_cfg``: what built this model, for export and pushing.
    model.zoo_config = {"architecture": spec.name, "tag": tag or spec.default_tag, "config": config}
    return model


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _release_dir(spec: ModelSpec, weight: WeightSpec) -> Path | None:
    release = weight.release
    if release is None or release.local_dir is None:
        return None
    folder = _repo_root() / release.local_dir
    return folder if folder.is_dir() else None


def resolve_weights(name: str) -> tuple[WeightSpec, Path]:
    """Find the released weights of ``name``: a checkout's ``weights/`` folder or the Hub.

    Every file is checked against the sha256 in the release record before it is returned.

    Example:
        >>> spec, folder = resolve_weights("cnn.fmnist")
    """
    from zoo import hub

    spec = get_spec(name)
    _, tag = split_name(name)
    weight = spec.weight(tag)
    if weight is None or weight.release is None:
        label = f"{spec.name}.{weight.tag}" if weight else spec.name
        raise ValueError(
            f"No released weights for {label!r} yet. Released: "
            f"{_released_names() or 'none'}. Use weights=None for an untrained model. "
            f"Received: name={name!r}"
        )
    release = weight.release
    folder = _release_dir(spec, weight)
    if folder is None:
        if not (release.hub_repo_id and release.hub_revision):
            raise FileNotFoundError(
                f"The weights of {spec.name}.{weight.tag} are recorded in {release.local_dir!r} "
                "of a zoo checkout and are not on the Hub yet. Run from a checkout, or pass "
                "weights=PATH to a copy of that folder."
            )
        folder = hub.pull(release.hub_repo_id, revision=release.hub_revision, release=release)
    else:
        hub.verify_files(folder, release.files)
    return weight, folder


def _released_names() -> list[str]:
    from zoo.registry import list_models

    return list_models(pretrained=True)


def load(name: str, weights: str | os.PathLike | None = "default", **overrides: Any) -> keras.Model:
    """Build ``name`` and load weights.

    ``weights`` is ``"default"`` (the released weights of the tag), ``None`` (untrained), or a
    path to a safetensors file/folder. ``name`` may also be ``"hf://namespace/name@revision"``
    or a local folder with ``config.json`` and safetensors weights. Overriding ``num_classes``
    keeps every weight but the head, which is freshly initialised (with a warning).

    Example:
        >>> model = load("cnn")                      # released Fashion-MNIST weights
        >>> model = load("hf://keras-zoo/cnn.fmnist@main")
    """
    from zoo import hub

    if isinstance(name, str) and name.startswith(HF_PREFIX):
        return hub.load_repo(name, **overrides)
    if isinstance(name, (str, os.PathLike)) and Path(name).is_dir():
        return hub.load_folder(Path(name), **overrides)
    spec = get_spec(name)
    model = create(name, **overrides)
    if weights is None:
        return model
    if isinstance(weights, str) and weights == "default":
        _, folder = resolve_weights(name)
        path: Path = folder
    else:
        path = Path(weights)
    weights_io.load_weights(model, path, head=spec.head)
    return model


def info(name: str) -> dict[str, Any]:
    """Everything the registry knows about ``name``: config, input spec, parameters, weights.

    Example:
        >>> info("resnet34")["parameters"]
        21278154
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
    return {"output": list(output.shape)}


def weight_info(weight: WeightSpec) -> dict[str, Any]:
    """A JSON-ready description of a weight tag, with its release facts when they exist."""
    data: dict[str, Any] = {
        "available": weight.available,
        "dataset": weight.dataset,
        "description": weight.description,
        "overrides": _jsonable(weight.overrides),
        "label_names": list(weight.label_names),
        "preprocessing": _jsonable(weight.preprocessing),
        "targets": dict(weight.targets),
        "license": weight.license,
        "hub_repo_id": weight.hub_repo_id,
        "train_command": weight.train_command,
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

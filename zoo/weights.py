"""Model weights in safetensors, keyed by stable variable paths.

Keys are Keras variable paths without the model's own name (``stage1_unit1/conv1/kernel``),
so they depend only on layer names, never on the backend or on creation order. Large models
are sharded like the Hub does (``model-00001-of-00002.safetensors`` plus
``model.safetensors.index.json``). Weights may be stored as float16/bfloat16 and load back
into float32 variables.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import keras
import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
DEFAULT_MAX_SHARD_SIZE = 2 * 1024**3
STORAGE_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
}


class WeightsMismatchError(ValueError):
    """Raised when a weights file does not fit a model; lists every offending key."""


@dataclass
class LoadReport:
    """What :func:`load_weights` did: keys loaded, and head keys left freshly initialised."""

    loaded: list[str] = field(default_factory=list)
    reinitialized: list[str] = field(default_factory=list)


def variable_key(model: keras.Model, variable: keras.Variable) -> str:
    """The stable key of ``variable``: its path without the model name prefix."""
    prefix = f"{model.name}/"
    path = variable.path
    return path[len(prefix):] if path.startswith(prefix) else path


def model_state(model: keras.Model) -> dict[str, keras.Variable]:
    """Every weight of ``model`` (trainable and not) by stable key; keys must be unique."""
    state: dict[str, keras.Variable] = {}
    for variable in model.weights:
        key = variable_key(model, variable)
        if key in state:
            raise ValueError(
                f"Two variables of model {model.name!r} share the key {key!r}: give every "
                "layer a unique name so weights can be saved by name."
            )
        state[key] = variable
    return state


def _shard(arrays: Mapping[str, np.ndarray], max_shard_size: int) -> list[dict[str, np.ndarray]]:
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for key, array in arrays.items():
        if shards[-1] and size + array.nbytes > max_shard_size:
            shards.append({})
            size = 0
        shards[-1][key] = array
        size += array.nbytes
    return shards


def save_weights(
    model: keras.Model,
    path: str | os.PathLike,
    *,
    storage_dtype: str = "float32",
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
    overwrite: bool = False,
) -> list[Path]:
    """Save every weight of ``model`` as safetensors; return the files written.

    ``path`` is a ``.safetensors`` file or a directory (then ``model.safetensors`` inside it).
    Above ``max_shard_size`` bytes the weights are split into shards plus an index file.
    Existing files are never replaced unless ``overwrite=True``.

    Example:
        >>> import tempfile, zoo
        >>> folder = Path(tempfile.mkdtemp())
        >>> [p.name for p in save_weights(zoo.create("cnn"), folder / "model.safetensors", storage_dtype="float16")]
        ['model.safetensors']
    """
    if storage_dtype not in STORAGE_DTYPES:
        raise ValueError(
            f"`storage_dtype` must be one of {sorted(STORAGE_DTYPES)}. "
            f"Received: storage_dtype={storage_dtype!r}"
        )
    if not isinstance(max_shard_size, int) or max_shard_size < 1:
        raise ValueError(f"`max_shard_size` must be a positive int. Received: {max_shard_size!r}")
    path = Path(path)
    target = path / WEIGHTS_NAME if path.suffix != ".safetensors" else path
    target.parent.mkdir(parents=True, exist_ok=True)
    dtype = STORAGE_DTYPES[storage_dtype]
    arrays = {}
    for key, variable in model_state(model).items():
        array = np.asarray(keras.ops.convert_to_numpy(variable))
        if np.issubdtype(array.dtype, np.floating) or array.dtype == ml_dtypes.bfloat16:
            array = array.astype(dtype)
        arrays[key] = np.ascontiguousarray(array)
    shards = _shard(arrays, max_shard_size)
    metadata = {"format": "keras", "library": "zoo", "storage_dtype": storage_dtype}
    if len(shards) == 1:
        files = [target]
    else:
        stem = target.name[: -len(".safetensors")]
        files = [target.with_name(f"{stem}-{i:05d}-of-{len(shards):05d}.safetensors") for i in range(1, len(shards) + 1)]
        files.append(target.with_name(f"{stem}.safetensors.index.json"))
    existing = [f for f in files if f.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"Refusing to overwrite existing weights {[str(f) for f in existing]}; "
            "pass overwrite=True to replace them."
        )
    if len(shards) == 1:
        save_file(shards[0], str(target), metadata=metadata)
        return files
    weight_map = {}
    for shard_path, shard in zip(files, shards):
        save_file(shard, str(shard_path), metadata=metadata)
        weight_map.update({key: shard_path.name for key in shard})
    index = {"metadata": {"total_size": sum(a.nbytes for a in arrays.values()), **metadata}, "weight_map": weight_map}
    files[-1].write_text(json.dumps(index, indent=2, sort_keys=True))
    return files


def weight_files(path: str | os.PathLike) -> list[Path]:
    """The safetensors files behind ``path`` (a file, an index file or a directory)."""
    path = Path(path)
    if path.is_dir():
        if (path / INDEX_NAME).exists():
            path = path / INDEX_NAME
        elif (path / WEIGHTS_NAME).exists():
            path = path / WEIGHTS_NAME
        else:
            raise FileNotFoundError(
                f"No {WEIGHTS_NAME} or {INDEX_NAME} in directory {str(path)!r}."
            )
    if not path.exists():
        raise FileNotFoundError(f"No weights file at {str(path)!r}.")
    if path.name.endswith(".index.json"):
        index = json.loads(path.read_text())
        return [path.parent / name for name in sorted(set(index["weight_map"].values()))]
    if path.suffix != ".safetensors":
        raise ValueError(
            "Weights must be a .safetensors file, a safetensors index or a directory. "
            f"Received: {str(path)!r}"
        )
    return [path]


def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays stored at ``path`` (single file or sharded), by key."""
    arrays: dict[str, np.ndarray] = {}
    for file in weight_files(path):
        with safe_open(str(file), framework="numpy") as handle:
            for key in handle.keys():
                arrays[key] = handle.get_tensor(key)
    return arrays


def _under(key: str, layers: Iterable[str]) -> bool:
    return any(key == name or key.startswith(f"{name}/") for name in layers)


def load_weights(
    model: keras.Model,
    path: str | os.PathLike,
    *,
    strict: bool = True,
    head: Iterable[str] = (),
) -> LoadReport:
    """Load safetensors weights saved by :func:`save_weights` into ``model``.

    Strict by default: missing, unexpected or mis-shaped keys raise
    :class:`WeightsMismatchError` listing them all. Keys under the ``head`` layers whose shapes
    differ (weights trained with another ``num_classes``) are skipped with a warning: the head
    keeps its fresh initialisation. ``strict=False`` also tolerates missing/unexpected keys.

    Example:
        >>> import tempfile, zoo
        >>> path = Path(tempfile.mkdtemp()) / "model.safetensors"
        >>> _ = save_weights(zoo.create("cnn"), path)
        >>> load_weights(zoo.create("cnn"), path).loaded[:1]
        ['conv1/kernel']
    """
    arrays = read_weights(path)
    state = model_state(model)
    head = tuple(head)
    missing = sorted(set(state) - set(arrays))
    unexpected = sorted(set(arrays) - set(state))
    mis_shaped = sorted(
        key for key in set(state) & set(arrays) if tuple(state[key].shape) != arrays[key].shape
    )
    reinitialized = [k for k in mis_shaped if _under(k, head)]
    bad_shapes = [k for k in mis_shaped if k not in reinitialized]
    problems = bad_shapes + ((missing + unexpected) if strict else [])
    if problems:
        lines = [f"Weights at {str(path)!r} do not fit model {model.name!r}."]
        if missing and strict:
            lines.append(f"Missing keys ({len(missing)}): {missing[:20]}")
        if unexpected and strict:
            lines.append(f"Unexpected keys ({len(unexpected)}): {unexpected[:20]}")
        for key in bad_shapes[:20]:
            lines.append(
                f"Shape mismatch for {key!r}: model {tuple(state[key].shape)}, file {arrays[key].shape}"
            )
        raise WeightsMismatchError("\n".join(lines))
    report = LoadReport(reinitialized=reinitialized)
    for key, variable in state.items():
        if key in arrays and key not in reinitialized:
            variable.assign(arrays[key].astype(keras.backend.standardize_dtype(variable.dtype)))
            report.loaded.append(key)
    if reinitialized:
        warnings.warn(
            f"The head of {model.name!r} ({sorted({k.split('/')[0] for k in reinitialized})}) "
            "has a different shape than the saved weights (another num_classes?): it keeps its "
            f"fresh initialisation. Re-initialised keys: {reinitialized}",
            stacklevel=2,
        )
    return report

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
import re
import secrets
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import keras
import ml_dtypes
import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from zoo import atomic

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


class WeightsFileError(ValueError):
    """A weights file or index that cannot be used: empty, truncated, corrupt, an index naming
    files outside its folder, or shards of two different saves."""


@dataclass
class LoadReport:
    """What :func:`load_weights` did: keys loaded, head keys left freshly initialised, and head
    keys of the file not used because the model has no head (``include_top=False``)."""

    loaded: list[str] = field(default_factory=list)
    reinitialized: list[str] = field(default_factory=list)
    skipped_head: list[str] = field(default_factory=list)


def variable_key(model: keras.Model, variable: keras.Variable) -> str:
    """The stable key of ``variable``: its path without the model name prefix.

    Example:
        >>> import keras
        >>> inputs = keras.Input((4,))
        >>> model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs), name="tiny")
        >>> variable_key(model, model.weights[0])
        'dense/kernel'
    """
    prefix = f"{model.name}/"
    path = variable.path
    return path[len(prefix):] if path.startswith(prefix) else path


def model_state(model: keras.Model) -> dict[str, keras.Variable]:
    """Every weight of ``model`` (trainable and not) by stable key; keys must be unique.

    Example:
        >>> import keras
        >>> inputs = keras.Input((4,))
        >>> sorted(model_state(keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))))
        ['dense/bias', 'dense/kernel']
    """
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


def _shard_names(target: Path, count: int) -> list[Path]:
    stem = target.name[: -len(".safetensors")]
    return [target.with_name(f"{stem}-{i:05d}-of-{count:05d}.safetensors") for i in range(1, count + 1)]


def _index_path(target: Path) -> Path:
    return target.with_name(target.name[: -len(".safetensors")] + ".safetensors.index.json")


def _is_shard_of(path: Path, target: Path) -> bool:
    stem = re.escape(target.name[: -len(".safetensors")])
    return re.fullmatch(rf"{stem}-\d{{5}}-of-\d{{5}}\.safetensors", path.name) is not None


def previous_save(target: str | os.PathLike) -> list[Path]:
    """The files of an earlier :func:`save_weights` to ``target`` (a ``.safetensors`` path).

    That is the file itself, its index, the shards the index names and every file named like
    one of its shards (``<stem>-0000k-of-0000n.safetensors``), whichever exist.

    Example:
        >>> import tempfile
        >>> previous_save(Path(tempfile.mkdtemp()) / "model.safetensors")
        []
    """
    target = Path(target)
    found = {p for p in (target, _index_path(target)) if p.is_file()}
    if target.parent.is_dir():
        found |= {p for p in target.parent.iterdir() if _is_shard_of(p, target) and p.is_file()}
    return sorted(found)


def _cast_within_range(key: str, array: np.ndarray, storage_dtype: str) -> np.ndarray:
    """``array`` cast to ``storage_dtype``; ``ValueError`` when a finite value would become infinite."""
    dtype = STORAGE_DTYPES[storage_dtype]
    if array.dtype == dtype:  # float32 weights stored as float32: nothing to cast or check
        return array
    with np.errstate(over="ignore"):
        cast = array.astype(dtype)
    overflow = np.isinf(cast.astype(np.float32)) & ~np.isinf(array.astype(np.float32))
    if overflow.any():
        largest = float(np.abs(array[overflow].astype(np.float32)).max())
        limit = float(ml_dtypes.finfo(dtype).max)
        raise ValueError(
            f"The weight {key!r} holds values up to {largest:.4g}, beyond what {storage_dtype} can store "
            f"(+-{limit:.4g}): store the weights as float32. Received: storage_dtype={storage_dtype!r}"
        )
    return cast


# File names that mean another format: save_weights would otherwise make a folder of that name.
_OTHER_WEIGHT_FORMATS = (".h5", ".hdf5", ".keras", ".npz", ".npy", ".pt", ".pth", ".bin", ".ckpt", ".pkl", ".json")


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
    Above ``max_shard_size`` bytes the weights are split into shards plus an index file. A
    ``storage_dtype`` that cannot hold a weight's values (float16 beyond +-65504) is refused.
    Files of an earlier save to the same place (single file, index or shards) are never
    replaced unless ``overwrite=True``; then the new files are written under temporary names,
    fsynced and renamed into place (shards first, the index last), and only once the new save
    is complete are the earlier save's files that it does not name removed. Every file carries
    the same ``save_id``, so that shards of two saves are never read together.

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
    if isinstance(max_shard_size, bool) or not isinstance(max_shard_size, int) or max_shard_size < 1:
        raise ValueError(f"`max_shard_size` must be a positive int (bytes). Received: {max_shard_size!r}")
    path = Path(path).expanduser()
    if path.suffix.lower() in _OTHER_WEIGHT_FORMATS and not path.is_dir():
        raise ValueError(
            "`path` is a .safetensors file or a folder (then model.safetensors inside it); "
            f"for a Keras file use model.save(). Received: path={str(path)!r}"
        )
    target = path / WEIGHTS_NAME if path.suffix != ".safetensors" else path
    previous = previous_save(target)
    if previous and not overwrite:
        raise FileExistsError(
            f"Refusing to overwrite existing weights {[str(f) for f in previous]}; "
            "pass overwrite=True to replace them."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for key, variable in model_state(model).items():
        array = np.asarray(keras.ops.convert_to_numpy(variable))
        if np.issubdtype(array.dtype, np.floating) or array.dtype == ml_dtypes.bfloat16:
            array = _cast_within_range(key, array, storage_dtype)
        arrays[key] = np.ascontiguousarray(array)
    shards = _shard(arrays, max_shard_size)
    metadata = {"format": "keras", "library": "zoo", "storage_dtype": storage_dtype, "save_id": secrets.token_hex(8)}
    files = [target] if len(shards) == 1 else _shard_names(target, len(shards))
    atomic.remove_stale_temporaries(target.parent)
    temporaries: dict[Path, Path] = {}
    try:
        for file, shard in zip(files, shards):
            temporaries[file] = atomic.temporary_name(file)
            save_file(shard, str(temporaries[file]), metadata=metadata)
        if len(shards) > 1:
            weight_map = {key: file.name for file, shard in zip(files, shards) for key in shard}
            index = {"metadata": {"total_size": sum(a.nbytes for a in arrays.values()), **metadata}, "weight_map": weight_map}
            files.append(_index_path(target))
            temporaries[files[-1]] = atomic.temporary_name(files[-1])
            temporaries[files[-1]].write_text(json.dumps(index, indent=2, sort_keys=True))
        for temporary in temporaries.values():
            atomic.fsync_file(temporary)
        for file in files:  # the index (the entry point of a sharded save) last
            atomic.commit(temporaries.pop(file), file)
    finally:
        for temporary in temporaries.values():
            temporary.unlink(missing_ok=True)
    atomic.fsync_dir(target.parent)
    stale = [p for p in previous if p not in files]
    for file in stale:
        file.unlink(missing_ok=True)
    if stale:
        atomic.fsync_dir(target.parent)
    return files


def _check_name(name: object, index: Path) -> str:
    """A file name from an index: a plain ``.safetensors`` name in the index's own folder."""
    if (
        not isinstance(name, str) or not name.endswith(".safetensors") or name in ("", ".", "..")
        or "/" in name or "\\" in name or name.startswith(".") or Path(name).is_absolute()
    ):
        raise WeightsFileError(
            f"The index {str(index)!r} names {name!r} as a shard: shards must be plain "
            "'<name>.safetensors' file names in the index's own folder (no paths, no '..'). "
            "The index was not used."
        )
    return name


def read_index(path: str | os.PathLike) -> dict[str, str]:
    """The ``weight_map`` (key -> shard file name) of a safetensors index, checked.

    Raises :class:`WeightsFileError` for an index that is not JSON, has no ``weight_map`` or
    names files outside its own folder.

    Example:
        >>> read_index("weights/resnet34.fmnist/model.safetensors.index.json")  # doctest: +SKIP
        {'conv1/kernel': 'model-00001-of-00003.safetensors', ...}
    """
    path = Path(path)
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WeightsFileError(f"The safetensors index {str(path)!r} is not valid JSON ({error}).") from error
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(k, str) for k in weight_map):
        raise WeightsFileError(
            f"The safetensors index {str(path)!r} must hold a non-empty 'weight_map' object "
            f"(key -> shard file name). Received: {type(weight_map).__name__}"
        )
    return {key: _check_name(name, path) for key, name in weight_map.items()}


def weight_files(path: str | os.PathLike) -> list[Path]:
    """The safetensors files behind ``path`` (a file, an index file or a directory).

    A directory holds either ``model.safetensors`` or ``model.safetensors.index.json`` with its
    shards; both at once (two saves mixed) is refused, as are shards missing from the folder and
    shard files in it that the index does not name.

    Example:
        >>> [p.name for p in weight_files("weights/cnn.fmnist")]
        ['model.safetensors']
    """
    path = Path(path)
    if path.is_dir():
        index, single = path / INDEX_NAME, path / WEIGHTS_NAME
        if index.exists() and single.exists():
            raise WeightsFileError(
                f"{str(path)!r} holds both {WEIGHTS_NAME} and {INDEX_NAME}: two saves are mixed "
                "there and neither is used. Save the weights again with overwrite=True, or remove "
                "the one that is stale."
            )
        if index.exists():
            path = index
        elif single.exists():
            path = single
        else:
            raise FileNotFoundError(
                f"No {WEIGHTS_NAME} or {INDEX_NAME} in directory {str(path)!r}."
            )
    if not path.exists() and path.suffix == ".safetensors" and _index_path(path).is_file():
        path = _index_path(path)  # a sharded save to this file name
    if not path.exists():
        raise FileNotFoundError(f"No weights file at {str(path)!r}.")
    if path.name.endswith(".index.json"):
        names = sorted(set(read_index(path).values()))
        files = [path.parent / name for name in names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(
                f"The index {str(path)!r} names {len(files)} shards; {len(missing)} are missing from "
                f"{str(path.parent)!r}: {missing}. Download or save the weights again."
            )
        target = path.with_name(path.name[: -len(".index.json")])
        extra = sorted(p.name for p in path.parent.iterdir() if _is_shard_of(p, target) and p.name not in names)
        if extra:
            raise WeightsFileError(
                f"{str(path.parent)!r} holds shard files that the index {path.name!r} does not name: "
                f"{extra} (index: {names}). They belong to another save; the weights were not "
                "used. Save them again with overwrite=True, or remove the stray shards."
            )
        return files
    if path.suffix != ".safetensors":
        raise ValueError(
            "Weights must be a .safetensors file, a safetensors index or a directory. "
            f"Received: {str(path)!r}"
        )
    return [path]


def _open_error(file: Path, error: Exception) -> WeightsFileError:
    size = file.stat().st_size if file.exists() else 0
    what = "is empty (0 bytes)" if size == 0 else f"({size} bytes) is not a readable safetensors file"
    return WeightsFileError(
        f"{str(file)!r} {what}: {error}. It may be truncated or corrupt (an interrupted save or "
        "download?); save or download it again."
    )


def _read_file(file: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    try:
        with safe_open(str(file), framework="numpy") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}, dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as error:
        raise _open_error(file, error) from None


def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays stored at ``path`` (single file or sharded), by key.

    Raises :class:`WeightsFileError` for an empty, truncated or corrupt file, and for shards
    that disagree with their index (keys, or a ``save_id`` of another save).

    Example:
        >>> read_weights("weights/cnn.fmnist/model.safetensors")["conv1/kernel"].shape
        (7, 7, 1, 64)
    """
    path = Path(path).expanduser()
    files = weight_files(path)
    index_path = path / INDEX_NAME if path.is_dir() else path
    if not path.exists() and path.suffix == ".safetensors":
        index_path = _index_path(path)
    if not (index_path.name.endswith(".index.json") and index_path.is_file()):
        return _read_file(files[0])[0]
    weight_map = read_index(index_path)
    raw = json.loads(index_path.read_text())
    index_id = (raw.get("metadata") or {}).get("save_id") if isinstance(raw.get("metadata"), dict) else None
    arrays: dict[str, np.ndarray] = {}
    for file in files:
        shard, metadata = _read_file(file)
        expected = {key for key, name in weight_map.items() if name == file.name}
        shard_id = metadata.get("save_id")
        if index_id and shard_id and shard_id != index_id:
            raise WeightsFileError(
                f"Shard {file.name!r} was written by another save (save_id {shard_id}) than the index "
                f"{index_path.name!r} (save_id {index_id}): an interrupted or mixed save. The weights "
                "were not used; save them again with overwrite=True."
            )
        if set(shard) != expected:
            raise WeightsFileError(
                f"Shard {file.name!r} does not hold what the index {index_path.name!r} says: "
                f"keys not in the index {sorted(set(shard) - expected)[:10]}, keys missing "
                f"{sorted(expected - set(shard))[:10]}. The weights were not used."
            )
        arrays.update(shard)
    return arrays


def _is_float(dtype: object) -> bool:
    name = keras.backend.standardize_dtype(dtype) if not isinstance(dtype, np.dtype) else str(dtype)
    return "float" in name


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
    keeps its fresh initialisation. Keys under ``head`` layers the model does not have at all
    (a feature extractor built with ``include_top=False``) are left unused, silently; ``head``
    layers the file does not have at all (weights saved from a feature extractor) keep their
    fresh initialisation, with a warning.
    ``strict=False`` also tolerates missing/unexpected keys.

    Example:
        >>> import tempfile, zoo
        >>> path = Path(tempfile.mkdtemp()) / "model.safetensors"
        >>> _ = save_weights(zoo.create("cnn"), path)
        >>> load_weights(zoo.create("cnn"), path).loaded[:1]
        ['conv1/kernel']
    """
    head = head if isinstance(head, str) else tuple(head)
    if isinstance(head, str) or not all(isinstance(layer, str) for layer in head):
        raise TypeError(f"`head` is a sequence of layer names, e.g. head=('predictions',). Received: head={head!r}")
    arrays = read_weights(path)
    state = model_state(model)
    missing = sorted(set(state) - set(arrays))
    unexpected = sorted(set(arrays) - set(state))
    # A model without its head (include_top=False) uses every weight of the file but the head's.
    absent = tuple(name for name in head if not any(_under(key, (name,)) for key in state))
    skipped_head = [k for k in unexpected if _under(k, absent)]
    unexpected = [k for k in unexpected if k not in skipped_head]
    # Weights without their head (saved from include_top=False) load into a model with one: the head stays fresh.
    headless = tuple(name for name in head if not any(_under(key, (name,)) for key in arrays))
    fresh_head = [k for k in missing if _under(k, headless)]
    missing = [k for k in missing if k not in fresh_head]
    mis_shaped = sorted(
        key for key in set(state) & set(arrays) if tuple(state[key].shape) != arrays[key].shape
    )
    reinitialized = [k for k in mis_shaped if _under(k, head)]
    bad_shapes = [k for k in mis_shaped if k not in reinitialized]
    mistyped = sorted(
        key for key in set(state) & set(arrays)
        if key not in mis_shaped and _is_float(state[key].dtype) != _is_float(arrays[key].dtype)
    )
    problems = bad_shapes + mistyped + ((missing + unexpected) if strict else [])
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
        for key in mistyped[:20]:
            lines.append(
                f"Dtype mismatch for {key!r}: model {keras.backend.standardize_dtype(state[key].dtype)}, "
                f"file {arrays[key].dtype}"
            )
        if bad_shapes:
            lines.append(
                "The weights were saved from a model with another configuration (input_shape: "
                "channels or size, num_classes, ...): build the model with the configuration the "
                "weights were saved with."
            )
        raise WeightsMismatchError("\n".join(lines))
    report = LoadReport(reinitialized=reinitialized + fresh_head, skipped_head=skipped_head)
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
    if fresh_head:
        warnings.warn(
            f"The weights at {str(path)!r} have no head (saved from a feature extractor, include_top=False): "
            f"the head of {model.name!r} ({sorted({k.split('/')[0] for k in fresh_head})}) keeps its fresh "
            f"initialisation. Fresh keys: {fresh_head}",
            stacklevel=2,
        )
    return report

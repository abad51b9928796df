"""The zoo folder format: what a model folder holds, and how it is written and read back.

A zoo folder (a run folder, a release in ``weights/``, a Hub repo snapshot) holds:

* ``config.json``: how to build the model, nothing else (keras-hub's ``config.json``):
  ``{"format": "keras-zoo", "format_version": 2, "architecture": "cnn", "tag": "fmnist",
  "config": {...builder arguments...}}``. A model that no registered builder made carries
  ``"architecture": null`` and its Keras serialization as ``"keras_config"`` instead.
* ``metadata.json``: what is known about the weights (keras-hub's ``metadata.json``): versions,
  input spec, metrics, recipe, training facts, label names, license and, under ``"weights"``,
  the storage dtype and the sha256 and size of every weight file.
* the safetensors weights (``zoo.weights``: one file, or shards with an index);
* optionally ``README.md`` (the model card) and its images.

Folders of format version 1 (one ``config.json`` holding all of the above) are read as well;
folders are always written in the current version. Writes go to a temporary name in the same
folder and are renamed into place, so a reader never sees half a file. Nothing here talks to a
Hub or knows an architecture.

Example:
    >>> folder = read_folder("weights/cnn.fmnist")        # doctest: +SKIP
    >>> folder.architecture, folder.tag, folder.config["dropout"]  # doctest: +SKIP
    ('cnn', 'fmnist', 0.25)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import keras

from zoo import weights as weights_io
from zoo.atomic import atomic_write_text
from zoo._version import __version__
from zoo.registry import FileRecord

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "IntegrityError",
    "METADATA_NAME",
    "UnsafeConfigError",
    "WEIGHT_PATTERNS",
    "ZooFolder",
    "atomic_write_text",
    "check_keras_config",
    "file_records",
    "read_folder",
    "save_folder",
    "sha256_of",
    "verify_files",
    "write_folder_files",
]

CONFIG_NAME = "config.json"
METADATA_NAME = "metadata.json"
CARD_NAME = "README.md"
FORMAT = "keras-zoo"
FORMAT_VERSION = 2
#: The files that make a model: what a pull downloads and what a release records.
WEIGHT_PATTERNS = ("model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json")
MODEL_PATTERNS = (CONFIG_NAME, METADATA_NAME, *WEIGHT_PATTERNS)
#: Keys of a version-1 config.json that describe how to build the model (the rest is metadata).
_V1_BUILD_KEYS = ("format", "format_version", "architecture", "tag", "config", "keras_config")


class IntegrityError(RuntimeError):
    """A file does not match its recorded sha256 or size, or a recorded file is missing."""


class UnsafeConfigError(ValueError):
    """A ``keras_config`` that would run code or import modules outside ``keras`` and ``zoo``."""


#: Modules a ``keras_config`` may name: Keras' and zoo's own (``safe_mode=True`` does the rest).
SAFE_MODULES = ("keras", "zoo")
#: Keras classes that carry Python code, refused in any zoo folder.
CODE_CLASSES = ("Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ZooFolder:
    """A zoo folder read back: where it is, how to build its model, what is known about it.

    Example:
        >>> ZooFolder(Path("."), {"architecture": "cnn", "tag": None, "config": {}}, {}).architecture
        'cnn'
    """

    path: Path
    build: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        """The registered architecture that builds the model, or ``None`` (Keras config only)."""
        return self.build.get("architecture")

    @property
    def tag(self) -> str | None:
        """The weight tag the model was created from, if any."""
        return self.build.get("tag")

    @property
    def config(self) -> dict[str, Any] | None:
        """The builder's keyword arguments (``None`` for a model without a registered builder)."""
        config = self.build.get("config")
        return None if config is None else dict(config)

    @property
    def keras_config(self) -> Mapping[str, Any] | None:
        """The Keras serialization of a model that no registered builder made."""
        return self.build.get("keras_config")

    @property
    def fields(self) -> dict[str, Any]:
        """Metadata and build record in one mapping (what model cards are rendered from)."""
        return {**self.metadata, **self.build}

    @property
    def records(self) -> tuple[FileRecord, ...]:
        """The recorded sha256 and size of every weight file."""
        files = (self.metadata.get("weights") or {}).get("files") or {}
        return tuple(FileRecord(name=n, sha256=f["sha256"], size=f["size"]) for n, f in sorted(files.items()))


def sha256_of(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as handle:
        ...     _ = handle.write(b"abc"); handle.flush()
        ...     sha256_of(handle.name)[:16]
        'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_records(folder: str | os.PathLike, names: Iterable[str]) -> tuple[FileRecord, ...]:
    """Sha256 and size of each named file in ``folder``, sorted by name.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.txt").write_text("a")
        >>> file_records(folder, ["a.txt"])[0].size
        1
    """
    folder = Path(folder)
    return tuple(
        FileRecord(name=name, sha256=sha256_of(folder / name), size=(folder / name).stat().st_size)
        for name in sorted(names)
    )


def evict(path: Path) -> None:
    """Remove a file whose bytes are bad and, for a Hugging Face cache symlink, the blob it points to.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "bad.safetensors"
        >>> _ = path.write_bytes(b"corrupt")
        >>> evict(path); path.exists()
        False
    """
    if path.is_symlink():
        blob, stored = cache_blob(path), path.resolve()
        path.unlink()
        # The repo's blob, and the file it links to in huggingface_hub's shared store of Xet files
        # when it is such a link: those bytes are the bad ones (a new download would link them again).
        for item in (blob, stored):
            if item.is_symlink() or item.exists():
                item.unlink()
    elif path.exists():
        path.unlink()


def cache_blob(link: Path) -> Path:
    """The blob a Hugging Face cache snapshot link points to, not followed further: ``blobs/<etag>``,
    named after the ETag the Hub sent. (huggingface_hub may make that blob itself a link into its
    cache-wide store of Xet files, named after their Xet hash: ``resolve()`` would reach that name.)

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "blobs").mkdir(); _ = (root / "blobs" / "abc").write_bytes(b"x")
        >>> (root / "model.safetensors").symlink_to("blobs/abc")
        >>> cache_blob(root / "model.safetensors").name
        'abc'
    """
    target = Path(os.readlink(link))
    return target if target.is_absolute() else link.parent / target


def verify_files(folder: str | os.PathLike, records: Iterable[FileRecord], *, remove_bad: bool = False) -> None:
    """Check every recorded file in ``folder`` against its size and sha256.

    With ``remove_bad=True`` (files of a download cache) a bad copy is deleted, so that the next
    download fetches it again instead of trusting it.

    Example:
        >>> verify_files(".", [])          # nothing recorded, nothing to check
    """
    folder = Path(folder)
    bad = []
    for record in records:
        _check_file_name(record.name, "a file record")
        path = folder / record.name
        if not path.exists():
            raise IntegrityError(f"Missing file {record.name!r} in {str(folder)!r} (recorded in the metadata).")
        size = path.stat().st_size
        actual = sha256_of(path) if size == record.size else None
        if actual != record.sha256:
            found = f"sha256 {actual}" if actual else f"{size} bytes instead of {record.size}"
            bad.append(f"{record.name!r}: expected sha256 {record.sha256}, got {found}")
            if remove_bad:
                evict(path)
    if bad:
        raise IntegrityError(
            f"Integrity check failed for {'; '.join(bad)} in {str(folder)!r}. The files were not used"
            + (" and were removed from the cache; retry to download them again." if remove_bad else ".")
        )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{str(path)!r} must hold a JSON object. Received: {type(data).__name__}")
    return data


def read_folder(path: str | os.PathLike) -> ZooFolder:
    """Read ``config.json`` (and ``metadata.json``) of a zoo folder, of any format version.

    Raises ``FileNotFoundError`` when there is no ``config.json`` and ``ValueError`` when it is
    not a zoo config.

    Example:
        >>> read_folder("weights/cnn.fmnist").architecture  # doctest: +SKIP
        'cnn'
    """
    path = Path(path).expanduser()
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"No {CONFIG_NAME} in {str(path)!r}: not a zoo model folder.")
    config = _read_json(config_path)
    version = config.get("format_version", 1)
    if config.get("format", FORMAT) != FORMAT or not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{str(config_path)!r} is not a keras-zoo config this version reads (format "
            f"{FORMAT!r}, versions 1-{FORMAT_VERSION}). Received: format={config.get('format')!r}, "
            f"format_version={version!r}"
        )
    if version == 1:
        build = {key: config.get(key) for key in _V1_BUILD_KEYS}
        metadata = {key: value for key, value in config.items() if key not in _V1_BUILD_KEYS}
    else:
        metadata_path = path / METADATA_NAME
        build, metadata = config, (_read_json(metadata_path) if metadata_path.is_file() else {})
    _check_build(config_path, build)
    _check_metadata(path / (CONFIG_NAME if version == 1 else METADATA_NAME), metadata)
    paired = metadata.get("config_sha256") if version >= 2 else None
    if paired is not None and paired != sha256_of(config_path):
        raise IntegrityError(
            f"{str(path / METADATA_NAME)!r} was written with another {CONFIG_NAME} than the one in {str(path)!r} "
            f"(config_sha256 {paired}, the file's {sha256_of(config_path)}): the folder mixes two saves "
            "(one interrupted over another). Save the model again with overwrite=True."
        )
    return ZooFolder(path, build, metadata)


def _check_build(config_path: Path, build: Mapping[str, Any]) -> None:
    """Refuse a ``config.json`` whose build record has the wrong types or unsafe Keras config."""
    expected = {"architecture": str, "tag": str, "config": dict, "keras_config": dict}
    for key, kind in expected.items():
        value = build.get(key)
        if value is not None and not isinstance(value, kind):
            raise ValueError(
                f"{str(config_path)!r}: {key!r} must be a {kind.__name__} or null. "
                f"Received: {key}={value!r}"
            )
    if build.get("architecture") is None and build.get("keras_config") is not None:
        check_keras_config(build["keras_config"], source=str(config_path))


def _check_file_name(name: object, what: str) -> str:
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or Path(name).is_absolute():
        raise ValueError(
            f"{what} names {name!r}: only plain file names inside the model folder are accepted "
            "(no paths, no '..')."
        )
    return name


def _check_metadata(metadata_path: Path, metadata: Mapping[str, Any]) -> None:
    """Refuse weight records that are not ``{name: {"sha256": hex, "size": int}}``."""
    weights = metadata.get("weights")
    if weights is None:
        return
    files = weights.get("files") if isinstance(weights, dict) else None
    if files is None and isinstance(weights, dict):
        return
    if not isinstance(files, dict):
        raise ValueError(
            f"{str(metadata_path)!r}: 'weights.files' must map file names to their sha256 and size. "
            f"Received: weights={weights!r}"[:600]
        )
    for name, record in files.items():
        _check_file_name(name, f"{str(metadata_path)!r}: 'weights.files'")
        if not (
            isinstance(record, dict) and isinstance(record.get("sha256"), str) and _SHA256.fullmatch(record["sha256"])
            and isinstance(record.get("size"), int) and not isinstance(record["size"], bool) and record["size"] >= 0
        ):
            raise ValueError(
                f"{str(metadata_path)!r}: the record of {name!r} must be "
                '{"sha256": <64 hex digits>, "size": <bytes>}. ' f"Received: {record!r}"
            )


def check_keras_config(config: Any, source: str = "keras_config", modules: tuple[str, ...] = SAFE_MODULES) -> None:
    """Refuse a Keras serialization that would run code or import modules outside Keras and zoo.

    Keras' ``safe_mode=True`` refuses Python lambdas but still imports any module a config
    names; here every object (layer, loss, function) must come from the packages ``modules``
    (``keras`` and ``zoo``; a ``.keras`` file also allows installed zoo plugins) or be registered
    by them, and no layer may carry code (``Lambda``, wrapped foreign modules).

    Example:
        >>> check_keras_config({"module": "keras.layers", "class_name": "Dense", "config": {}})
        >>> check_keras_config({"module": "os", "class_name": "system", "config": {}})
        Traceback (most recent call last):
        ...
        zoo.format.UnsafeConfigError: keras_config names module 'os' (class 'system'): only classes from keras and zoo are loaded from a zoo folder.
    """
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        stack.extend(item.values())
        if "class_name" not in item:
            continue
        module, class_name = item.get("module"), item.get("class_name")
        registered = item.get("registered_name")
        if class_name == "function" and module == "builtins" and isinstance(item.get("config"), str):
            continue  # a Keras function by name (a loss, an activation): Keras looks it up in its own modules only
        unnamed_function = class_name == "function" and module is None
        if class_name in CODE_CLASSES or class_name == "__lambda__" or unnamed_function or "__lambda__" in item:
            raise UnsafeConfigError(
                f"{source} holds a {class_name!r} object, which carries Python code: it is never "
                "loaded from a zoo folder. Register the architecture with @zoo.register_model instead."
            )
        if module is not None and not _safe_module(module, modules):
            raise UnsafeConfigError(
                f"{source} names module {module!r} (class {class_name!r}): only classes from "
                f"{' and '.join(modules)} are loaded from a zoo folder."
            )
        if isinstance(registered, str) and ">" in registered and registered.split(">")[0] not in modules:
            raise UnsafeConfigError(
                f"{source} names the registered class {registered!r}: only classes registered by "
                f"{' and '.join(modules)} are loaded from a zoo folder."
            )


def _safe_module(module: object, modules: tuple[str, ...] = SAFE_MODULES) -> bool:
    return isinstance(module, str) and any(module == m or module.startswith(m + ".") for m in modules)


def build_record(architecture: str | None, tag: str | None, config: Mapping[str, Any] | None,
                 keras_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``config.json`` (current format version).

    Example:
        >>> build_record("cnn", "fmnist", {"dropout": 0.25})["format_version"]
        2
    """
    record: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "architecture": architecture, "tag": tag,
        "config": None if config is None else _jsonable(dict(config)),
    }
    if architecture is None:
        record["keras_config"] = keras_config
    return record


def write_folder_files(folder: str | os.PathLike, build: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
    """Write ``metadata.json`` then ``config.json`` atomically (config last: a folder with a
    config.json is complete). ``metadata.json`` records the sha256 of the ``config.json`` it goes
    with (``config_sha256``): a save killed between the two, over an earlier save, leaves a pair
    that :func:`read_folder` refuses instead of a model built from the earlier config.

    Example:
        >>> write_folder_files("runs/x", build_record("cnn", None, {}), {"metrics": {}})  # doctest: +SKIP
    """
    folder = Path(folder)
    config_text = json.dumps(_jsonable(dict(build)), indent=2) + "\n"
    metadata = {**dict(metadata), "config_sha256": hashlib.sha256(config_text.encode()).hexdigest()}
    atomic_write_text(folder / METADATA_NAME, json.dumps(_jsonable(metadata), indent=2, default=str) + "\n")
    atomic_write_text(folder / CONFIG_NAME, config_text)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def save_folder(
    model: keras.Model,
    folder: str | os.PathLike,
    *,
    metadata: Mapping[str, Any] | None = None,
    storage_dtype: str = "float32",
    max_shard_size: int = weights_io.DEFAULT_MAX_SHARD_SIZE,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as a zoo folder: safetensors weights, ``metadata.json``, ``config.json``.

    A model made by ``zoo.create``/``zoo.load`` records its architecture, tag and builder
    arguments; any other Keras model is recorded by its Keras serialization. ``metadata`` (metrics,
    recipe, ...) goes to ``metadata.json`` with the versions, the input spec and the weight hashes.
    An existing zoo folder is refused unless ``overwrite=True``.

    Example:
        >>> save_folder(zoo.create("cnn"), "exported/cnn", metadata={"metrics": {}})  # doctest: +SKIP
        PosixPath('exported/cnn')
    """
    folder = Path(folder).expanduser()  # as zoo.load and save_weights read it
    if (folder / CONFIG_NAME).exists() and not overwrite:
        raise FileExistsError(f"{str(folder / CONFIG_NAME)!r} exists; pass overwrite=True to replace it.")
    zoo_config = getattr(model, "zoo_config", None) or {}
    architecture = zoo_config.get("architecture")
    build = build_record(
        architecture, zoo_config.get("tag"), zoo_config.get("config"),
        None if architecture else keras.saving.serialize_keras_object(model),
    )
    try:  # before anything is written: a failed save leaves the folder as it was
        json.dumps(build)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"The model's build record cannot be written as {CONFIG_NAME} ({error}); builder arguments must be "
            f"JSON values (a dtype policy by its name). Received: config={build['config']!r}"
        ) from None
    folder.mkdir(parents=True, exist_ok=True)
    written = weights_io.save_weights(
        model, folder, storage_dtype=storage_dtype, max_shard_size=max_shard_size, overwrite=overwrite
    )
    records = file_records(folder, [p.name for p in written])
    facts = {
        "keras_version": keras.__version__,
        "zoo_version": __version__,
        "backend": keras.backend.backend(),
        "input_spec": {"shape": [None, *model.inputs[0].shape[1:]], "dtype": "float32"},
        **dict(metadata or {}),
        "weights": {
            "storage_dtype": storage_dtype,
            "files": {f.name: {"sha256": f.sha256, "size": f.size} for f in records},
        },
    }
    write_folder_files(folder, build, facts)
    return folder

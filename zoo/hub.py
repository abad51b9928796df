"""Push to and pull from a Hugging Face Hub (or a local folder with the same layout).

A zoo repo holds ``config.json`` (the Keras-serialized architecture plus zoo metadata), the
safetensors weights (sharded with an index above a size limit) and ``README.md`` (the model
card). Downloads go through ``huggingface_hub.snapshot_download``, so the Hugging Face cache,
its file locks, resumable downloads, ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` all apply. Every
weight file is checked against a recorded sha256 before use; a bad copy is deleted from the
cache so the next call downloads it again. Nothing here knows a particular architecture.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import keras

from zoo import weights as weights_io
from zoo.api import create
from zoo.registry import FileRecord, Release, get_spec

CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
FORMAT_VERSION = 1
#: Files a zoo repo may contain; only these are downloaded.
REPO_PATTERNS = ["config.json", "model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json"]
_PUSHED_PATTERNS = REPO_PATTERNS + ["README.md", "*.png", "metrics.json"]


class HubError(RuntimeError):
    """A Hub operation failed; the message says what was tried and what to do."""


class IntegrityError(HubError):
    """A downloaded or local file does not match its recorded sha256."""


def sha256_of(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks.

    Example:
        >>> sha256_of("weights/cnn.fmnist/model.safetensors")[:8]
        '3f1c9a0b'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_records(folder: Path, names: Iterable[str]) -> tuple[FileRecord, ...]:
    """Sha256 and size of each named file in ``folder``."""
    return tuple(
        FileRecord(name=name, sha256=sha256_of(folder / name), size=(folder / name).stat().st_size)
        for name in sorted(names)
    )


def _evict(path: Path) -> None:
    """Remove a cached file and, for a Hugging Face cache symlink, the blob it points to."""
    if path.is_symlink():
        blob = path.resolve()
        path.unlink()
        if blob.exists():
            blob.unlink()
    elif path.exists():
        path.unlink()


def verify_files(folder: Path, records: Iterable[FileRecord], *, evict: bool = False) -> None:
    """Check every recorded file in ``folder`` against its sha256 and size.

    With ``evict=True`` (files from the Hub cache) a bad copy is deleted so that the next call
    downloads it again instead of trusting it.
    """
    bad = []
    for record in records:
        path = folder / record.name
        if not path.exists():
            raise IntegrityError(f"Missing file {record.name!r} in {str(folder)!r}.")
        actual = sha256_of(path)
        if actual != record.sha256:
            bad.append(f"{record.name!r}: expected {record.sha256}, got {actual}")
            if evict:
                _evict(path)
    if bad:
        raise IntegrityError(
            f"sha256 mismatch for {'; '.join(bad)} in {str(folder)!r}. The files were not used"
            + (" and were removed from the cache; retry to download them again." if evict else ".")
        )


def _weight_records(config: Mapping[str, Any]) -> tuple[FileRecord, ...]:
    files = config.get("weights", {}).get("files", {})
    return tuple(FileRecord(name=n, sha256=f["sha256"], size=f["size"]) for n, f in files.items())


def parse_handle(handle: str) -> tuple[str, str | None]:
    """Split ``"hf://namespace/name@revision"`` into ``("namespace/name", "revision")``.

    Example:
        >>> parse_handle("hf://keras-zoo/cnn.fmnist@v1")
        ('keras-zoo/cnn.fmnist', 'v1')
    """
    body = handle[len("hf://"):] if handle.startswith("hf://") else handle
    repo_id, _, revision = body.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(
            "A Hub handle looks like 'hf://namespace/name' or 'hf://namespace/name@revision'. "
            f"Received: {handle!r}"
        )
    return repo_id, revision or None


def _explain(error: Exception, repo_id: str, revision: str | None) -> HubError:
    from huggingface_hub import constants, errors

    where = f"{repo_id!r} at revision {revision or 'main'!r}"
    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    if isinstance(error, errors.RevisionNotFoundError):
        return HubError(f"Revision not found: {where} on {endpoint}. Check the branch, tag or commit sha.")
    if isinstance(error, errors.RepositoryNotFoundError):
        return HubError(
            f"Repository not found: {where} on {endpoint}. Check the name, or pass a token "
            "(HF_TOKEN or token=) if the repo is private."
        )
    if isinstance(error, errors.LocalEntryNotFoundError):
        return HubError(
            f"Could not get {where}: the Hub at {endpoint} was not reachable (or HF_HUB_OFFLINE=1 "
            "is set) and the Hugging Face cache has no copy. Connect to the network, point "
            "HF_ENDPOINT at a reachable mirror, or load from a local folder or file path instead."
        )
    if isinstance(error, errors.EntryNotFoundError):
        return HubError(f"File not found in {where} on {endpoint}: {error}")
    if isinstance(error, errors.HfHubHTTPError):
        return HubError(f"The Hub at {endpoint} refused a request for {where}: {error}")
    return HubError(f"Could not download {where} from {endpoint}: {error!r}")


def pull(
    repo_id: str,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    release: Release | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> Path:
    """Download a zoo repo's config and weights into the HF cache, verify them, return the folder.

    Hashes come from ``release`` (the registry) when given, else from the repo's
    ``config.json``. A local folder path is verified and returned as is.

    Example:
        >>> folder = pull("keras-zoo/cnn.fmnist", revision="v1")
    """
    from huggingface_hub import snapshot_download

    endpoint = endpoint or os.environ.get("HF_ENDPOINT")
    if Path(repo_id).is_dir():
        folder = Path(repo_id)
        records = release.files if release else _weight_records(read_config(folder))
        verify_files(folder, records)
        return folder
    try:
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=cache_dir,
                allow_patterns=REPO_PATTERNS,
                token=token,
                endpoint=endpoint,
                library_name="keras-zoo",
            )
        )
    except Exception as error:  # huggingface_hub / HTTP errors become one clear error
        raise _explain(error, repo_id, revision) from error
    if release is not None:
        records = release.files
    else:
        try:
            records = _weight_records(read_config(folder))
        except ValueError as error:  # undecodable JSON: a damaged download, trust nothing
            for path in folder.iterdir():
                _evict(path)
            raise IntegrityError(
                f"{CONFIG_NAME} of {repo_id!r} is not valid JSON ({error}); it was removed from "
                "the cache, retry to download it again."
            ) from error
    records = tuple(r for r in records if any(fnmatch.fnmatch(r.name, p) for p in REPO_PATTERNS))
    verify_files(folder, records, evict=True)
    return folder


def read_config(folder: Path) -> dict[str, Any]:
    """The ``config.json`` of a zoo repo folder."""
    path = folder / CONFIG_NAME
    if not path.exists():
        raise FileNotFoundError(f"No {CONFIG_NAME} in {str(folder)!r}: not a zoo model folder.")
    return json.loads(path.read_text())


def build_from_config(config: Mapping[str, Any], **overrides: Any) -> keras.Model:
    """Build the architecture that ``config.json`` describes, without running foreign code.

    A registered architecture is rebuilt by its builder; otherwise the Keras-serialized
    architecture is deserialized with ``safe_mode=True`` (registered classes only).
    """
    arch = config.get("architecture")
    builder_config = config.get("config")
    if arch and builder_config is not None:
        return create(arch, **{**builder_config, **overrides})
    if overrides:
        raise ValueError(
            "Overrides need a registered architecture in config.json. "
            f"Received: overrides={overrides!r}"
        )
    return keras.saving.deserialize_keras_object(config["keras_config"], safe_mode=True)


def load_folder(folder: Path, *, verify: bool = True, **overrides: Any) -> keras.Model:
    """Build and load a model from a folder with ``config.json`` and safetensors weights.

    Example:
        >>> model = load_folder(Path("runs/cnn-001"))
    """
    config = read_config(folder)
    if verify:
        verify_files(folder, _weight_records(config))
    model = build_from_config(config, **overrides)
    head = get_spec(config["architecture"]).head if config.get("architecture") else ()
    weights_io.load_weights(model, folder, head=head)
    return model


def load_repo(
    handle: str, cache_dir: str | os.PathLike | None = None, token: str | None = None, **overrides: Any
) -> keras.Model:
    """Load ``"hf://namespace/name@revision"``: pull, verify, build, load weights.

    Example:
        >>> model = load_repo("hf://keras-zoo/cnn.fmnist@main")
    """
    repo_id, revision = parse_handle(handle)
    folder = pull(repo_id, revision=revision, cache_dir=cache_dir, token=token)
    return load_folder(folder, verify=False, **overrides)


def model_config(
    model: keras.Model,
    files: Iterable[FileRecord],
    *,
    metadata: Mapping[str, Any] | None = None,
    storage_dtype: str = "float32",
) -> dict[str, Any]:
    """The ``config.json`` of ``model``: Keras architecture, zoo metadata and weight hashes."""
    from zoo import __version__

    zoo_config = getattr(model, "zoo_config", None) or {}
    return {
        "format": "keras-zoo",
        "format_version": FORMAT_VERSION,
        "architecture": zoo_config.get("architecture"),
        "tag": zoo_config.get("tag"),
        "config": zoo_config.get("config"),
        "keras_config": keras.saving.serialize_keras_object(model),
        "keras_version": keras.__version__,
        "zoo_version": __version__,
        "backend": keras.backend.backend(),
        "input_spec": {"shape": [None, *model.inputs[0].shape[1:]], "dtype": "float32"},
        **dict(metadata or {}),
        "weights": {
            "storage_dtype": storage_dtype,
            "files": {f.name: {"sha256": f.sha256, "size": f.size} for f in files},
        },
    }


def export_folder(
    model: keras.Model,
    folder: str | os.PathLike,
    *,
    metadata: Mapping[str, Any] | None = None,
    storage_dtype: str = "float32",
    max_shard_size: int = weights_io.DEFAULT_MAX_SHARD_SIZE,
    overwrite: bool = False,
) -> Path:
    """Write ``config.json`` and safetensors weights of ``model`` into ``folder``.

    Example:
        >>> export_folder(model, "exported/cnn", metadata={"metrics": {"accuracy": 0.91}})
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / CONFIG_NAME).exists() and not overwrite:
        raise FileExistsError(f"{str(folder / CONFIG_NAME)!r} exists; pass overwrite=True to replace it.")
    written = weights_io.save_weights(
        model, folder, storage_dtype=storage_dtype, max_shard_size=max_shard_size, overwrite=overwrite
    )
    records = file_records(folder, [p.name for p in written])
    config = model_config(model, records, metadata=metadata, storage_dtype=storage_dtype)
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=False, default=str))
    return folder


def _card_exists(api: Any, repo_id: str, revision: str) -> bool:
    from huggingface_hub import errors

    try:
        return api.file_exists(repo_id, CARD_NAME, revision=revision)
    except (errors.RevisionNotFoundError, errors.RepositoryNotFoundError):
        return False


def push(
    model_or_folder: keras.Model | str | os.PathLike,
    repo_id: str,
    *,
    revision: str = "main",
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    max_shard_size: int = weights_io.DEFAULT_MAX_SHARD_SIZE,
    replace_card: bool = False,
    endpoint: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Upload a model (or a run / release folder) to ``repo_id`` in one commit; return its sha.

    The commit holds ``config.json``, the safetensors weights and a ``README.md`` model card
    (with the images it references). An existing card on the Hub is kept unless
    ``replace_card=True``. The repo is created when it does not exist.

    Example:
        >>> sha = push("runs/cnn-001", "me/cnn.fmnist", commit_message="First release")
    """
    from huggingface_hub import HfApi

    endpoint = endpoint or os.environ.get("HF_ENDPOINT")
    api = HfApi(endpoint=endpoint, token=token, library_name="keras-zoo")
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as staging_name:
        staging = Path(staging_name)
        if isinstance(model_or_folder, keras.Model):
            export_folder(model_or_folder, staging, metadata=metadata, max_shard_size=max_shard_size)
            _write_card(staging, repo_id)
        else:
            source = Path(model_or_folder)
            read_config(source)  # fails early on a folder that is not a zoo model
            for pattern in _PUSHED_PATTERNS:
                for path in source.glob(pattern):
                    shutil.copy2(path, staging / path.name)
            if not (staging / CARD_NAME).exists():
                _write_card(staging, repo_id)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            ignore = None
            if not replace_card and _card_exists(api, repo_id, revision):
                ignore = [CARD_NAME]
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=staging,
                revision=revision,
                commit_message=commit_message or f"Upload {read_config(staging).get('architecture') or 'model'} with keras-zoo",
                create_pr=create_pr,
                ignore_patterns=ignore,
            )
        except Exception as error:
            raise _explain_push(error, repo_id) from error
    return info.oid


def _explain_push(error: Exception, repo_id: str) -> HubError:
    from huggingface_hub import errors

    endpoint = os.environ.get("HF_ENDPOINT") or "the Hub"
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status in (401, 403) or isinstance(error, errors.LocalTokenNotFoundError):
        return HubError(
            f"The Hub at {endpoint} refused to let you write to {repo_id!r} (HTTP {status}). "
            "Log in with `hf auth login`, set HF_TOKEN, or pass token=... with write access."
        )
    return HubError(f"Push of {repo_id!r} to {endpoint} failed: {error}")


def _write_card(folder: Path, repo_id: str) -> None:
    from zoo.cards import render_card

    config = read_config(folder)
    metrics = config.get("metrics") or {}
    (folder / CARD_NAME).write_text(render_card(config, repo_id=repo_id, metrics=metrics, folder=folder))

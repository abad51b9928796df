"""Push a zoo folder to a Hugging Face Hub and pull one back: transport, hashes, errors.

A zoo repo is a zoo folder (``zoo.format``: ``config.json``, ``metadata.json``, safetensors
weights) plus ``README.md``, the model card. Downloads go through
``huggingface_hub.snapshot_download``, so the Hugging Face cache, its file locks, resumable
downloads, ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` all apply. Every weight file is checked
against a recorded sha256 before use; a bad copy is deleted from the cache so the next call
downloads it again. Nothing here builds a model or knows an architecture: ``zoo.api`` does.

Example:
    >>> parse_handle("hf://keras-zoo/cnn.fmnist@v1")
    ('keras-zoo/cnn.fmnist', 'v1')
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import keras

from zoo import format as zoo_format
from zoo.cards import render_card
from zoo.format import CARD_NAME, MODEL_PATTERNS, IntegrityError, read_folder, verify_files
from zoo.registry import FileRecord
from zoo.weights import DEFAULT_MAX_SHARD_SIZE

__all__ = ["HF_PREFIX", "HubError", "IntegrityError", "parse_handle", "pull", "push"]

HF_PREFIX = "hf://"
#: Files a zoo repo may contain; only the model's own are downloaded.
REPO_PATTERNS = list(MODEL_PATTERNS)
_PUSHED_PATTERNS = REPO_PATTERNS + [CARD_NAME, "*.png", "metrics.json"]


class HubError(RuntimeError):
    """A Hub operation failed; the message says what was tried and what to do."""


def parse_handle(handle: str) -> tuple[str, str | None]:
    """Split ``"hf://namespace/name@revision"`` into ``("namespace/name", "revision")``.

    Example:
        >>> parse_handle("hf://keras-zoo/cnn.fmnist@v1")
        ('keras-zoo/cnn.fmnist', 'v1')
        >>> parse_handle("keras-zoo/cnn.fmnist")
        ('keras-zoo/cnn.fmnist', None)
    """
    body = handle[len(HF_PREFIX):] if handle.startswith(HF_PREFIX) else handle
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
    records: Iterable[FileRecord] | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    weights: bool = True,
) -> Path:
    """Download a zoo repo's config, metadata and weights into the HF cache, verify, return the folder.

    Hashes come from ``records`` (a release record of the registry) when given, else from the
    repo's ``metadata.json`` (``config.json`` in format version 1). ``weights=False`` downloads
    only the config and metadata (an untrained model of that architecture needs no more). A
    local folder (a copy of a repo) is verified the same way and returned as it is.

    Example:
        >>> folder = pull("keras-zoo/cnn.fmnist", revision="v1")  # doctest: +SKIP
    """
    from huggingface_hub import snapshot_download

    if Path(repo_id).is_dir():  # a local copy of a repo: verified like a download
        folder = Path(repo_id)
        verify_files(folder, read_folder(folder).records if records is None else records)
        return folder
    endpoint = endpoint or os.environ.get("HF_ENDPOINT")
    patterns = REPO_PATTERNS if weights else [zoo_format.CONFIG_NAME, zoo_format.METADATA_NAME]
    try:
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=cache_dir,
                allow_patterns=patterns,
                token=token,
                endpoint=endpoint,
                library_name="keras-zoo",
            )
        )
    except Exception as error:  # huggingface_hub / HTTP errors become one clear error
        raise _explain(error, repo_id, revision) from error
    if records is None:
        try:
            records = read_folder(folder).records
        except ValueError as error:  # undecodable JSON: a damaged download, trust nothing
            for path in folder.iterdir():
                zoo_format.evict(path)
            raise IntegrityError(
                f"The config of {repo_id!r} could not be read ({error}); it was removed from "
                "the cache, retry to download it again."
            ) from error
    if weights:
        wanted = tuple(r for r in records if any(fnmatch.fnmatch(r.name, p) for p in REPO_PATTERNS))
        verify_files(folder, wanted, remove_bad=True)
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
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
    replace_card: bool = False,
    endpoint: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Upload a model (or a run / release folder) to ``repo_id`` in one commit; return its sha.

    The commit holds ``config.json``, ``metadata.json``, the safetensors weights and a
    ``README.md`` model card (with the images it references). An existing card on the Hub is
    kept unless ``replace_card=True``. The repo is created when it does not exist.

    Example:
        >>> sha = push("runs/cnn-001", "me/cnn.fmnist", commit_message="First release")  # doctest: +SKIP
    """
    from huggingface_hub import HfApi

    endpoint = endpoint or os.environ.get("HF_ENDPOINT")
    api = HfApi(endpoint=endpoint, token=token, library_name="keras-zoo")
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as staging_name:
        staging = Path(staging_name)
        if isinstance(model_or_folder, keras.Model):
            zoo_format.save_folder(model_or_folder, staging, metadata=metadata, max_shard_size=max_shard_size)
            _write_card(staging, repo_id)
        else:
            source = Path(model_or_folder)
            read_folder(source)  # fails early on a folder that is not a zoo model
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
                commit_message=commit_message or f"Upload {read_folder(staging).architecture or 'model'} with keras-zoo",
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
    fields = read_folder(folder).fields
    card = render_card(fields, repo_id=repo_id, metrics=fields.get("metrics") or {}, folder=folder)
    (folder / CARD_NAME).write_text(card)

"""Push a zoo folder to a Hugging Face Hub and pull one back: transport, hashes, errors.

A zoo repo is a zoo folder (``zoo.format``: ``config.json``, ``metadata.json``, safetensors
weights) plus ``README.md``, the model card. Nothing here builds a model or knows an
architecture: ``zoo.api`` does.

Pulls download exactly the files a zoo folder names (``config.json``, ``metadata.json``, then the
weight files its metadata -- or a release record -- lists), one ``hf_hub_download`` each, into
the Hugging Face cache, so its file locks, resumed downloads, ``HF_ENDPOINT`` and
``HF_HUB_OFFLINE`` apply. Every file is checked before use: against the ETag the Hub sent for
it (the name of its cache blob: sha256 for LFS files, git blob sha1 for small ones) and, for
weights, against the sha256 and size recorded in the metadata or the release record. A cached
copy that was changed after download is removed and downloaded again, once; bad bytes twice
raise ``IntegrityError``.

Transfers always take the HTTP / git-LFS path, also where ``hf_xet`` is installed (see
``docs/HUB.md``: one commit per push, the path the tests exercise; zoo checks every sha256
itself). Failures become a ``HubError`` subclass whose message says what was tried, with what,
and what to do. Requests the ``huggingface_hub`` client sends only once (metadata calls,
downloads answered 5xx, commits) are retried ``retries`` times on 408/429/5xx, timeouts and
dropped connections, honouring ``Retry-After``; the ones the client already retries with its own
backoff are not retried again.

Example:
    >>> parse_handle("hf://keras-zoo/cnn.fmnist@v1")
    ('keras-zoo/cnn.fmnist', 'v1')
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar

import keras

from zoo import format as zoo_format
from zoo._version import __version__
from zoo.cards import render_card
from zoo.plots import PLOT_NAMES
from zoo.format import (
    CARD_NAME, CONFIG_NAME, METADATA_NAME, MODEL_PATTERNS, WEIGHT_PATTERNS, IntegrityError, read_folder, verify_files,
)
from zoo.registry import FileRecord
from zoo.weights import DEFAULT_MAX_SHARD_SIZE

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_RETRY_WAIT",
    "HF_PREFIX",
    "HubAuthError",
    "HubConflictError",
    "HubError",
    "HubNotFoundError",
    "HubUnavailableError",
    "IntegrityError",
    "InvalidHandleError",
    "MAX_RETRY_AFTER",
    "check_repo_id",
    "check_revision",
    "parse_handle",
    "pull",
    "push",
    "push_target",
]

logger = logging.getLogger(__name__)

HF_PREFIX = "hf://"
#: Files a zoo repo may contain; only the model's own are downloaded.
REPO_PATTERNS = list(MODEL_PATTERNS)
_PUSHED_PATTERNS = REPO_PATTERNS + [CARD_NAME, "*.png", "metrics.json"]

#: Default number of retries of a request the ``huggingface_hub`` client sends only once.
DEFAULT_RETRIES = 2
#: Seconds before the first retry (doubled for each next one) when the Hub names no Retry-After.
DEFAULT_RETRY_WAIT = 1.0
#: A Retry-After longer than this many seconds is not waited for: the error says so instead.
MAX_RETRY_AFTER = 60.0

_RETRY_STATUS = (408, 429, 500, 502, 503, 504)
_NAME = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
_REPO_ID_RE = re.compile(rf"{_NAME}/{_NAME}")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_REVISION_BAD_CHARS = set(" \t\r\n\\~^:?*[") | {chr(c) for c in range(32)} | {chr(127)}
_GIT_SHA1_MAX_SIZE = 64 * 1024 * 1024  # ETags of small (non-LFS) files are git blob sha1s


class HubError(RuntimeError):
    """A Hub operation failed; the message says what was tried and what to do."""


class InvalidHandleError(HubError, ValueError):
    """A repo id, ``hf://`` handle or revision that cannot name a Hub repo (nothing was sent)."""


class HubNotFoundError(HubError):
    """The repo, revision (branch, tag, commit) or file does not exist, or is not visible."""


class HubAuthError(HubError):
    """No token, a rejected token (401), or a token without the right (403)."""


class HubUnavailableError(HubError):
    """Not reachable, offline without a cached copy, rate limited (429), server errors (5xx) or
    timeouts that outlasted the retries."""


class HubConflictError(HubError):
    """A push lost a race: the branch moved while it uploaded (HTTP 412); nothing was committed."""


# -- names ------------------------------------------------------------------------------------
def push_target(repo: Any) -> str:
    """The repo id of a push target given as ``namespace/name`` or ``hf://namespace/name``, checked.

    A handle with a revision (``hf://me/cnn@abc123``, as a push prints it) is refused: a push
    goes onto a branch, given apart (``revision=``, ``--revision``).

    Example:
        >>> push_target("hf://me/cnn.fmnist"), push_target("me/cnn.fmnist")
        ('me/cnn.fmnist', 'me/cnn.fmnist')
    """
    if not (isinstance(repo, str) and repo.startswith(HF_PREFIX)):
        return check_repo_id(repo)
    repo_id, revision = parse_handle(repo)
    if revision is not None:
        raise InvalidHandleError(
            f"A push goes to a repo, onto a branch given apart (revision=..., --revision): a handle with "
            f"'@{revision}' names a commit to load, not where to push. Push to {HF_PREFIX}{repo_id}, with "
            f"revision= / --revision for a branch other than main. Received: {repo!r}"
        )
    return repo_id


def check_repo_id(repo_id: Any) -> str:
    """Return ``repo_id`` when it is a valid ``namespace/name`` Hub id, else raise.

    Each part is letters, digits, ``-``, ``_`` and ``.``, neither starting nor ending with
    ``-`` or ``.``, without ``..`` or ``--``, the name not ending in ``.git``; 96 characters at most (the Hub's rules). Nothing
    that could climb out of a folder (``..``, absolute paths) or address a sub-path passes.

    Example:
        >>> check_repo_id("keras-zoo/cnn.fmnist")
        'keras-zoo/cnn.fmnist'
        >>> check_repo_id("../etc")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        zoo.hub.InvalidHandleError: A Hub repo id is 'namespace/name'... Received: repo_id='../etc'
    """
    if (
        not isinstance(repo_id, str)
        or len(repo_id) > 96
        or not _REPO_ID_RE.fullmatch(repo_id)
        or ".." in repo_id
        or "--" in repo_id
        or repo_id.endswith(".git")  # huggingface_hub refuses it too (after zoo's checks: a HubError)
    ):
        raise InvalidHandleError(
            "A Hub repo id is 'namespace/name': each part letters, digits, '-', '_' or '.', "
            "not starting or ending with '-' or '.', without '..' or '--', not ending in '.git', 96 characters at most. "
            f"Received: repo_id={repo_id!r}"
        )
    return repo_id


def check_revision(revision: Any) -> str | None:
    """Return ``revision`` (a branch, tag or commit sha; ``None`` means ``main``) when valid, else raise.

    Example:
        >>> check_revision("refs/pr/1")
        'refs/pr/1'
        >>> check_revision("../../x")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        zoo.hub.InvalidHandleError: A revision is a branch, tag or commit sha... Received: revision='../../x'
    """
    if revision is None:
        return None
    if (
        not isinstance(revision, str)
        or not revision
        or len(revision) > 255
        or any(c in _REVISION_BAD_CHARS for c in revision)
        or any(part in ("", ".", "..") or part.endswith(".lock") for part in revision.split("/"))
    ):
        raise InvalidHandleError(
            "A revision is a branch, tag or commit sha: no '..' or empty path segments, no spaces or "
            f"control characters, none of ~^:?*[\\. Received: revision={revision!r}"
        )
    return revision


def parse_handle(handle: str) -> tuple[str, str | None]:
    """Split ``"hf://namespace/name@revision"`` into ``("namespace/name", "revision")``.

    Both parts are checked (``check_repo_id``, ``check_revision``) before anything is sent.

    Example:
        >>> parse_handle("hf://keras-zoo/cnn.fmnist@v1")
        ('keras-zoo/cnn.fmnist', 'v1')
        >>> parse_handle("keras-zoo/cnn.fmnist")
        ('keras-zoo/cnn.fmnist', None)
    """
    body = handle[len(HF_PREFIX):] if isinstance(handle, str) and handle.startswith(HF_PREFIX) else handle
    if not isinstance(body, str):
        raise InvalidHandleError(f"A Hub handle is a string 'hf://namespace/name[@revision]'. Received: handle={handle!r}")
    repo_id, at, revision = body.partition("@")
    try:
        check_repo_id(repo_id)
        if at:
            check_revision(revision)
    except InvalidHandleError as error:
        part = "revision" if "revision=" in str(error) else "repo id"
        raise InvalidHandleError(
            "A Hub handle looks like 'hf://namespace/name' or 'hf://namespace/name@revision', with "
            "names of letters, digits, '-', '_' and '.' (no '..', no more '/'), and a branch, tag or "
            f"commit sha as revision; the {part} is not valid. Received: handle={handle!r}"
        ) from None
    return repo_id, (revision if at else None)


def _local_folder(repo_id: Any) -> Path | None:
    """A local copy of a repo: a path object, or an absolute path string (never a repo id)."""
    if isinstance(repo_id, os.PathLike):
        return Path(repo_id)
    if isinstance(repo_id, str) and os.path.isabs(repo_id):
        return Path(repo_id)
    return None


# -- transfers ----------------------------------------------------------------------------------
_XET_LOCK = threading.Lock()
_xet_users = 0
_xet_saved: bool | None = None


@contextlib.contextmanager
def _http_transfers() -> Iterator[None]:
    """Take the HTTP / git-LFS transfer path for the calls inside, even with ``hf_xet`` installed.

    ``huggingface_hub`` 2.4 has no per-call switch; it reads ``constants.HF_HUB_DISABLE_XET``
    at call time. The constant is set while at least one zoo transfer runs (counted, so
    concurrent zoo calls in threads do not restore it early) and restored after the last one.
    """
    from huggingface_hub import constants

    global _xet_users, _xet_saved
    with _XET_LOCK:
        if _xet_users == 0:
            _xet_saved = constants.HF_HUB_DISABLE_XET
            constants.HF_HUB_DISABLE_XET = True
        _xet_users += 1
    try:
        yield
    finally:
        with _XET_LOCK:
            _xet_users -= 1
            if _xet_users == 0:
                constants.HF_HUB_DISABLE_XET = _xet_saved


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _failed_request(error: BaseException) -> tuple[str | None, str | None, int | None, Mapping[str, str]]:
    """``(method, url path, status, response headers)`` of the HTTP request behind ``error``."""
    import httpx2
    from huggingface_hub import errors

    for e in _chain(error):
        if isinstance(e, errors.HfHubHTTPError) and getattr(e, "response", None) is not None:
            request = e.response.request
            return request.method, request.url.path, e.response.status_code, e.response.headers
        if isinstance(e, httpx2.RequestError):
            try:
                request = e.request
            except RuntimeError:
                return None, None, None, {}
            return request.method, request.url.path, None, {}
    return None, None, None, {}


def _from_transport(error: BaseException) -> bool:
    """Whether ``error`` comes from ``huggingface_hub`` or its HTTP client (not from zoo)."""
    if isinstance(error, (HubError, IntegrityError)):
        return False
    return any(
        type(e).__module__.split(".")[0] in ("huggingface_hub", "httpx2", "httpx")
        or (isinstance(e, OSError) and "Consistency check failed" in str(e))
        for e in _chain(error)
    )


def _transient(error: BaseException) -> bool:
    """408/429/5xx answers, timeouts, refused or dropped connections, a download cut short."""
    import httpx2
    from huggingface_hub import errors

    for e in _chain(error):
        if isinstance(e, errors.OfflineModeIsEnabled):
            return False
        if isinstance(e, errors.HfHubHTTPError) and getattr(e, "response", None) is not None:
            return e.response.status_code in _RETRY_STATUS
        if isinstance(e, (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)):
            return True
        if isinstance(e, OSError) and "Consistency check failed" in str(e):
            return True
    return False


def _client_retried(method: str | None, path: str | None, status: int | None) -> bool:
    """Whether ``huggingface_hub`` 2.4 already retried this request with its own backoff.

    ``hf_hub_download`` repeats a failed ``HEAD .../resolve/...`` with backoff; file downloads
    back off on 408/429 and resume after timeouts and dropped connections; the upload calls
    (preupload, LFS batch / verify, the ``PUT`` of the bytes) go through ``http_backoff``.
    Everything else (metadata calls, 5xx answers to downloads, create repo, commit) is sent once.
    """
    if method is None or path is None:
        return False
    if method == "HEAD" and "/resolve/" in path:
        return True
    if method == "GET" and not path.startswith("/api/") and (status is None or status in (408, 429)):
        return True
    return method == "PUT" or "/preupload/" in path or "/info/lfs/" in path


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After") if headers else None
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:  # an HTTP date: not honoured, the backoff applies
        return None


T = TypeVar("T")


def _with_retries(action: Callable[[], T], *, retries: int, retry_wait: float,
                  explain: Callable[[BaseException, int], BaseException]) -> T:
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0. Received: retries={retries!r}")
    if not isinstance(retry_wait, (int, float)) or retry_wait < 0:
        raise ValueError(f"retry_wait must be a number of seconds >= 0. Received: retry_wait={retry_wait!r}")
    attempt = 0
    while True:
        try:
            return action()
        except Exception as error:  # huggingface_hub / HTTP errors: retried or explained
            if not _from_transport(error):
                raise  # zoo's own errors (IntegrityError, HubError, a bad config) as they are
            method, path, status, headers = _failed_request(error)
            wait = _retry_after(headers)
            if (
                attempt >= retries
                or not _transient(error)
                or _client_retried(method, path, status)
                or (wait is not None and wait > MAX_RETRY_AFTER)
            ):
                raise explain(error, attempt + 1) from error
            wait = retry_wait * 2**attempt if wait is None else wait
            logger.warning("Hub request %s %s failed (%s); retry %d/%d in %.1f s",
                           method, path, status or type(error).__name__, attempt + 1, retries, wait)
            time.sleep(wait)
            attempt += 1


def _metadata_timeout() -> float:
    """Seconds zoo's own metadata calls wait for an answer: ``HF_HUB_ETAG_TIMEOUT`` (default 10)."""
    from huggingface_hub import constants

    return float(constants.HF_HUB_ETAG_TIMEOUT)


# -- errors --------------------------------------------------------------------------------------
def _what_failed(error: BaseException, tries: int) -> str:
    method, path, status, headers = _failed_request(error)
    request = f"{method} {path}" if method else "a request"
    cause = next((e for e in _chain(error) if type(e).__module__.split(".")[0] in ("httpx2", "httpx")), error)
    answer = f"HTTP {status}" if status else f"{type(cause).__name__}: {cause}"
    wait = _retry_after(headers)
    after = f", Retry-After: {wait:g} s" if wait is not None else ""
    tried = f" ({tries} tries)" if tries > 1 else ""
    return f"{request} -> {answer}{after}{tried}"


def _explain(error: BaseException, repo_id: str, revision: str | None, endpoint: str, tries: int = 1) -> HubError:
    import httpx2
    from huggingface_hub import constants, errors

    where = f"{repo_id!r} at revision {revision or 'main'!r}"
    received = f" Received: repo_id={repo_id!r}, revision={revision!r}"
    chain = list(_chain(error))

    def find(*types):
        return next((e for e in chain if isinstance(e, types)), None)

    _, _, status, headers = _failed_request(error)
    failed = _what_failed(error, tries)
    if find(errors.RevisionNotFoundError):
        return HubNotFoundError(
            f"Revision not found: {where} on {endpoint}. Check the branch, tag or commit sha.{received}"
        )
    if find(errors.GatedRepoError):
        return HubAuthError(
            f"{repo_id!r} on {endpoint} is gated: request access on its page and pass a token with it "
            f"(HF_TOKEN or token=).{received}"
        )
    if find(errors.RepositoryNotFoundError):
        hint = (f" A local folder {repo_id!r} exists: pass it as a path (pathlib.Path) to load it."
                if Path(repo_id).is_dir() else "")
        return HubNotFoundError(
            f"Repository not found: {where} on {endpoint}. Check the name, or pass a token "
            f"(HF_TOKEN or token=) if the repo is private.{hint}{received}"
        )
    entry = find(errors.RemoteEntryNotFoundError)
    if entry is not None:
        return HubNotFoundError(f"File not found in {where} on {endpoint}: {entry}.{received}")
    if status == 401:
        return HubAuthError(
            f"The Hub at {endpoint} refused to let you read {where} without a valid token "
            f"({failed}). Set HF_TOKEN, log in with `hf auth login`, or pass token=....{received}"
        )
    if status == 403:
        return HubAuthError(
            f"The Hub at {endpoint} forbids this token to read {where} ({failed}): it is private to "
            f"another user or organization, or the token lacks read access to it.{received}"
        )
    if status == 429:
        return HubUnavailableError(
            f"The Hub at {endpoint} rate-limited the download of {where} ({failed}). Wait and "
            f"retry (pull(..., retries=, retry_wait=)), or pass a token for a higher limit.{received}"
        )
    if status is not None and status >= 500:
        return HubUnavailableError(
            f"The Hub at {endpoint} failed while serving {where} ({failed}). It is down or "
            f"overloaded: retry later, or load from a local folder.{received}"
        )
    if find(errors.OfflineModeIsEnabled) or (find(errors.LocalEntryNotFoundError) and constants.is_offline_mode()):
        return HubUnavailableError(
            f"Could not get {where}: HF_HUB_OFFLINE=1 is set and the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) has no complete copy of it. Unset HF_HUB_OFFLINE to "
            f"download it, or load from a local folder or file path instead.{received}"
        )
    if find(httpx2.TimeoutException):
        return HubUnavailableError(
            f"The Hub at {endpoint} did not answer in time while serving {where} ({failed}; "
            f"HF_HUB_ETAG_TIMEOUT={constants.HF_HUB_ETAG_TIMEOUT} s for metadata, "
            f"HF_HUB_DOWNLOAD_TIMEOUT={constants.HF_HUB_DOWNLOAD_TIMEOUT} s between bytes). Retry, "
            f"raise those timeouts, or load from a local folder.{received}"
        )
    if any("Consistency check failed" in str(e) for e in chain if isinstance(e, OSError)):
        return HubUnavailableError(
            f"The download of {where} from {endpoint} was cut short ({failed}); nothing partial was "
            f"kept. Retry.{received}"
        )
    if find(errors.LocalEntryNotFoundError, httpx2.NetworkError, httpx2.RemoteProtocolError):
        return HubUnavailableError(
            f"Could not get {where}: the Hub at {endpoint} was not reachable ({failed}) and the Hugging "
            "Face cache has no copy. Connect to the network, point HF_ENDPOINT at a reachable mirror, "
            f"or load from a local folder or file path instead.{received}"
        )
    if isinstance(error, errors.HfHubHTTPError):
        return HubError(f"The Hub at {endpoint} refused a request for {where} ({failed}): {error}.{received}")
    return HubError(f"Could not download {where} from {endpoint}: {error!r}.{received}")


def _explain_push(error: BaseException, repo_id: str, revision: str, endpoint: str, token: str | None,
                  tries: int = 1) -> HubError:
    from huggingface_hub import errors, get_token

    received = f" Received: repo_id={repo_id!r}, revision={revision!r}"
    _, _, status, _ = _failed_request(error)
    failed = _what_failed(error, tries)
    namespace = repo_id.split("/")[0]
    has_token = bool(token or get_token())
    if status == 412:
        return HubConflictError(
            f"Push to {repo_id!r} ({revision!r}) on {endpoint} lost a race: the branch moved while this "
            f"push uploaded (someone else pushed at the same time; {failed}). Nothing of this push was "
            f"committed; push again to commit on top of the new head.{received}"
        )
    if status == 401 or any(isinstance(e, errors.LocalTokenNotFoundError) for e in _chain(error)):
        if not has_token:
            return HubAuthError(
                f"The Hub at {endpoint} refused to let you write to {repo_id!r} ({failed}): no token was "
                "found. Log in with `hf auth login`, set HF_TOKEN, or pass token=... with write access."
                f"{received}"
            )
        return HubAuthError(
            f"The Hub at {endpoint} refused to let you write to {repo_id!r} ({failed}): the token was "
            "rejected (expired, revoked or mistyped). Set HF_TOKEN, log in with `hf auth login`, or pass "
            f"token=... with write access.{received}"
        )
    if status == 403:
        return HubAuthError(
            f"The Hub at {endpoint} refused to let you write to {repo_id!r} ({failed}): this token has no "
            f"write access to the namespace {namespace!r}. Push to your own namespace, or use a token of a "
            f"member of {namespace!r} with write access.{received}"
        )
    if any(isinstance(e, errors.RevisionNotFoundError) for e in _chain(error)):
        return HubNotFoundError(
            f"Cannot push to {repo_id!r}: the branch {revision!r} does not exist on {endpoint}. Create it "
            f"first (HfApi().create_branch) or push to 'main'.{received}"
        )
    if _transient(error):
        return HubUnavailableError(
            f"Push of {repo_id!r} to {endpoint} failed: the Hub was unavailable ({failed}). Nothing "
            f"is half-committed: a commit is atomic. Retry later (push(..., retries=, retry_wait=)).{received}"
        )
    return HubError(f"Push of {repo_id!r} to {endpoint} failed ({failed}): {error}.{received}")


# -- pull --------------------------------------------------------------------------------------
def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _problem(path: Path, record: FileRecord | None) -> tuple[bool, str] | None:
    """``None`` when ``path`` is good, else ``(download_again_may_help, what is wrong)``.

    A Hugging Face cache file is a link to a blob named after the ETag the Hub sent: the sha256
    of an LFS file, the git blob sha1 of a small one. Bytes that differ from it were changed
    after download (or damaged on the way): a new download may help. Bytes that match the
    Hub's ETag but not the record mean the repo itself disagrees with its record.
    """
    etag = zoo_format.cache_blob(path).name if path.is_symlink() else None
    size = path.stat().st_size
    sha256 = None
    etag_checked = False
    if etag and _SHA256_RE.fullmatch(etag):
        sha256 = zoo_format.sha256_of(path)
        if sha256 != etag:
            return True, f"the bytes in the cache have sha256 {sha256}, the Hub sent them as {etag}"
        etag_checked = True
    elif etag and _COMMIT_RE.fullmatch(etag) and size <= _GIT_SHA1_MAX_SIZE:
        actual = _git_blob_sha1(path)
        if actual != etag:
            return True, f"the bytes in the cache have git blob sha1 {actual}, the Hub sent them as {etag}"
        etag_checked = True
    if record is None:
        return None
    if size == record.size:
        sha256 = sha256 or zoo_format.sha256_of(path)
        if sha256 == record.sha256:
            return None
    found = f"{size} bytes instead of {record.size}" if size != record.size else f"sha256 {sha256}"
    if etag_checked:
        return False, (f"expected sha256 {record.sha256} (recorded), the Hub serves {found}: the repo does not "
                       "match its record (a stale record, or a repo changed by hand or by a broken push)")
    return True, f"expected sha256 {record.sha256}, got {found}"


def _remember_ref(snapshot: Path, revision: str, sha: str) -> None:
    """Record in the cache which commit a branch or tag pointed to (``refs/<revision>``), as
    ``snapshot_download`` does, so that an offline load of that branch or tag finds it."""
    ref = snapshot.parent.parent / "refs" / revision
    try:
        if ref.is_file() and ref.read_text() == sha:
            return
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref.with_name(f".{ref.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(sha)
        os.replace(tmp, ref)
    except OSError as error:  # a read-only cache still loads; only offline use of the ref is lost
        logger.warning("Could not record %s -> %s in the cache (%s)", revision, sha, error)


def _pull_once(repo_id: str, revision: str | None, cache_dir: Any, records: tuple[FileRecord, ...] | None,
               token: str | None, endpoint: str | None, weights: bool) -> Path:
    from huggingface_hub import HfApi, constants, errors, hf_hub_download

    offline_mode = local_only = constants.is_offline_mode()
    sha = revision if revision is not None and _COMMIT_RE.fullmatch(revision) else None

    def fetch(name: str, *, optional: bool = False, offline: bool | None = None) -> Path | None:
        try:
            return Path(hf_hub_download(
                repo_id, name, revision=sha or revision, cache_dir=cache_dir, token=token, endpoint=endpoint,
                library_name="keras-zoo", library_version=__version__,
                local_files_only=local_only if offline is None else offline,
            ))
        except errors.RemoteEntryNotFoundError:
            if optional:
                return None
            if name == CONFIG_NAME:
                raise HubNotFoundError(
                    f"{repo_id!r} at revision {sha or revision or 'main'!r} has no {CONFIG_NAME}: it is not a "
                    f"keras-zoo repo. Received: repo_id={repo_id!r}, revision={revision!r}"
                ) from None
            raise IntegrityError(
                f"Missing file {name!r} in {repo_id!r} at commit {sha} (recorded in the metadata, absent "
                f"from the repo). Received: repo_id={repo_id!r}, revision={revision!r}"
            ) from None

    def fetch_checked(name: str, record: FileRecord | None = None, *, optional: bool = False) -> Path | None:
        path = fetch(name, optional=optional)
        if path is None:
            return None
        for attempt in (1, 2):
            problem = _problem(path, record)
            if problem is None:
                return path
            again, detail = problem
            message = f"Integrity check failed for {name!r} of {repo_id!r} at commit {path.parent.name}: {detail}."
            if not again:
                raise IntegrityError(f"{message} It was not used. Received: repo_id={repo_id!r}, revision={revision!r}")
            zoo_format.evict(path)
            if attempt == 2 or local_only:
                raise IntegrityError(
                    f"{message} The file was not used and was removed from the cache"
                    + (" (twice: the Hub sends bytes that do not match its own ETag)" if attempt == 2 else
                       "; HF_HUB_OFFLINE=1 is set, so it was not downloaded again: retry online" if offline_mode else
                       "; the Hub could not be reached, so it was not downloaded again: retry when it answers")
                    + f". Received: repo_id={repo_id!r}, revision={revision!r}"
                )
            logger.warning("%s Removed from the cache; downloading it again.", message)
            path = fetch(name)
        raise AssertionError("unreachable")

    ref_resolved = False  # a branch or tag resolved on the Hub: remembered in the cache
    if sha is None and not local_only:
        try:
            sha = HfApi(endpoint=endpoint, token=token, library_name="keras-zoo", library_version=__version__) \
                .model_info(repo_id, revision=revision or "main", timeout=_metadata_timeout()).sha
            ref_resolved = True
        except Exception as error:
            if not _transient(error):
                raise
            try:  # the Hub is unavailable: the cached copy of that branch or tag, if there is one
                cached = fetch(CONFIG_NAME, offline=True)
            except errors.LocalEntryNotFoundError:
                raise error from None
            logger.warning("The Hub could not be reached (%s); using the cached copy of %r at %r (commit %s).",
                           _what_failed(error, 1), repo_id, revision or "main", cached.parent.name)
            sha, local_only = cached.parent.name, True

    config_path = fetch_checked(CONFIG_NAME)
    folder = config_path.parent
    if ref_resolved:
        _remember_ref(folder, revision or "main", folder.name)
    sha = folder.name
    try:
        version = json.loads(config_path.read_text()).get("format_version", 1)
    except (ValueError, AttributeError) as error:
        raise IntegrityError(
            f"The {CONFIG_NAME} of {repo_id!r} at commit {sha} is not valid JSON ({error}). "
            f"Received: repo_id={repo_id!r}, revision={revision!r}"
        ) from error
    if not isinstance(version, int) or version >= 2:
        fetch_checked(METADATA_NAME, optional=True)
    if records is None:
        records = read_folder(folder).records
        if weights and not records:
            raise IntegrityError(
                f"{repo_id!r} at commit {sha} records no weight files with their sha256 ({METADATA_NAME} is "
                "missing or has no 'weights'): its weights cannot be verified, so they are not loaded. "
                f"Use weights=None for an untrained model. Received: repo_id={repo_id!r}, revision={revision!r}"
            )
    by_name = {r.name: r for r in records}
    for name in (CONFIG_NAME, METADATA_NAME):
        if name in by_name:
            fetch_checked(name, by_name[name])
    if weights:
        for record in records:
            if record.name not in (CONFIG_NAME, METADATA_NAME) and any(
                fnmatch.fnmatch(record.name, p) for p in REPO_PATTERNS
            ):
                fetch_checked(record.name, record)
    return folder


def pull(
    repo_id: str | os.PathLike,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    records: Iterable[FileRecord] | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    weights: bool = True,
    retries: int = DEFAULT_RETRIES,
    retry_wait: float = DEFAULT_RETRY_WAIT,
) -> Path:
    """Download a zoo repo's config, metadata and weights into the HF cache, verify, return the folder.

    Hashes come from ``records`` (a release record of the registry) when given, else from the
    repo's ``metadata.json`` (``config.json`` in format version 1), itself checked against the
    Hub's ETag. ``weights=False`` downloads only the config and metadata (an untrained model of
    that architecture needs no more). ``retries`` / ``retry_wait`` bound the retries of requests
    the client sends once (see the module docstring); ``0`` turns them off.

    A local copy of a repo -- a ``pathlib.Path``, or an absolute path string -- is verified the
    same way and returned as it is. Any other string is a Hub repo id, never a local path.

    Raises ``InvalidHandleError`` (a bad id or revision, nothing sent), ``HubNotFoundError``,
    ``HubAuthError``, ``HubUnavailableError`` (all ``HubError``) or ``IntegrityError``.

    Example:
        >>> folder = pull("keras-zoo/cnn.fmnist", revision="v1")  # doctest: +SKIP
    """
    local = _local_folder(repo_id)
    if local is not None:  # a local copy of a repo: verified like a download
        records = read_folder(local).records if records is None else tuple(records)
        if weights and not records:
            raise IntegrityError(
                f"{str(local)!r} records no weight files with their sha256 ({METADATA_NAME} is missing or has "
                "no 'weights'): its weights cannot be verified, so they are not used. Received: "
                f"repo_id={str(repo_id)!r}"
            )
        verify_files(local, records)
        return local
    repo_id = check_repo_id(repo_id)
    revision = check_revision(revision)
    if cache_dir is not None and Path(cache_dir).expanduser().is_file():
        raise ValueError(
            f"`cache_dir` is a folder for the Hugging Face cache; this is a file. Received: cache_dir={str(cache_dir)!r}"
        )
    records = None if records is None else tuple(records)
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    shown = endpoint or "https://huggingface.co"
    with _http_transfers():
        return _with_retries(
            lambda: _pull_once(repo_id, revision, cache_dir, records, token, endpoint, weights),
            retries=retries, retry_wait=retry_wait,
            explain=lambda error, tries: _explain(error, repo_id, revision, shown, tries),
        )


# -- push ---------------------------------------------------------------------------------------
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
    retries: int = DEFAULT_RETRIES,
    retry_wait: float = DEFAULT_RETRY_WAIT,
) -> str:
    """Upload a model (or a run / release folder) to ``repo_id`` (``namespace/name``, or the
    ``hf://namespace/name`` handle) in one commit; return its sha.

    The commit holds ``config.json``, ``metadata.json``, the safetensors weights and a
    ``README.md`` model card (with the images it references); weight files of an earlier push
    that this one lacks are deleted in the same commit. An existing card on the Hub (and its
    images) is kept unless ``replace_card=True``, which also deletes the figures a zoo run writes
    (``training_curves.png``, ``confusion_matrix.png``, ``boxes.png``) that this push lacks; no
    other file of the repo is deleted. The repo is created when it does not exist. The commit
    names the head it was prepared against (``parentCommit``): when someone else pushes to the
    branch meanwhile, this push fails with ``HubConflictError`` and commits nothing, instead of
    mixing its files with theirs.

    Example:
        >>> sha = push("runs/cnn-001", "me/cnn.fmnist", commit_message="First release")  # doctest: +SKIP
    """
    from huggingface_hub import HfApi, constants

    # The handle zoo prints after a push (and pulls) is hf://namespace/name: taken here as the repo id.
    repo_id = push_target(repo_id)
    revision = check_revision(revision) or "main"
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    shown = endpoint or "https://huggingface.co"
    if constants.is_offline_mode():
        raise HubUnavailableError(
            f"Cannot push to {repo_id!r}: HF_HUB_OFFLINE=1 is set, and a push needs the Hub at {shown}. "
            f"Unset HF_HUB_OFFLINE to push. Received: repo_id={repo_id!r}"
        )
    api = HfApi(endpoint=endpoint, token=token, library_name="keras-zoo", library_version=__version__)
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as staging_name:
        staging = Path(staging_name)
        if isinstance(model_or_folder, keras.Model):
            zoo_format.save_folder(model_or_folder, staging, metadata=metadata, max_shard_size=max_shard_size)
            _write_card(staging, repo_id)
        else:
            source = Path(model_or_folder).expanduser()
            read_folder(source)  # fails early on a folder that is not a zoo model
            for pattern in _PUSHED_PATTERNS:
                for path in source.glob(pattern):
                    shutil.copy2(path, staging / path.name)
            if not (staging / CARD_NAME).exists():
                _write_card(staging, repo_id)
        staged = read_folder(staging)
        if not staged.records:
            raise ValueError(
                f"{str(model_or_folder)!r} records no weight files (metadata.json 'weights'), so a pull "
                "could not check them: push a folder written by zoo.save_folder, a run or a release. "
                f"Received: model_or_folder={str(model_or_folder)!r}"
            )
        verify_files(staging, staged.records)  # a stale or edited folder fails here, not at every pull
        message = commit_message or f"Upload {staged.architecture or 'model'} with keras-zoo"

        def attempt() -> str:
            api.create_repo(repo_id, private=private, exist_ok=True)
            head = api.model_info(repo_id, revision=revision, timeout=_metadata_timeout())
            if private and head.private is False:
                raise HubError(
                    f"{repo_id!r} already exists on {shown} and is public: pushing with private=True "
                    "would publish these weights. Nothing was pushed. Make the repo private first "
                    "(HfApi().update_repo_settings(repo_id, private=True)) or push with private=False. "
                    f"Received: repo_id={repo_id!r}, private=True"
                )
            on_hub = {s.rfilename for s in head.siblings or ()}
            keep_card = CARD_NAME in on_hub and not replace_card
            # A card written anew over an earlier one drops that card's figures when this push has
            # none of that name; pictures of any other name (a user's own) stay.
            replaces_card = CARD_NAME in on_hub and replace_card
            stale_figures = [name for name in PLOT_NAMES if name in on_hub and not (staging / name).exists()] if replaces_card else []
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=staging,
                revision=revision,
                commit_message=message,
                create_pr=create_pr,
                ignore_patterns=[CARD_NAME] if keep_card else None,
                # Weight files of an earlier push that this one lacks (a single file after shards, or
                # the reverse) would mix two saves. Exact names only: fnmatch's "*" crosses "/".
                delete_patterns=[*WEIGHT_PATTERNS, *stale_figures],
                parent_commit=head.sha,
            )
            return info.oid

        with _http_transfers():
            return _with_retries(
                attempt, retries=retries, retry_wait=retry_wait,
                explain=lambda error, tries: _explain_push(error, repo_id, revision, shown, token, tries),
            )


def _write_card(folder: Path, repo_id: str) -> None:
    fields = read_folder(folder).fields
    card = render_card(fields, repo_id=repo_id, metrics=fields.get("metrics") or {}, folder=folder)
    (folder / CARD_NAME).write_text(card)

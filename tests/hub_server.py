"""A local, Hugging Face Hub-compatible HTTP server for tests (standard library only).

``LocalHub`` speaks enough of the Hub's HTTP protocol for the real ``huggingface_hub`` client
(2.4.x) to create model repos, commit files (regular and git-LFS "basic" transfer), tag, list
refs/trees and download files (``hf_hub_download`` / ``snapshot_download``) over real HTTP on
127.0.0.1.

    with LocalHub(tmp_path, token="hf_test") as hub:
        api = HfApi(endpoint=hub.endpoint, token="hf_test")
        api.create_repo("tester/demo")
        ...
        hf_hub_download("tester/demo", "config.json", endpoint=hub.endpoint, cache_dir=...)

Scope and rules (model repos only, ids ``namespace/name``; a bare ``name`` on create becomes
``tester/name``):

* Storage: content-addressed objects under ``root/objects/`` (keyed by sha256) and a git-like
  history in memory, mirrored to ``root/state.json`` after every change (a new ``LocalHub`` on the
  same ``root`` serves the same repos).  Each commit is
  ``{sha, parent, files: {path: {blob_sha1, sha256, size, lfs}}, summary, description, date}``;
  ``blob_sha1`` is the git blob sha1 of the file's bytes.  ``create_repo`` makes ``main`` with an
  initial *empty* commit (the real Hub also adds a ``.gitattributes`` file; this server does not).
* Revisions: branch name (``main``, ``refs/pr/1``), tag name, ``refs/heads/X``, ``refs/tags/X`` or a
  full 40-hex commit sha.  Errors are typed through ``X-Error-Code`` as the client expects:
  unknown repo -> 404 ``RepoNotFound``; unknown revision -> 404 ``RevisionNotFound``; missing file
  -> 404 ``EntryNotFound`` (with ``X-Repo-Commit``).  Error bodies are ``{"error": "..."}``.
* Auth: with ``token`` set, every write (create/delete repo, preupload, LFS batch + verify, commit,
  tag, branch) needs ``Authorization: Bearer <token>`` and gets 401 otherwise.  The LFS ``PUT`` to
  the upload ``href`` is authorised by a secret key embedded in the href (like a pre-signed S3 URL)
  because the client sends that PUT without an Authorization header.  Reads are public unless the
  repo was created private; then reads without the token answer 401 with ``X-Error-Code:
  RepoNotFound`` (the client raises ``RepositoryNotFoundError``).  Without ``token`` nothing is
  checked.  ``GET /api/whoami-v2`` answers ``{"name": "tester", ...}`` for the right token (any
  Bearer token when the hub has none) and 401 otherwise.
* Upload mode (preupload): ``lfs`` for files >= 10 MB, for ``.safetensors/.h5/.keras/.png`` (and a
  few other binary suffixes) and for samples containing NUL bytes; ``regular`` otherwise.  A
  ``file`` (regular) commit line above 10 MB is refused with 400, like the real Hub.
* Commits: ndjson ``header`` / ``file`` / ``lfsFile`` / ``deletedFile`` / ``deletedFolder``.
  A stale ``parentCommit`` -> 412.  Commits go to branches only (tag / sha -> 400).
  ``create_pr=1`` is implemented: a ``refs/pr/N`` branch is made from the revision and the commit
  lands there; ``pullRequestUrl`` is ``{endpoint}/{id}/discussions/N``.
* Downloads: ``HEAD``/``GET /{id}/resolve/{rev}/{path}`` served in place (no CDN redirect) with
  ``X-Repo-Commit``, quoted ``ETag`` (git blob sha1, or sha256 for LFS files, which also carry
  ``X-Linked-Etag`` and ``X-Linked-Size``), ``Content-Length`` and ``Accept-Ranges``; ``Range:
  bytes=a-``, ``bytes=a-b`` and ``bytes=-n`` answer 206.  ``hub.corrupt = True`` flips bytes of GET
  bodies (same length, same headers): the 2.4 client only checks the *size* of what it downloads,
  never its sha256, so corrupted bytes land in the cache silently.
* Xet is NOT served: this server never sends ``X-Xet-Hash`` / ``xetHash`` (unless
  ``advertise_xet``, below), and the ``xet-write-token`` / ``xet-read-token`` routes answer 501.  Run the client with Xet disabled
  (``HF_HUB_DISABLE_XET=1`` before import, or patch ``huggingface_hub.constants.HF_HUB_DISABLE_XET
  = True``; the 2.4 client reads that constant at call time), otherwise uploads of LFS files fail.
* ``hub.requests`` records ``(method, path)`` for every request, ``path`` being the raw
  (percent-encoded) URL path WITHOUT the query string.  ``hub.log`` holds one ``RequestRecord`` per
  request (both servers): method, path, query, headers received, connection id, client address,
  ``start`` / ``end`` (``time.monotonic()``), status, body bytes sent, the fault applied and which
  server (``"hub"`` / ``"storage"``) answered.  ``hub.errors`` collects unexpected server exceptions
  (answered 500) for debugging.

The real Hub's faults, on demand (``hub.fail(...)`` returns the ``Fault``; ``fault.hits`` counts uses):

    hub.fail(r"/resolve/", method="GET", status=429, headers={"Retry-After": "1"})   # next 1 request
    hub.fail(r"/revision/", status=503, times=None)                                 # every request
    hub.fail(r"model\.safetensors$", method="GET", drop_after=100_000)              # cut mid-body
    hub.fail(r"model\.safetensors$", method="GET", throttle=(65536, 0.05), times=None)  # slow body
    hub.fail(r"/resolve/", method="HEAD", delay=3)                                  # slower than a timeout
    hub.fail(r"model\.safetensors$", method="GET", corrupt=True, times=None)        # flipped bytes

``route`` is a regular expression searched in the raw path (``re.search``); ``method`` (or None for
any), ``server`` (``"hub"``, ``"storage"`` or None for both) and ``times`` (None = forever) narrow
it; the first matching fault with uses left applies.  ``delay`` sleeps before answering; ``status``
answers that status (JSON error body, ``headers`` added, ``code`` as ``X-Error-Code``) instead of
serving; ``drop_after`` / ``throttle`` / ``corrupt`` change how the body of a normal answer is sent
(cut after that many bytes by closing the socket; ``(chunk_bytes, seconds)`` per chunk; bytes
flipped as with ``hub.corrupt``).  ``hub.clear_faults()`` removes them all.

Closer to production, opt-in per hub:

* ``LocalHub(root, storage=True)``: a second server on another port plays the CDN / object
  storage.  ``HEAD``/``GET /{id}/resolve/...`` of LFS files answer ``302`` with ``Location`` = a
  pre-signed storage URL (``/objects/{sha256}?expires=..&signature=..``) plus the file headers
  (``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``, ``X-Linked-Size``), like the real Hub.  The
  storage server checks the signature (403 otherwise) and records the headers it received in
  ``hub.log`` (``server == "storage"``), so a test can assert that no ``Authorization`` followed
  the redirect.  ``hub.storage_endpoint`` is its base URL.
* ``hub.namespaces = {"tester"}``: with a ``token``, writes outside these namespaces answer 403
  (``You don't have the rights to ...``) like a token of a user who is no member of the org.
* ``hub.advertise_xet = True``: LFS files are announced as Xet-backed, as on today's real Hub:
  ``X-Xet-Hash`` and a ``Link: <...xet-read-token...>; rel="xet-auth"`` header on resolve answers,
  ``xetHash`` in tree entries.  The Xet routes still answer 501 (no CAS server here), so a client
  that takes the Xet path fails, and one that downloads over HTTP succeeds.

Routes: ``POST /api/repos/create`` (409 + ``url`` when it exists), ``DELETE /api/repos/delete``,
``POST /api/validate-yaml``, ``GET /api/whoami-v2``, and under ``/api/models/{id}``: ``GET`` (info
at main), ``GET /revision/{rev}``, ``GET /tree/{rev}[/{path}]`` (``?recursive=true``), ``POST
/paths-info/{rev}``, ``GET /refs`` (``?include_prs=1``), ``GET /commits/{rev}``, ``POST
/preupload/{rev}``, ``POST /commit/{rev}``, ``POST /tag/{rev}``, ``DELETE /tag/{tag}``, ``POST|DELETE
/branch/{branch}``; git-LFS ``POST /{id}.git/info/lfs/objects/batch`` and ``.../objects/verify``,
``PUT`` the upload href; ``HEAD|GET /{id}/resolve/{rev}/{path}``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import hashlib
import hmac
import itertools
import json
import os
import pathlib
import re
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote

__all__ = ["LocalHub", "Fault", "RequestRecord", "git_blob_sha1", "LFS_THRESHOLD", "DEFAULT_USER"]

LFS_THRESHOLD = 10 * 1024 * 1024  # bytes; files at or above are "lfs" in preupload answers
LFS_SUFFIXES = (
    ".safetensors", ".h5", ".keras", ".png",
    ".bin", ".pt", ".pth", ".ckpt", ".npy", ".npz", ".onnx", ".msgpack", ".pkl", ".zip", ".gz",
    ".tar", ".jpg", ".jpeg", ".gif", ".weights",
)
DEFAULT_USER = "tester"
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree sha1


def git_blob_sha1(data: bytes) -> str:
    """Git blob id of ``data``: sha1(b"blob <len>\\0" + data)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now_iso() -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class HubError(Exception):
    """An HTTP error answer: status, message, extra headers."""

    def __init__(self, status: int, message: str, *, code: str | None = None, headers=None, extra=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        if code:
            self.headers["X-Error-Code"] = code
        self.extra = dict(extra or {})


@dataclasses.dataclass
class Fault:
    """One injected fault; see the module docstring.  ``hits`` counts the requests it answered."""

    route: str
    method: str | None = None
    server: str | None = "hub"
    times: int | None = 1
    status: int | None = None
    headers: dict = dataclasses.field(default_factory=dict)
    code: str | None = None
    message: str = "Injected fault"
    delay: float = 0.0
    drop_after: int | None = None
    throttle: tuple[int, float] | None = None
    corrupt: bool = False
    hits: int = 0

    def matches(self, server: str, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.server is not None and self.server != server:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return re.search(self.route, path) is not None


@dataclasses.dataclass
class RequestRecord:
    """What one request looked like (``hub.log``).  Times are ``time.monotonic()`` seconds."""

    server: str
    method: str
    path: str
    query: str
    headers: dict
    conn: int
    client: tuple
    start: float
    end: float | None = None
    status: int | None = None
    sent: int = 0
    fault: Fault | None = None

    def header(self, name: str) -> str | None:
        """A request header, case-insensitively."""
        name = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == name), None)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, hub: "LocalHub", role: str = "hub"):
        self.hub = hub
        self.role = role
        self.open_connections: set = set()
        self.conn_lock = threading.Lock()
        super().__init__(addr, handler)

    def handle_error(self, request, client_address):  # silence tracebacks on dropped connections
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, OSError)):
            return
        self.hub._record_error(exc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"
    timeout = 60  # idle keep-alive connections are dropped after this

    # -- plumbing ---------------------------------------------------------------------------
    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr logging
        pass

    def setup(self):
        super().setup()
        self.conn_id = self.server.hub._next_conn()
        with self.server.conn_lock:
            self.server.open_connections.add(self.connection)

    def finish(self):
        try:
            super().finish()
        except (ConnectionError, OSError):
            pass
        finally:
            with self.server.conn_lock:
                self.server.open_connections.discard(self.connection)

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, BrokenPipeError, socket.timeout, TimeoutError):
            self.close_connection = True

    def _dispatch(self):
        hub: LocalHub = self.server.hub
        raw_path, _, query = self.path.partition("?")
        role = self.server.role
        self._fault = hub._take_fault(role, self.command, raw_path)
        self._record = hub._record_request(
            RequestRecord(role, self.command, raw_path, query, dict(self.headers.items()), self.conn_id,
                          tuple(self.client_address), time.monotonic(), fault=self._fault)
        )
        self._body_sent = False
        try:
            self._serve(hub, role, raw_path, query)
        finally:
            self._record.end = time.monotonic()

    def _serve(self, hub: "LocalHub", role: str, raw_path: str, query: str):
        fault = self._fault
        try:
            body = self._read_body()
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.status is not None:
                raise HubError(fault.status, fault.message, code=fault.code, headers=fault.headers)
            if role == "storage":
                hub._serve_storage(self, raw_path, parse_qs(query, keep_blank_values=True))
            else:
                hub._handle(self, self.command, raw_path, parse_qs(query, keep_blank_values=True), body)
        except HubError as e:
            self.send_json(e.status, {"error": e.message, **e.extra}, headers=e.headers)
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - answer 500, keep the traceback for debugging
            hub._record_error(e)
            if not self._body_sent:
                try:
                    self.send_json(500, {"error": f"LocalHub internal error: {e!r}"})
                except OSError:
                    self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("connection closed inside a chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers up to the blank line
                        trailer = self.rfile.readline(65537)
                        if trailer in (b"\r\n", b"\n", b""):
                            break
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after each chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_bytes(self, status: int, data: bytes, headers=None, *, content_type="application/octet-stream",
                   content_length: int | None = None):
        self.send_response(status)
        self._record.status = status
        hdrs = {"Content-Type": content_type, **(headers or {})}
        hdrs["Content-Length"] = str(len(data) if content_length is None else content_length)
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        self._body_sent = True
        if self.command != "HEAD" and data:
            self._write_body(data)

    def _write_body(self, data: bytes) -> None:
        fault = self._fault
        if fault is None or fault.status is not None:
            self.wfile.write(data)
            self._record.sent += len(data)
            return
        if fault.corrupt:
            data = _flip(data)
        limit = len(data) if fault.drop_after is None else min(fault.drop_after, len(data))
        step, pause = fault.throttle or (limit or 1, 0.0)
        pos = 0
        while pos < limit:
            chunk = data[pos:min(pos + step, limit)]
            self.wfile.write(chunk)
            self.wfile.flush()
            pos += len(chunk)
            self._record.sent = pos
            if pause and pos < limit:
                time.sleep(pause)
        if limit < len(data):  # drop the connection mid-body, as a broken network does
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def send_json(self, status: int, obj, headers=None, content_type="application/json"):
        self.send_bytes(status, json.dumps(obj).encode(), headers, content_type=content_type)

    def bearer(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return None


class LocalHub:
    """Local Hub-compatible HTTP server; see the module docstring for the protocol served."""

    def __init__(self, root: pathlib.Path, *, token: str | None = None, storage: bool = False):
        self.root = pathlib.Path(root)
        self.token = token
        self.endpoint: str = ""
        self.storage_endpoint: str = ""
        self.requests: list[tuple[str, str]] = []
        self.log: list[RequestRecord] = []
        self.errors: list[BaseException] = []
        self.corrupt: bool = False
        self.faults: list[Fault] = []
        self.namespaces: set[str] | None = None
        self.advertise_xet: bool = False
        self._storage = storage
        self._storage_server: _Server | None = None
        self._storage_thread: threading.Thread | None = None
        self._conn_ids = itertools.count(1)
        self._lock = threading.RLock()
        self._req_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._upload_key = secrets.token_hex(16)
        self.repos: dict[str, dict] = {}
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self._state_path = self.root / "state.json"
        if self._state_path.exists():
            state = json.loads(self._state_path.read_text())
            self.repos = state.get("repos", {})
            self._seq = state.get("seq", 0)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "LocalHub":
        if self._server is not None:
            return self
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"LocalHub:{port}", daemon=True
        )
        self._thread.start()
        if self._storage:
            self._storage_server = _Server(("127.0.0.1", 0), _Handler, self, role="storage")
            sport = self._storage_server.server_address[1]
            self.storage_endpoint = f"http://127.0.0.1:{sport}"
            self._storage_thread = threading.Thread(
                target=self._storage_server.serve_forever, kwargs={"poll_interval": 0.05},
                name=f"LocalHubStorage:{sport}", daemon=True,
            )
            self._storage_thread.start()
        return self

    def stop(self) -> None:
        for attr, thread_attr in (("_server", "_thread"), ("_storage_server", "_storage_thread")):
            server = getattr(self, attr)
            setattr(self, attr, None)
            if server is None:
                continue
            server.shutdown()
            server.server_close()
            with server.conn_lock:  # drop idle keep-alive connections so nothing is served after stop()
                conns = list(server.open_connections)
            for conn in conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            thread = getattr(self, thread_attr)
            if thread is not None:
                thread.join(timeout=5)
                setattr(self, thread_attr, None)

    def __enter__(self) -> "LocalHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers usable from tests ----------------------------------------------------------
    def reset_requests(self) -> None:
        with self._req_lock:
            self.requests.clear()
            self.log.clear()

    def fail(self, route: str, *, method: str | None = None, server: str | None = "hub", times: int | None = 1,
             status: int | None = None, headers: dict | None = None, code: str | None = None,
             message: str = "Injected fault", delay: float = 0.0, drop_after: int | None = None,
             throttle: tuple[int, float] | None = None, corrupt: bool = False) -> Fault:
        """Make the next ``times`` requests matching ``route`` misbehave; see the module docstring."""
        fault = Fault(route, method, server, times, status, dict(headers or {}), code, message, delay,
                      drop_after, throttle, corrupt)
        with self._req_lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._req_lock:
            self.faults.clear()

    def records(self, method: str | None = None, route: str | None = None, server: str | None = "hub", *,
                settled: bool = True):
        """The ``hub.log`` entries of ``method`` whose path matches ``route`` (``re.search``).

        A client can have a whole answer before the server has noted its ``end``: with ``settled``
        (the default) this waits up to 2 s for the ``end`` of every entry returned; pass
        ``settled=False`` to look at requests still in flight (``sent`` grows as bytes go out).
        """
        with self._req_lock:
            log = list(self.log)
        out = [r for r in log if (method is None or r.method == method) and (server is None or r.server == server)
               and (route is None or re.search(route, r.path))]
        deadline = time.monotonic() + 2.0
        while settled and any(r.end is None for r in out) and time.monotonic() < deadline:
            time.sleep(0.005)
        return out

    def _take_fault(self, server: str, method: str, path: str) -> Fault | None:
        with self._req_lock:
            for fault in self.faults:
                if fault.matches(server, method, path):
                    fault.hits += 1
                    return fault
        return None

    def _next_conn(self) -> int:
        with self._req_lock:
            return next(self._conn_ids)

    def head(self, repo_id: str, revision: str = "main") -> str:
        """Commit sha that ``revision`` resolves to (raises KeyError when unknown)."""
        with self._lock:
            sha = self._resolve(self.repos[repo_id], revision)
            if sha is None:
                raise KeyError(revision)
            return sha

    def file_bytes(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        with self._lock:
            repo = self.repos[repo_id]
            entry = repo["commits"][self.head(repo_id, revision)]["files"][path]
        return self._read_object(entry["sha256"])

    def _record_request(self, record: RequestRecord) -> RequestRecord:
        with self._req_lock:
            if record.server == "hub":
                self.requests.append((record.method, record.path))
            self.log.append(record)
        return record

    def _record_error(self, exc) -> None:
        with self._req_lock:
            self.errors.append(exc)

    # -- storage ----------------------------------------------------------------------------
    def _object_path(self, sha256: str) -> pathlib.Path:
        return self.root / "objects" / sha256[:2] / sha256

    def _write_object(self, data: bytes, sha256: str | None = None) -> str:
        sha256 = sha256 or hashlib.sha256(data).hexdigest()
        path = self._object_path(sha256)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{sha256}.{secrets.token_hex(4)}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return sha256

    def _read_object(self, sha256: str) -> bytes:
        return self._object_path(sha256).read_bytes()

    def _save(self) -> None:
        tmp = self._state_path.with_name(f".state.{secrets.token_hex(4)}.tmp")
        tmp.write_text(json.dumps({"repos": self.repos, "seq": self._seq}))
        os.replace(tmp, self._state_path)

    def _new_commit(self, repo: dict, parent: str | None, files: dict, summary: str, description: str) -> str:
        self._seq += 1
        manifest = json.dumps(
            {"parent": parent, "files": files, "summary": summary, "description": description, "seq": self._seq,
             "repo": repo["id"], "nonce": secrets.token_hex(8)},
            sort_keys=True,
        ).encode()
        sha = hashlib.sha1(manifest).hexdigest()
        repo["commits"][sha] = {
            "sha": sha, "parent": parent, "files": files, "summary": summary, "description": description,
            "date": _now_iso(),
        }
        return sha

    @staticmethod
    def _resolve(repo: dict, rev: str) -> str | None:
        if _SHA_RE.match(rev) and rev in repo["commits"]:
            return rev
        if rev in repo["branches"]:
            return repo["branches"][rev]
        if rev in repo["tags"]:
            return repo["tags"][rev]
        if rev.startswith("refs/heads/") and rev[11:] in repo["branches"]:
            return repo["branches"][rev[11:]]
        if rev.startswith("refs/tags/") and rev[10:] in repo["tags"]:
            return repo["tags"][rev[10:]]
        return None

    # -- auth -------------------------------------------------------------------------------
    def _require_write(self, h: _Handler) -> None:
        if self.token is None:
            return
        given = h.bearer()
        if given != self.token:
            msg = "Invalid credentials in Authorization header" if given else "Authorization header is required"
            raise HubError(401, msg)

    def _require_namespace(self, namespace: str, what: str) -> None:
        if self.token is not None and self.namespaces is not None and namespace not in self.namespaces:
            raise HubError(403, f"You don't have the rights to {what} under the namespace \"{namespace}\"")

    def _get_repo(self, h: _Handler, repo_id: str, *, write: bool = False) -> dict:
        if write:
            self._require_write(h)
            self._require_namespace(repo_id.split("/")[0], f"write to {repo_id}")
        repo = self.repos.get(repo_id)
        if repo is None:
            raise HubError(404, "Repository not found", code="RepoNotFound")
        if not write and repo.get("private") and self.token is not None and h.bearer() != self.token:
            raise HubError(401, "Repository not found", code="RepoNotFound")
        return repo

    def _rev(self, repo: dict, rev: str) -> str:
        sha = self._resolve(repo, rev)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {rev}", code="RevisionNotFound")
        return sha

    # -- routing ----------------------------------------------------------------------------
    def _handle(self, h: _Handler, method: str, raw_path: str, query: dict, body: bytes) -> None:
        segs = raw_path.split("/")[1:]  # still percent-encoded
        u = [unquote(s) for s in segs]
        with self._lock:
            if u[:2] == ["api", "whoami-v2"] and method == "GET":
                return self._whoami(h)
            if u[:2] == ["api", "validate-yaml"] and method == "POST":
                return h.send_json(200, {"errors": [], "warnings": []})
            if u[:3] == ["api", "repos", "create"] and method == "POST":
                return self._create_repo(h, _json(body))
            if u[:3] == ["api", "repos", "delete"] and method == "DELETE":
                return self._delete_repo(h, _json(body))
            if len(u) >= 4 and u[0] == "api" and u[1] in ("datasets", "spaces", "kernels"):
                raise HubError(404, "LocalHub serves model repos only", code="RepoNotFound")
            if len(u) >= 4 and u[:2] == ["api", "models"]:
                repo_id = f"{u[2]}/{u[3]}"
                rest, rest_raw = u[4:], segs[4:]
                return self._api_model(h, method, repo_id, rest, rest_raw, query, body)
            if len(u) >= 6 and u[1].endswith(".git") and u[2:5] == ["info", "lfs", "objects"]:
                repo_id = f"{u[0]}/{u[1][:-4]}"
                if u[5] == "batch" and method == "POST":
                    return self._lfs_batch(h, repo_id, _json(body))
                if u[5] == "verify" and method == "POST":
                    return self._lfs_verify(h, repo_id, _json(body))
            if u[:2] == ["api", "models"] and len(u) == 3:  # single-segment ids never exist here
                raise HubError(404, "Repository not found", code="RepoNotFound")
        # Routes below take the lock themselves only around state access (large bodies).
        if len(u) >= 4 and u[1] == "resolve" and method in ("GET", "HEAD"):
            raise HubError(404, "Repository not found", code="RepoNotFound")
        if len(u) == 4 and u[0] == "__lfs_upload__" and method == "PUT":
            return self._lfs_put(h, f"{u[1]}/{u[2]}", u[3], query, body)
        if len(u) >= 5 and u[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve_file(h, f"{u[0]}/{u[1]}", u[3], "/".join(u[4:]))
        raise HubError(404, f"LocalHub: no route for {method} {raw_path}")

    def _api_model(self, h, method, repo_id, rest, rest_raw, query, body):
        if not rest and method == "GET":
            return self._model_info(h, repo_id, "main", query)
        kind = rest[0] if rest else ""
        arg = rest[1] if len(rest) > 1 else None
        if kind == "revision" and method == "GET" and arg is not None:
            return self._model_info(h, repo_id, arg, query)
        if kind == "tree" and method == "GET" and arg is not None:
            return self._tree(h, repo_id, arg, "/".join(rest[2:]).strip("/"), query)
        if kind == "paths-info" and method == "POST" and arg is not None:
            return self._paths_info(h, repo_id, arg, body, h.headers.get("Content-Type") or "")
        if kind == "refs" and method == "GET":
            return self._refs(h, repo_id, query)
        if kind == "commits" and method == "GET" and arg is not None:
            return self._commits(h, repo_id, arg)
        if kind == "preupload" and method == "POST" and arg is not None:
            return self._preupload(h, repo_id, arg, _json(body), query)
        if kind == "commit" and method == "POST" and arg is not None:
            return self._commit(h, repo_id, arg, body, query)
        if kind == "tag" and arg is not None and method in ("POST", "DELETE"):
            return self._tag(h, repo_id, arg, method, _json(body) if body else {})
        if kind == "branch" and arg is not None and method in ("POST", "DELETE"):
            return self._branch(h, repo_id, arg, method, _json(body) if body else {})
        if kind in ("xet-write-token", "xet-read-token"):
            raise HubError(501, "Xet is not served by LocalHub: set HF_HUB_DISABLE_XET=1")
        raise HubError(404, f"LocalHub: no route for {method} /api/models/{repo_id}/{'/'.join(rest_raw)}")

    # -- handlers ---------------------------------------------------------------------------
    def _whoami(self, h):
        given = h.bearer()
        if given is None or (self.token is not None and given != self.token):
            raise HubError(401, "Invalid credentials in Authorization header")
        return h.send_json(200, {
            "type": "user", "id": "0" * 24, "name": DEFAULT_USER, "fullname": "Local Tester",
            "email": "tester@localhost", "emailVerified": True, "isPro": False, "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
        })

    def _create_repo(self, h, payload):
        self._require_write(h)
        rtype = payload.get("type") or "model"
        if rtype != "model":
            raise HubError(400, "LocalHub serves model repos only")
        name = payload.get("name") or ""
        org = payload.get("organization") or DEFAULT_USER
        if not (_NAME_RE.match(name) and _NAME_RE.match(org)) or name.endswith(".git"):
            raise HubError(400, f"Invalid repo name: {org}/{name}")
        repo_id = f"{org}/{name}"
        self._require_namespace(org, "create a model")
        url = f"{self.endpoint}/{repo_id}"
        if repo_id in self.repos:
            raise HubError(409, "You already created this model repo", extra={"url": url})
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        repo = {"id": repo_id, "private": private, "createdAt": _now_iso(), "commits": {}, "branches": {},
                "tags": {}, "lfs": {}, "prs": 0}
        repo["branches"]["main"] = self._new_commit(repo, None, {}, "initial commit", "")
        self.repos[repo_id] = repo
        self._save()
        return h.send_json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self, h, payload):
        self._require_write(h)
        repo_id = f"{payload.get('organization') or DEFAULT_USER}/{payload.get('name')}"
        if self.repos.pop(repo_id, None) is None:
            raise HubError(404, "Repository not found", code="RepoNotFound")
        self._save()
        return h.send_json(200, {})

    def _model_info(self, h, repo_id, rev, query):
        repo = self._get_repo(h, repo_id)
        sha = self._rev(repo, rev)
        commit = repo["commits"][sha]
        blobs = _truthy(query.get("blobs"))
        siblings = []
        for path, e in sorted(commit["files"].items()):
            sib = {"rfilename": path}
            if blobs:
                sib["size"] = e["size"]
                sib["blobId"] = self._entry_oid(e)
                if e["lfs"]:
                    sib["lfs"] = {"size": e["size"], "sha256": e["sha256"],
                                  "pointerSize": len(_lfs_pointer(e["sha256"], e["size"]))}
            siblings.append(sib)
        ns = repo_id.split("/")[0]
        return h.send_json(200, {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
            "author": ns, "sha": sha, "lastModified": commit["date"], "createdAt": repo["createdAt"],
            "private": repo["private"], "gated": False, "disabled": False, "downloads": 0, "likes": 0,
            "tags": [], "siblings": siblings, "spaces": [],
            "usedStorage": sum(e["size"] for e in commit["files"].values()),
        })

    @staticmethod
    def _entry_oid(e: dict) -> str:
        """Tree oid of a file entry: git blob sha1 of the bytes, or of the LFS pointer for LFS files."""
        return git_blob_sha1(_lfs_pointer(e["sha256"], e["size"])) if e["lfs"] else e["blob_sha1"]

    def _file_entry(self, path: str, e: dict) -> dict:
        entry = {"type": "file", "oid": self._entry_oid(e), "size": e["size"], "path": path}
        if e["lfs"]:
            entry["lfs"] = {"oid": e["sha256"], "size": e["size"],
                            "pointerSize": len(_lfs_pointer(e["sha256"], e["size"]))}
            if self.advertise_xet:
                entry["xetHash"] = _xet_hash(e["sha256"])
        return entry

    @staticmethod
    def _dirs(files: dict) -> set:
        dirs = set()
        for path in files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        return dirs

    def _dir_oid(self, files: dict, prefix: str) -> str:
        items = sorted(
            f"{p}:{self._entry_oid(e)}" for p, e in files.items() if p.startswith(prefix + "/")
        )
        return hashlib.sha1("\n".join(items).encode()).hexdigest() if items else _EMPTY_TREE

    def _tree(self, h, repo_id, rev, path, query):
        repo = self._get_repo(h, repo_id)
        files = repo["commits"][self._rev(repo, rev)]["files"]
        dirs = self._dirs(files)
        if path and path not in dirs:
            raise HubError(404, f"Entry not found: {path}", code="EntryNotFound",
                           headers={"X-Repo-Commit": self._rev(repo, rev)})
        recursive = _truthy(query.get("recursive"))
        prefix = path + "/" if path else ""
        out = []
        for d in sorted(dirs):
            if d.startswith(prefix) and (recursive or "/" not in d[len(prefix):]):
                out.append({"type": "directory", "oid": self._dir_oid(files, d), "path": d})
        for p, e in sorted(files.items()):
            if p.startswith(prefix) and (recursive or "/" not in p[len(prefix):]):
                out.append(self._file_entry(p, e))
        out.sort(key=lambda x: x["path"])
        return h.send_json(200, out)

    def _paths_info(self, h, repo_id, rev, body, content_type):
        repo = self._get_repo(h, repo_id)
        files = repo["commits"][self._rev(repo, rev)]["files"]
        if "json" in content_type:
            paths = _json(body).get("paths") or []
        else:
            paths = parse_qs(body.decode(), keep_blank_values=True).get("paths", [])
        paths = [paths] if isinstance(paths, str) else paths
        dirs = self._dirs(files)
        out = []
        for p in paths:
            p = p.strip("/")
            if p in files:
                out.append(self._file_entry(p, files[p]))
            elif p in dirs:
                out.append({"type": "directory", "oid": self._dir_oid(files, p), "path": p})
        return h.send_json(200, out)

    def _refs(self, h, repo_id, query):
        repo = self._get_repo(h, repo_id)
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s}
                    for b, s in sorted(repo["branches"].items()) if not b.startswith("refs/pr/")]
        tags = [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": s} for t, s in sorted(repo["tags"].items())]
        out = {"branches": branches, "tags": tags, "converts": []}
        if _truthy(query.get("include_prs")):
            out["pullRequests"] = [{"name": b[5:], "ref": b, "targetCommit": s}
                                   for b, s in sorted(repo["branches"].items()) if b.startswith("refs/pr/")]
        return h.send_json(200, out)

    def _commits(self, h, repo_id, rev):
        repo = self._get_repo(h, repo_id)
        sha = self._rev(repo, rev)
        out = []
        while sha is not None:
            c = repo["commits"][sha]
            out.append({"id": sha, "title": c["summary"], "message": c["description"], "date": c["date"],
                        "authors": [{"user": DEFAULT_USER}]})
            sha = c["parent"]
        return h.send_json(200, out)

    @staticmethod
    def _upload_mode(path: str, size: int, sample: bytes) -> str:
        if size >= LFS_THRESHOLD or path.lower().endswith(LFS_SUFFIXES) or b"\0" in sample:
            return "lfs"
        return "regular"

    def _preupload(self, h, repo_id, rev, payload, query):
        repo = self._get_repo(h, repo_id, write=True)
        files = repo["commits"][self._rev(repo, rev)]["files"]
        out = []
        for f in payload.get("files") or []:
            path = f["path"]
            sample = base64.b64decode(f.get("sample") or "")
            existing = files.get(path)
            oid = None
            if existing is not None:
                oid = existing["sha256"] if existing["lfs"] else existing["blob_sha1"]
            out.append({"path": path, "uploadMode": self._upload_mode(path, int(f.get("size") or 0), sample),
                        "shouldIgnore": False, "oid": oid})
        return h.send_json(200, {"files": out, "commitOid": self._rev(repo, rev)})

    def _lfs_batch(self, h, repo_id, payload):
        repo = self._get_repo(h, repo_id, write=True)
        if payload.get("operation") != "upload":
            raise HubError(422, "LocalHub only supports the LFS 'upload' operation")
        objects = []
        for obj in payload.get("objects") or []:
            oid, size = obj.get("oid"), obj.get("size")
            if not (isinstance(oid, str) and _SHA256_RE.match(oid) and isinstance(size, int) and size >= 0):
                objects.append({"oid": str(oid), "size": int(size or 0),
                                "error": {"code": 422, "message": "invalid oid or size"}})
                continue
            item = {"oid": oid, "size": size, "authenticated": True}
            if repo["lfs"].get(oid) != size:
                item["actions"] = {
                    "upload": {"href": f"{self.endpoint}/__lfs_upload__/{repo_id}/{oid}?size={size}"
                                       f"&key={self._upload_key}"},
                    "verify": {"href": f"{self.endpoint}/{repo_id}.git/info/lfs/objects/verify"},
                }
            objects.append(item)
        return h.send_json(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                           content_type="application/vnd.git-lfs+json")

    def _lfs_put(self, h, repo_id, oid, query, body):
        if (query.get("key") or [""])[0] != self._upload_key:
            raise HubError(403, "Invalid or missing upload key")
        size = int((query.get("size") or ["-1"])[0])
        if len(body) != size:
            raise HubError(400, f"Size mismatch: expected {size} bytes, got {len(body)}")
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, "sha256 of the uploaded content does not match the oid")
        self._write_object(body, oid)
        with self._lock:
            repo = self.repos.get(repo_id)
            if repo is None:
                raise HubError(404, "Repository not found", code="RepoNotFound")
            repo["lfs"][oid] = size
            self._save()
        return h.send_bytes(200, b"", {"ETag": f'"{hashlib.md5(body).hexdigest()}"'})

    def _lfs_verify(self, h, repo_id, payload):
        repo = self._get_repo(h, repo_id, write=True)
        oid, size = payload.get("oid"), payload.get("size")
        if repo["lfs"].get(oid) != size or not self._object_path(str(oid)).exists():
            raise HubError(404, f"LFS object {oid} (size {size}) not found")
        return h.send_json(200, {"success": True})

    def _commit(self, h, repo_id, rev, body, query):
        repo = self._get_repo(h, repo_id, write=True)
        try:
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HubError(400, f"Malformed ndjson commit payload: {e}") from None
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "Commit payload must start with a 'header' line")
        header = lines[0].get("value") or {}
        base_sha = self._rev(repo, rev)
        create_pr = _truthy(query.get("create_pr"))
        pr_num = None
        if create_pr:
            branch = None
        else:
            branch = rev[11:] if rev.startswith("refs/heads/") else rev
            if branch not in repo["branches"]:
                raise HubError(400, f"Invalid rev id: {rev} is not a branch; commits can only be made to branches")
        parent_commit = header.get("parentCommit")
        if parent_commit is not None and parent_commit != base_sha:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = {p: dict(e) for p, e in repo["commits"][base_sha]["files"].items()}
        pending_objects: list[tuple[bytes, str]] = []
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value") or {}
            path = str(value.get("path", "")).strip("/")
            if key == "file":
                enc = value.get("encoding", "base64")
                data = base64.b64decode(value.get("content", "")) if enc == "base64" else value.get("content", "").encode()
                if len(data) > LFS_THRESHOLD:
                    raise HubError(400, f"{path}: regular files must be smaller than 10 MiB; use LFS")
                sha256 = hashlib.sha256(data).hexdigest()
                pending_objects.append((data, sha256))
                files[path] = {"blob_sha1": git_blob_sha1(data), "sha256": sha256, "size": len(data), "lfs": False}
            elif key == "lfsFile":
                oid, size = value.get("oid"), value.get("size")
                if value.get("algo", "sha256") != "sha256" or repo["lfs"].get(oid) != size:
                    raise HubError(400, f"{path}: LFS object {oid} (size {size}) was not uploaded")
                data = self._read_object(oid)
                files[path] = {"blob_sha1": git_blob_sha1(data), "sha256": oid, "size": size, "lfs": True}
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
            elif key == "deletedFolder":
                doomed = [p for p in files if p.startswith(path + "/")] if path else list(files)
                if not doomed:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}", code="EntryNotFound")
                for p in doomed:
                    del files[p]
            else:
                raise HubError(400, f"Unsupported commit operation key: {key!r}")
        for data, sha256 in pending_objects:
            self._write_object(data, sha256)
        if create_pr:
            repo["prs"] += 1
            pr_num = repo["prs"]
            branch = f"refs/pr/{pr_num}"
            repo["branches"][branch] = base_sha
        sha = self._new_commit(repo, base_sha, files, header.get("summary") or "", header.get("description") or "")
        repo["branches"][branch] = sha
        self._save()
        out = {"success": True, "commitOid": sha, "commitUrl": f"{self.endpoint}/{repo_id}/commit/{sha}",
               "commitMessage": header.get("summary") or "", "commitDescription": header.get("description") or "",
               "pullRequestUrl": f"{self.endpoint}/{repo_id}/discussions/{pr_num}" if pr_num else None}
        return h.send_json(200, out)

    def _tag(self, h, repo_id, arg, method, payload):
        repo = self._get_repo(h, repo_id, write=True)
        if method == "DELETE":
            if repo["tags"].pop(arg, None) is None:
                raise HubError(404, f"Tag {arg} not found", code="RevisionNotFound")
        else:
            tag = payload.get("tag")
            if not tag or not isinstance(tag, str):
                raise HubError(400, "Missing 'tag' in payload")
            sha = self._rev(repo, arg)
            if tag in repo["tags"] or tag in repo["branches"]:
                raise HubError(409, f"Tag {tag} already exists")
            repo["tags"][tag] = sha
        self._save()
        return h.send_json(200, {})

    def _branch(self, h, repo_id, branch, method, payload):
        repo = self._get_repo(h, repo_id, write=True)
        if method == "DELETE":
            if branch == "main" or repo["branches"].pop(branch, None) is None:
                raise HubError(404 if branch != "main" else 403, f"Cannot delete branch {branch}",
                               code="RevisionNotFound" if branch != "main" else None)
        else:
            if branch in repo["branches"] or branch in repo["tags"]:
                raise HubError(409, f"Reference {branch} already exists")
            repo["branches"][branch] = self._rev(repo, payload.get("startingPoint") or "main")
        self._save()
        return h.send_json(200, {})

    def _resolve_file(self, h, repo_id, rev, path):
        with self._lock:
            repo = self._get_repo(h, repo_id)
            sha = self._rev(repo, rev)
            entry = repo["commits"][sha]["files"].get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", code="EntryNotFound", headers={"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if entry["lfs"]:
            headers["ETag"] = f'"{entry["sha256"]}"'
            headers["X-Linked-Etag"] = f'"{entry["sha256"]}"'
            headers["X-Linked-Size"] = str(entry["size"])
            if self.advertise_xet:
                headers["X-Xet-Hash"] = _xet_hash(entry["sha256"])
                headers["Link"] = f'<{self.endpoint}/api/models/{repo_id}/xet-read-token/{sha}>; rel="xet-auth"'
            if self._storage_server is not None:  # the real Hub sends LFS downloads to its CDN
                headers["Location"] = self._signed_url(entry["sha256"])
                return h.send_bytes(302, b"", headers)
        else:
            headers["ETag"] = f'"{entry["blob_sha1"]}"'
        return self._send_object(h, entry["sha256"], entry["size"], headers)

    # -- storage (CDN) server -----------------------------------------------------------------
    def _signature(self, sha256: str, expires: str) -> str:
        return hmac.new(self._upload_key.encode(), f"{sha256}:{expires}".encode(), hashlib.sha256).hexdigest()

    def _signed_url(self, sha256: str) -> str:
        expires = str(int(time.time()) + 3600)
        return f"{self.storage_endpoint}/objects/{sha256}?expires={expires}&signature={self._signature(sha256, expires)}"

    def _serve_storage(self, h: _Handler, raw_path: str, query: dict) -> None:
        segs = raw_path.split("/")[1:]
        if len(segs) != 2 or segs[0] != "objects" or not _SHA256_RE.match(segs[1]) or h.command not in ("GET", "HEAD"):
            raise HubError(404, f"Storage: no route for {h.command} {raw_path}")
        sha256 = segs[1]
        expires = (query.get("expires") or [""])[0]
        given = (query.get("signature") or [""])[0]
        if not hmac.compare_digest(given, self._signature(sha256, expires)) or int(expires or 0) < time.time():
            raise HubError(403, "Storage: invalid or expired signature")
        path = self._object_path(sha256)
        if not path.exists():
            raise HubError(404, "Storage: no such object")
        headers = {"ETag": f'"{sha256}"', "Accept-Ranges": "bytes"}
        return self._send_object(h, sha256, path.stat().st_size, headers)

    def _send_object(self, h: _Handler, sha256: str, size: int, headers: dict) -> None:
        start, end, status = 0, size - 1, 200
        rng = h.headers.get("Range")
        if rng:
            m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", rng)
            if m is None or (m.group(1) == "" and m.group(2) == ""):
                raise HubError(416, f"Unsupported Range: {rng}", headers={**headers, "Content-Range": f"bytes */{size}"})
            if m.group(1) == "":  # suffix: last n bytes
                start, end = max(size - int(m.group(2)), 0), size - 1
            else:
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            if start >= size or start > end:
                raise HubError(416, f"Range not satisfiable: {rng}",
                               headers={**headers, "Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1 if size else 0
        if h.command == "HEAD":
            return h.send_bytes(status, b"", headers, content_length=length)
        data = self._read_object(sha256)[start:end + 1]
        if self.corrupt and data:
            data = _flip(data)
        return h.send_bytes(status, data, headers)


def _flip(data: bytes) -> bytes:
    """Same length, different bytes: every 4096th byte from the first, and the last one."""
    if not data:
        return data
    buf = bytearray(data)
    for i in range(0, len(buf), 4096):
        buf[i] ^= 0xFF
    if (len(buf) - 1) % 4096:
        buf[-1] ^= 0xFF
    return bytes(buf)


def _xet_hash(sha256: str) -> str:
    """A stable stand-in for the Xet hash of a file (the real one is a merkle hash of its chunks)."""
    return hashlib.sha256(b"xet:" + sha256.encode()).hexdigest()


def _json(body: bytes) -> dict:
    if not body:
        return {}
    try:
        out = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HubError(400, f"Malformed JSON body: {e}") from None
    if not isinstance(out, dict):
        raise HubError(400, "JSON body must be an object")
    return out


def _truthy(values) -> bool:
    if not values:
        return False
    return str(values[0]).lower() in ("1", "true", "yes")

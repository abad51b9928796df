"""Exercise tests/hub_server.LocalHub with the REAL huggingface_hub client over real HTTP."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import pathlib
import socket
import time
import urllib.error
import urllib.request

import keras
import pytest

try:
    from .conftest_hub import HUB_TOKEN, hub_env, local_hub, local_hub_auth  # noqa: F401
    from .hub_server import LocalHub, git_blob_sha1
except ImportError:
    from conftest_hub import HUB_TOKEN, hub_env, local_hub, local_hub_auth  # noqa: F401
    from hub_server import LocalHub, git_blob_sha1

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

#: The Hub transport has no backend code (zoo.hub never builds a model): these tests run in the
#: default backend's suite only. A pulled folder is loaded by the loader every suite checks on the
#: released folders (tests/test_released_weights.py); tests/test_hub.py loads pulled models (TensorFlow suite).
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="backend-independent Hub transport: TensorFlow suite only"
)


REPO = "tester/demo"
BIG = 10 * 1024 * 1024 + 4099  # > 10 MB, not a multiple of 4096


def _make_folder(root: pathlib.Path) -> dict[str, bytes]:
    files = {
        "README.md": b"---\nlicense: mit\ntags: [keras]\n---\n# demo\n",
        "config.json": json.dumps({"arch": "resnet34", "classes": 10}).encode(),
        "model.safetensors": os.urandom(BIG),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return files


def _read_tree(folder: str | pathlib.Path) -> dict[str, bytes]:
    folder = pathlib.Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _raw(hub: LocalHub, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None):
    """One plain HTTP request (no client library): returns (status, headers, body)."""
    port = int(hub.endpoint.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture
def populated(local_hub_auth, tmp_path):
    """A hub with REPO holding two commits and a tag v1 on the first one."""
    hub = local_hub_auth
    api = HfApi(endpoint=hub.endpoint, token=HUB_TOKEN)
    api.create_repo(REPO)
    files = _make_folder(tmp_path / "upload")
    first = api.upload_folder(repo_id=REPO, folder_path=tmp_path / "upload", commit_message="first")
    api.create_tag(REPO, tag="v1", revision=first.oid)
    second = api.create_commit(
        REPO,
        operations=[
            CommitOperationAdd("extra/notes.txt", b"second commit\n"),
            CommitOperationAdd("config.json", b'{"arch": "resnet34", "classes": 11}'),
        ],
        commit_message="second",
    )
    return hub, api, files, first.oid, second.oid


# ---------------------------------------------------------------------------------------------
def test_create_repo_exist_ok_and_conflict(local_hub):
    api = HfApi(endpoint=local_hub.endpoint, token="anything")
    url = api.create_repo(REPO)
    assert url == f"{local_hub.endpoint}/{REPO}" and url.repo_id == REPO
    assert api.create_repo(REPO, exist_ok=True) == url
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(REPO)
    assert exc.value.response.status_code == 409
    assert api.create_repo("bare-name").repo_id == "tester/bare-name"  # default namespace = whoami name
    info = api.model_info(REPO)
    assert info.id == REPO and info.siblings == [] and len(info.sha) == 40  # initial empty commit
    assert api.whoami()["name"] == "tester"


def test_upload_download_roundtrip(populated, tmp_path):
    hub, api, files, first, second = populated
    assert first != second and len(first) == len(second) == 40

    # The LFS basic path was used for the big file, the regular path for the small ones.
    paths = [p for _, p in hub.requests]
    assert f"/{REPO}.git/info/lfs/objects/batch" in paths
    assert any(p.startswith("/__lfs_upload__/") for p in paths)
    assert f"/{REPO}.git/info/lfs/objects/verify" in paths
    assert not any("xet" in p for p in paths)
    tree = {f.path: f for f in api.list_repo_tree(REPO, revision=first, recursive=True)}
    assert set(tree) == set(files)
    assert tree["model.safetensors"].lfs.sha256 == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert tree["model.safetensors"].size == BIG
    assert tree["config.json"].lfs is None and tree["config.json"].blob_id == git_blob_sha1(files["config.json"])
    assert hub.file_bytes(REPO, "model.safetensors", first) == files["model.safetensors"]

    # Second commit is on top of the first; history, refs.
    assert [c.commit_id for c in api.list_repo_commits(REPO)][:2] == [second, first]
    assert api.model_info(REPO).sha == second
    refs = api.list_repo_refs(REPO)
    assert {(r.name, r.target_commit) for r in refs.branches} == {("main", second)}
    assert {(r.name, r.target_commit) for r in refs.tags} == {("v1", first)}
    assert "extra/notes.txt" in api.list_repo_files(REPO)

    # snapshot_download by branch, tag and full sha: bytes identical to what was committed.
    cache = tmp_path / "cache"
    at_main = _read_tree(snapshot_download(REPO, endpoint=hub.endpoint, cache_dir=cache))
    at_tag = _read_tree(snapshot_download(REPO, revision="v1", endpoint=hub.endpoint, cache_dir=cache))
    hub.reset_requests()
    at_sha = _read_tree(snapshot_download(REPO, revision=first, endpoint=hub.endpoint, cache_dir=cache))
    assert at_tag == files and at_sha == files
    assert not any("/revision/" in p for _, p in hub.requests)  # a full sha skips the revision lookup
    assert at_main == {**files, "extra/notes.txt": b"second commit\n",
                       "config.json": b'{"arch": "resnet34", "classes": 11}'}

    # hf_hub_download into a fresh cache, by tag
    path = hf_hub_download(REPO, "model.safetensors", revision="v1", endpoint=hub.endpoint,
                           cache_dir=tmp_path / "cache2")
    assert pathlib.Path(path).read_bytes() == files["model.safetensors"]


def test_unchanged_files_are_not_recommitted(populated, tmp_path):
    hub, api, files, first, second = populated
    info = api.upload_file(path_or_fileobj=files["model.safetensors"], path_in_repo="model.safetensors",
                           repo_id=REPO)
    assert info.oid == second  # preupload returned the remote oid: nothing changed, no new commit


def test_delete_and_create_pr(populated):
    hub, api, files, first, second = populated
    c = api.create_commit(REPO, operations=[CommitOperationDelete("extra/")], commit_message="rm folder")
    assert "extra/notes.txt" not in api.list_repo_files(REPO)
    with pytest.raises(RemoteEntryNotFoundError):
        api.delete_file("nope.txt", repo_id=REPO)
    pr = api.create_commit(REPO, operations=[CommitOperationAdd("pr.txt", b"pr")], commit_message="pr",
                           create_pr=True)
    assert pr.pr_revision == "refs/pr/1" and pr.pr_num == 1
    assert "pr.txt" in api.list_repo_files(REPO, revision="refs/pr/1")
    assert "pr.txt" not in api.list_repo_files(REPO)
    assert api.model_info(REPO).sha == c.oid
    refs = api.list_repo_refs(REPO, include_pull_requests=True)
    assert [r.ref for r in refs.pull_requests] == ["refs/pr/1"]


def test_download_errors_are_typed(populated, tmp_path):
    hub, api, files, first, second = populated
    kw = dict(endpoint=hub.endpoint, cache_dir=tmp_path / "c")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/missing", "config.json", **kw)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="no-such-branch", **kw)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="0" * 40, **kw)
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "missing.bin", **kw)
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("tester/missing", **kw)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO, revision="no-such-tag", **kw)


def test_writes_require_token(populated, tmp_path):
    hub, api, files, first, second = populated
    for token in (False, "wrong-token"):
        anon = HfApi(endpoint=hub.endpoint, token=token)
        with pytest.raises(HfHubHTTPError) as exc:
            anon.create_repo("tester/other")
        assert exc.value.response.status_code == 401
        with pytest.raises(HfHubHTTPError) as exc:
            anon.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=REPO)
        assert exc.value.response.status_code == 401
        with pytest.raises(HfHubHTTPError) as exc:
            anon.create_tag(REPO, tag="v2")
        assert exc.value.response.status_code == 401
        if token:  # the client refuses whoami() without a token before sending anything
            with pytest.raises(HfHubHTTPError) as exc:
                anon.whoami()
            assert exc.value.response.status_code == 401
    # reads of a public repo stay open
    assert HfApi(endpoint=hub.endpoint, token=False).model_info(REPO).sha == second
    assert api.whoami()["auth"]["accessToken"]["role"] == "write"


def test_private_repo_reads_need_token(local_hub_auth, tmp_path):
    hub = local_hub_auth
    api = HfApi(endpoint=hub.endpoint, token=HUB_TOKEN)
    api.create_repo("tester/secret", private=True)
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="tester/secret")
    assert api.model_info("tester/secret").private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.endpoint, token=False).model_info("tester/secret")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/secret", "config.json", endpoint=hub.endpoint, cache_dir=tmp_path / "c", token=False)
    path = hf_hub_download("tester/secret", "config.json", endpoint=hub.endpoint, cache_dir=tmp_path / "c",
                           token=HUB_TOKEN)
    assert pathlib.Path(path).read_bytes() == b"{}"


def test_stale_parent_commit_is_refused(populated):
    hub, api, files, first, second = populated
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit(REPO, operations=[CommitOperationAdd("x.txt", b"x")], commit_message="stale",
                          parent_commit=first)
    assert exc.value.response.status_code == 412
    ok = api.create_commit(REPO, operations=[CommitOperationAdd("x.txt", b"x")], commit_message="fresh",
                           parent_commit=second)
    assert api.model_info(REPO).sha == ok.oid


def test_corrupt_bytes_go_unnoticed_by_the_client(populated, tmp_path):
    """The 2.4 client checks only the size of a download, not its sha256: corruption lands in the cache."""
    hub, api, files, first, second = populated
    hub.corrupt = True
    path = hf_hub_download(REPO, "model.safetensors", revision=first, endpoint=hub.endpoint,
                           cache_dir=tmp_path / "c")
    data = pathlib.Path(path).read_bytes()
    assert len(data) == BIG and data != files["model.safetensors"]
    # ... the cache even names the blob after the expected sha256, so only re-hashing detects it.
    assert pathlib.Path(path).resolve().name == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert hashlib.sha256(data).hexdigest() != pathlib.Path(path).resolve().name
    small = pathlib.Path(hf_hub_download(REPO, "config.json", revision=first, endpoint=hub.endpoint,
                                         cache_dir=tmp_path / "c")).read_bytes()
    assert len(small) == len(files["config.json"]) and small != files["config.json"]


def test_resolve_headers_and_ranges(populated):
    hub, api, files, first, second = populated
    big = files["model.safetensors"]
    status, h, body = _raw(hub, "HEAD", f"/{REPO}/resolve/v1/model.safetensors")
    sha256 = hashlib.sha256(big).hexdigest()
    assert status == 200 and body == b""
    assert h["x-repo-commit"] == first and h["etag"] == f'"{sha256}"' and h["x-linked-etag"] == f'"{sha256}"'
    assert h["x-linked-size"] == str(BIG) and h["content-length"] == str(BIG) and h["accept-ranges"] == "bytes"
    assert not any(k.startswith("x-xet") for k in h)
    status, h, body = _raw(hub, "HEAD", f"/{REPO}/resolve/main/config.json")
    assert h["etag"] == '"%s"' % git_blob_sha1(b'{"arch": "resnet34", "classes": 11}')
    assert "x-linked-etag" not in h and h["x-repo-commit"] == second

    status, h, body = _raw(hub, "GET", f"/{REPO}/resolve/{first}/model.safetensors", headers={"Range": "bytes=100-"})
    assert status == 206 and body == big[100:] and h["content-range"] == f"bytes 100-{BIG - 1}/{BIG}"
    status, h, body = _raw(hub, "GET", f"/{REPO}/resolve/{first}/model.safetensors", headers={"Range": "bytes=5-9"})
    assert status == 206 and body == big[5:10] and h["content-length"] == "5"
    status, h, body = _raw(hub, "GET", f"/{REPO}/resolve/{first}/model.safetensors",
                           headers={"Range": f"bytes={BIG}-"})
    assert status == 416

    status, h, _ = _raw(hub, "HEAD", f"/{REPO}/resolve/main/missing.bin")
    assert status == 404 and h["x-error-code"] == "EntryNotFound" and h["x-repo-commit"] == second
    status, h, _ = _raw(hub, "GET", f"/{REPO}/resolve/nope/config.json")
    assert status == 404 and h["x-error-code"] == "RevisionNotFound"
    status, h, _ = _raw(hub, "GET", "/tester/missing/resolve/main/config.json")
    assert status == 404 and h["x-error-code"] == "RepoNotFound"
    status, h, body = _raw(hub, "GET", f"/api/models/{REPO}/xet-write-token/main")
    assert status == 501 and "error" in json.loads(body)


def test_chunked_request_body(local_hub_auth):
    hub = local_hub_auth
    port = int(hub.endpoint.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    payload = json.dumps({"name": "chunky", "organization": "tester", "type": "model"}).encode()
    conn.request("POST", "/api/repos/create", body=iter([payload[:7], payload[7:]]),
                 headers={"Authorization": f"Bearer {HUB_TOKEN}", "Content-Type": "application/json"},
                 encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["url"].endswith("/tester/chunky")
    # the keep-alive connection is still in sync after a chunked body
    conn.request("GET", "/api/models/tester/chunky")
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["id"] == "tester/chunky"
    conn.close()
    assert ("POST", "/api/repos/create") in hub.requests


def test_stop_and_restart_on_same_root(hub_env, tmp_path):
    root = tmp_path / "hubroot"
    with LocalHub(root) as hub:
        api = HfApi(endpoint=hub.endpoint)
        api.create_repo(REPO)
        sha = api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id=REPO).oid
        endpoint = hub.endpoint
    with pytest.raises((urllib.error.URLError, ConnectionError, socket.timeout)):
        urllib.request.urlopen(f"{endpoint}/api/models/{REPO}", timeout=2)
    with LocalHub(root) as hub2:  # state.json + objects/ persist
        path = hf_hub_download(REPO, "a.txt", revision=sha, endpoint=hub2.endpoint, cache_dir=tmp_path / "c")
        assert pathlib.Path(path).read_bytes() == b"hello"


def test_branches_paths_info_and_delete_repo(populated):
    hub, api, files, first, second = populated
    api.create_branch(REPO, branch="dev", revision=first)
    assert api.model_info(REPO, revision="dev").sha == first
    assert api.file_exists(REPO, "model.safetensors", revision="dev")
    assert not api.file_exists(REPO, "extra/notes.txt", revision="dev")
    infos = {i.path: i for i in api.get_paths_info(REPO, ["config.json", "extra", "nope"], revision="main")}
    assert set(infos) == {"config.json", "extra"} and infos["config.json"].size == 35
    api.delete_branch(REPO, branch="dev")
    api.delete_tag(REPO, tag="v1")
    refs = api.list_repo_refs(REPO)
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []
    assert api.repo_exists(REPO)
    api.delete_repo(REPO)
    assert not api.repo_exists(REPO)


# -- faults, request log, storage host, namespaces, Xet announcements ---------------------------
def test_faults_match_by_route_method_and_count(populated):
    hub, api, files, first, second = populated
    hub.reset_requests()
    fault = hub.fail(r"/resolve/main/config\.json$", method="GET", status=503, headers={"Retry-After": "7"}, times=2)
    status, h, body = _raw(hub, "HEAD", f"/{REPO}/resolve/main/config.json")
    assert status == 200 and fault.hits == 0  # another method
    for _ in range(2):
        status, h, body = _raw(hub, "GET", f"/{REPO}/resolve/main/config.json")
        assert status == 503 and h["retry-after"] == "7" and json.loads(body)["error"] == "Injected fault"
    status, h, body = _raw(hub, "GET", f"/{REPO}/resolve/main/config.json")
    assert status == 200 and fault.hits == 2  # used up
    forever = hub.fail(r"/api/models/", status=404, code="RepoNotFound", times=None)
    for _ in range(3):
        status, h, _ = _raw(hub, "GET", f"/api/models/{REPO}")
        assert status == 404 and h["x-error-code"] == "RepoNotFound"
    hub.clear_faults()
    assert _raw(hub, "GET", f"/api/models/{REPO}")[0] == 200 and forever.hits == 3
    log = hub.records(route=r"config\.json$")
    assert [(r.method, r.status, r.fault is fault) for r in log] == [
        ("HEAD", 200, False), ("GET", 503, True), ("GET", 503, True), ("GET", 200, False)]
    assert all(r.end >= r.start and r.header("host") for r in log)


def test_faults_shape_bodies_delay_drop_throttle_corrupt(populated):
    hub, api, files, first, second = populated
    big = files["model.safetensors"]
    path = f"/{REPO}/resolve/{first}/model.safetensors"
    hub.fail(r"model\.safetensors$", method="GET", drop_after=1000)
    port = int(hub.endpoint.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200 and int(resp.getheader("Content-Length")) == BIG
    with pytest.raises(http.client.IncompleteRead) as cut:
        resp.read()
    assert len(cut.value.partial) == 1000
    conn.close()
    hub.fail(r"model\.safetensors$", method="GET", corrupt=True)
    status, _, body = _raw(hub, "GET", path)
    assert status == 200 and len(body) == BIG and body != big
    hub.fail(r"model\.safetensors$", method="GET", throttle=(BIG // 4 + 1, 0.2))
    status, _, body = _raw(hub, "GET", path)
    assert body == big
    throttled = hub.records("GET", r"model\.safetensors$")[-1]
    assert throttled.end - throttled.start >= 0.6 and throttled.sent == BIG
    hub.fail(r"config\.json$", method="HEAD", delay=0.5)
    start = time.monotonic()
    _raw(hub, "HEAD", f"/{REPO}/resolve/main/config.json")
    assert time.monotonic() - start >= 0.5


def test_storage_host_serves_signed_redirects_only(local_hub_auth, tmp_path_factory, tmp_path):
    with LocalHub(tmp_path_factory.mktemp("stored"), token=HUB_TOKEN, storage=True) as hub:
        api = HfApi(endpoint=hub.endpoint, token=HUB_TOKEN)
        api.create_repo(REPO)
        files = _make_folder(tmp_path / "upload")
        sha = api.upload_folder(repo_id=REPO, folder_path=tmp_path / "upload").oid
        sha256 = hashlib.sha256(files["model.safetensors"]).hexdigest()
        status, h, _ = _raw(hub, "HEAD", f"/{REPO}/resolve/main/model.safetensors")
        assert status == 302 and h["location"].startswith(f"{hub.storage_endpoint}/objects/{sha256}?")
        assert h["x-repo-commit"] == sha and h["x-linked-etag"] == f'"{sha256}"' and h["x-linked-size"] == str(BIG)
        location = h["location"][len(hub.storage_endpoint):]
        storage = LocalHub.__new__(LocalHub)
        storage.endpoint = hub.storage_endpoint
        status, h, body = _raw(storage, "GET", location, headers={"Range": "bytes=0-9"})
        assert status == 206 and body == files["model.safetensors"][:10]
        status, _, _ = _raw(storage, "GET", location.replace("signature=", "signature=0"))
        assert status == 403
        assert _raw(hub, "GET", f"/{REPO}/resolve/main/config.json")[0] == 200  # small files: in place
        path = hf_hub_download(REPO, "model.safetensors", endpoint=hub.endpoint, cache_dir=tmp_path / "c",
                               token=HUB_TOKEN)
        assert pathlib.Path(path).read_bytes() == files["model.safetensors"]
        got = [r for r in hub.records(server="storage") if r.status == 200]
        assert got and all(r.header("Authorization") is None for r in got)


def test_namespaces_limit_writes_to_own_namespaces(local_hub_auth):
    hub = local_hub_auth
    api = HfApi(endpoint=hub.endpoint, token=HUB_TOKEN)
    api.create_repo("other/shared")
    hub.namespaces = {"tester"}
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("other/new")
    assert exc.value.response.status_code == 403 and "namespace" in str(exc.value)
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="other/shared")
    assert exc.value.response.status_code == 403
    assert api.model_info("other/shared").id == "other/shared"  # reads stay open
    api.create_repo("tester/mine")


def test_xet_announcements_send_a_xet_client_to_the_missing_cas(populated, tmp_path, monkeypatch):
    from huggingface_hub import constants

    hub, api, files, first, second = populated
    hub.advertise_xet = True
    status, h, _ = _raw(hub, "HEAD", f"/{REPO}/resolve/{first}/model.safetensors")
    assert len(h["x-xet-hash"]) == 64 and 'rel="xet-auth"' in h["link"] and "/xet-read-token/" in h["link"]
    tree = {f.path: f for f in api.list_repo_tree(REPO, revision=first, recursive=True)}
    assert tree["model.safetensors"].xet_hash == h["x-xet-hash"] and tree["config.json"].xet_hash is None
    path = hf_hub_download(REPO, "model.safetensors", revision=first, endpoint=hub.endpoint, cache_dir=tmp_path / "a")
    assert pathlib.Path(path).read_bytes() == files["model.safetensors"]  # Xet off: plain HTTP works
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)  # Xet on: the client goes for the CAS
    with pytest.raises(Exception):
        hf_hub_download(REPO, "model.safetensors", revision=first, endpoint=hub.endpoint, cache_dir=tmp_path / "b")
    assert any("/xet-read-token/" in r.path for r in hub.log)

"""Bad inputs and the real Hub's faults, served by tests/hub_server.LocalHub to the real client.

Every fault is injected per test (``hub.fail``) and measured on the server side (``hub.log``:
statuses, headers received, timestamps), so each test shows what zoo did, not only that it
ended well.
"""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import ROOT, predict, sample_batch
from conftest_hub import HUB_TOKEN, hub_env, local_hub, local_hub_auth  # noqa: F401
from hub_server import LocalHub

import zoo
from zoo.format import save_folder, sha256_of
from zoo.hub import HubAuthError, HubNotFoundError, HubUnavailableError, IntegrityError, InvalidHandleError

#: The Hub transport has no backend code (zoo.hub never builds a model): these tests run in the
#: default backend's suite only. A pulled folder is loaded by the loader every suite checks on the
#: released folders (tests/test_released_weights.py); tests/test_hub.py loads pulled models (TensorFlow suite).
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="backend-independent Hub transport: TensorFlow suite only"
)

WEIGHTS = r"/model\.safetensors$"
BRANCH_LOOKUP = r"^/api/models/tester/cnn/revision/main$"


@pytest.fixture
def pushed(local_hub, hub_env, monkeypatch):
    """A hub holding tester/cnn (one push), HF_ENDPOINT pointing at it, an empty cache, no requests yet."""
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    model = zoo.create("cnn")
    sha = zoo.push(model, "tester/cnn")
    local_hub.reset_requests()
    return local_hub, model, sha


def _same(a, b):
    keras.tree.map_structure(np.testing.assert_array_equal, a, b)


def _check_loads(handle, model):
    """The handle loads weights identical to ``model``'s, and the same predictions."""
    loaded = zoo.load(handle)
    for a, b in zip(loaded.weights, model.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    x = sample_batch(model)
    _same(predict(loaded, x), predict(model, x))


def _snapshot(cache, sha):
    return Path(cache) / "models--tester--cnn" / "snapshots" / sha


# -- bad inputs ----------------------------------------------------------------------------------
BAD_HANDLES = [
    "hf://../etc", "hf://a/b/c", "hf://a/..", "hf://../../x/y", "hf:///etc/passwd", "hf://a/b@../../x",
    "hf://a/b@", "hf://a/b@main branch", "hf://-a/b", "hf://a--b/c", "hf://a/b\n", "hf://a/" + "b" * 96, "hf://me/cnn.git",
]


@pytest.mark.parametrize("handle", BAD_HANDLES)
def test_bad_handles_are_refused_before_any_request(local_hub, monkeypatch, handle):
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    with pytest.raises(InvalidHandleError, match=re.escape(f"Received: handle={handle!r}")) as error:
        zoo.load(handle)
    assert isinstance(error.value, ValueError)
    assert local_hub.requests == []


@pytest.mark.parametrize("repo_id", ["../x", "a/b/c", "a/..", "a", "", "a/b.", "./a", None, "me/cnn.git"])
def test_bad_repo_ids_are_refused_by_pull_and_push(local_hub, monkeypatch, repo_id):
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    with pytest.raises(InvalidHandleError, match=re.escape(f"Received: repo_id={repo_id!r}")):
        zoo.pull(repo_id)
    with pytest.raises(InvalidHandleError, match=re.escape(f"Received: repo_id={repo_id!r}")):
        zoo.push(zoo.create("cnn"), repo_id)
    with pytest.raises(InvalidHandleError, match=re.escape("Received: revision='../main'")):
        zoo.pull("tester/cnn", revision="../main")
    assert local_hub.requests == []


def test_a_cache_dir_that_is_a_file_is_refused_before_any_request(local_hub, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    (tmp_path / "cache").write_text("not a folder")
    with pytest.raises(ValueError, match=r"this is a file\. Received: cache_dir="):
        zoo.pull("tester/cnn", cache_dir=tmp_path / "cache")
    assert local_hub.requests == []


def test_hf_handles_never_read_local_folders(local_hub, monkeypatch, tmp_path):
    """``hf://`` means the Hub: no relative path climbs to a local folder, no repo id is shadowed by one."""
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    model = zoo.create("cnn")
    save_folder(model, tmp_path / "x")
    save_folder(model, tmp_path / "tester" / "cnn")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    with pytest.raises(InvalidHandleError, match="Received: handle='hf://../x'"):
        zoo.load("hf://../x")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HubNotFoundError, match="Repository not found: 'tester/cnn'.*A local folder 'tester/cnn' exists"):
        zoo.load("hf://tester/cnn")
    assert local_hub.requests == [("GET", "/api/models/tester/cnn/revision/main")]
    assert zoo.pull(tmp_path / "x") == tmp_path / "x"  # a path object is a local copy of a repo


# -- auth -------------------------------------------------------------------------------------------
def test_push_to_another_namespace_is_forbidden(local_hub_auth, monkeypatch):
    from huggingface_hub import HfApi

    hub = local_hub_auth
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    hub.namespaces = {"tester"}
    model = zoo.create("cnn")
    with pytest.raises(HubAuthError, match=r"write to 'other/cnn' \(POST /api/repos/create -> HTTP 403\)"
                                           r".*namespace 'other'.*Received: repo_id='other/cnn'"):
        zoo.push(model, "other/cnn", token=HUB_TOKEN)
    assert "other/cnn" not in hub.repos
    hub.namespaces = None  # the repo exists (made by a member of 'other'); this token still may not write
    HfApi(endpoint=hub.endpoint, token=HUB_TOKEN).create_repo("other/cnn")
    hub.namespaces = {"tester"}
    with pytest.raises(HubAuthError, match=r"HTTP 403\).*no write access to the namespace 'other'"):
        zoo.push(model, "other/cnn", token=HUB_TOKEN)
    assert len(hub.repos["other/cnn"]["commits"]) == 1  # the initial commit only
    assert len(zoo.push(model, "tester/cnn", token=HUB_TOKEN)) == 40


def test_403_on_a_download_is_an_auth_error_not_offline(pushed):
    hub, model, sha = pushed
    hub.fail(r"/resolve/", status=403, times=None, message="Access to model tester/cnn is restricted.")
    with pytest.raises(HubAuthError, match=r"forbids this token to read 'tester/cnn'.*-> HTTP 403\)") as error:
        zoo.load(f"hf://tester/cnn@{sha}")
    assert "not reachable" not in str(error.value)
    hub.clear_faults()
    hub.fail(r"/resolve/", status=403, code="GatedRepo", times=None, message="Access to model tester/cnn is gated.")
    with pytest.raises(HubAuthError, match="'tester/cnn' on .* is gated: request access"):
        zoo.load(f"hf://tester/cnn@{sha}")


def test_a_private_repo_without_a_token_is_not_found(local_hub_auth, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", local_hub_auth.endpoint)
    model = zoo.create("cnn")
    sha = zoo.push(model, "tester/secret", private=True, token=HUB_TOKEN)
    with pytest.raises(HubNotFoundError, match="Repository not found: 'tester/secret'.*pass a token"):
        zoo.load(f"hf://tester/secret@{sha}")
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    _check_loads(f"hf://tester/secret@{sha}", model)


def test_push_to_a_missing_branch_says_so(pushed):
    hub, model, sha = pushed
    with pytest.raises(HubNotFoundError, match="Cannot push to 'tester/cnn': the branch 'dev' does not exist"):
        zoo.push(model, "tester/cnn", revision="dev")
    assert hub.head("tester/cnn") == sha


def test_a_file_that_matches_the_hub_but_not_its_record_is_refused(pushed):
    from zoo.registry import FileRecord

    hub, model, sha = pushed
    size = len(hub.file_bytes("tester/cnn", "model.safetensors", sha))
    with pytest.raises(IntegrityError, match=r"'model.safetensors' of 'tester/cnn'.*expected sha256 0{64} \(recorded\), "
                                             r"the Hub serves sha256 .*does not match its record"):
        zoo.pull("tester/cnn", revision=sha, records=[FileRecord("model.safetensors", "0" * 64, size)])
    assert len(hub.records("GET", WEIGHTS)) == 1  # downloading again cannot help: not retried


def test_a_repo_without_weight_hashes_is_not_loaded_unverified(pushed, tmp_path):
    from huggingface_hub import HfApi

    hub, model, sha = pushed
    api = HfApi(endpoint=hub.endpoint)
    api.delete_file("metadata.json", repo_id="tester/cnn")  # weights left, their hashes gone
    with pytest.raises(IntegrityError, match="records no weight files with their sha256.*weights=None"):
        zoo.load("hf://tester/cnn")
    assert not hub.records("GET", WEIGHTS)
    assert zoo.load("hf://tester/cnn", weights=None).name  # the architecture alone still loads


# -- 429, 5xx ---------------------------------------------------------------------------------------
def test_429_with_retry_after_on_a_download_is_waited_for(pushed):
    hub, model, sha = pushed
    hub.fail(WEIGHTS, method="GET", status=429, headers={"Retry-After": "1"})
    _check_loads(f"hf://tester/cnn@{sha}", model)
    first, second = hub.records("GET", WEIGHTS)
    assert (first.status, second.status) == (429, 200)
    assert second.start - first.end >= 1.0  # the client waited as asked (1 s, +1 s of its own)


def test_429_with_retry_after_on_the_branch_lookup_is_retried_after_the_wait(pushed):
    hub, model, sha = pushed
    hub.fail(BRANCH_LOOKUP, status=429, headers={"Retry-After": "1"})
    _check_loads("hf://tester/cnn", model)
    first, second = hub.records("GET", BRANCH_LOOKUP)
    assert (first.status, second.status) == (429, 200)
    assert second.start - first.end >= 1.0  # zoo's retry waited the Retry-After


@pytest.mark.parametrize("status, headers, waits", [
    (429, {"Retry-After": "0"}, 0.0), (500, {}, 0.6), (502, {}, 0.6), (503, {}, 0.6), (504, {}, 0.6),
])
def test_persistent_429_and_5xx_give_a_clear_error_after_bounded_retries(pushed, status, headers, waits):
    hub, model, sha = pushed
    hub.fail(BRANCH_LOOKUP, status=status, headers=headers, times=None)
    with pytest.raises(HubUnavailableError, match=rf"GET /api/models/tester/cnn/revision/main -> HTTP {status}.*"
                                                  r"\(3 tries\).*Received: repo_id='tester/cnn'"):
        zoo.pull("tester/cnn", retries=2, retry_wait=0.2)
    tries = hub.records("GET", BRANCH_LOOKUP)
    assert len(tries) == 3  # retries=2: bounded
    if waits:  # 0.2 s, then 0.4 s (a Retry-After of 0 names no wait)
        assert tries[2].start - tries[0].end >= waits
    hub.reset_requests()
    with pytest.raises(HubUnavailableError, match=rf"HTTP {status}(, Retry-After: 0 s)?\)"):
        zoo.pull("tester/cnn", retries=0)
    assert len(hub.records("GET", BRANCH_LOOKUP)) == 1


def test_a_retry_after_beyond_the_limit_is_not_waited_for(pushed):
    hub, model, sha = pushed
    hub.fail(BRANCH_LOOKUP, status=429, headers={"Retry-After": "3600"}, times=None)
    with pytest.raises(HubUnavailableError, match=r"rate-limited.*HTTP 429, Retry-After: 3600 s\)"):
        zoo.load("hf://tester/cnn")
    assert len(hub.records("GET", BRANCH_LOOKUP)) == 1  # no second try: the hour was not waited for


@pytest.mark.parametrize("status", [500, 503])
def test_a_5xx_answer_to_a_download_is_retried(pushed, status):
    hub, model, sha = pushed
    hub.fail(WEIGHTS, method="GET", status=status)
    _check_loads(f"hf://tester/cnn@{sha}", model)
    assert [r.status for r in hub.records("GET", WEIGHTS)] == [status, 200]


def test_persistent_5xx_on_a_download_leaves_nothing_in_the_cache(pushed, hub_env):
    hub, model, sha = pushed
    hub.fail(WEIGHTS, method="GET", status=503, times=None)
    with pytest.raises(HubUnavailableError, match=rf"GET /tester/cnn/resolve/{sha}/model.safetensors -> HTTP 503 "
                                                  r"\(2 tries\)"):
        zoo.pull("tester/cnn", revision=sha, retries=1, retry_wait=0)
    assert not (_snapshot(hub_env, sha) / "model.safetensors").exists()
    hub.clear_faults()
    _check_loads(f"hf://tester/cnn@{sha}", model)


@pytest.mark.parametrize("status, headers, times", [(429, {"Retry-After": "1"}, 1), (503, {}, 1), (503, {}, None)])
def test_a_commit_answered_429_or_5xx_is_retried_by_push(pushed, status, headers, times):
    """The client sends the commit once; zoo retries it (waiting a Retry-After), bounded."""
    hub, model, sha = pushed
    commit = r"^/api/models/tester/cnn/commit/main$"
    hub.fail(commit, method="POST", status=status, headers=headers, times=times)
    new = zoo.create("cnn")
    if times is None:
        with pytest.raises(HubUnavailableError, match=r"POST /api/models/tester/cnn/commit/main -> HTTP 503 "
                                                      r"\(2 tries\).*Nothing is half-committed"):
            zoo.push(new, "tester/cnn", retries=1, retry_wait=0)
        assert hub.head("tester/cnn") == sha and len(hub.records("POST", commit)) == 2
        return
    pushed_sha = zoo.push(new, "tester/cnn")
    first, second = hub.records("POST", commit)
    assert (first.status, second.status) == (status, 200) and hub.head("tester/cnn") == pushed_sha
    assert second.start - first.end >= (1.0 if status == 429 else 0.9)  # Retry-After, else retry_wait=1
    _check_loads(f"hf://tester/cnn@{pushed_sha}", new)


# -- dropped connections, slow answers --------------------------------------------------------------
@pytest.mark.parametrize("corrupt_next", [False, True])
def test_a_connection_dropped_mid_body_is_resumed_or_restarted_and_verified(pushed, hub_env, corrupt_next):
    """huggingface_hub 2.4 writes downloads in 10 MB chunks: below that, a cut download restarts at 0."""
    hub, model, sha = pushed
    hub.fail(WEIGHTS, method="GET", drop_after=1_000_000)
    if corrupt_next:  # ... and the bytes of the next try are damaged: the hash check must catch it
        hub.fail(WEIGHTS, method="GET", corrupt=True)
    _check_loads(f"hf://tester/cnn@{sha}", model)
    size = len(hub.file_bytes("tester/cnn", "model.safetensors", sha))
    first, second = hub.records("GET", WEIGHTS)[:2]
    assert first.sent == 1_000_000 and first.header("Range") is None
    if second.header("Range") is None:  # restarted
        assert second.status == 200 and second.sent == size
    else:  # resumed
        resumed_at = int(re.fullmatch(r"bytes=(\d+)-", second.header("Range")).group(1))
        assert 0 < resumed_at <= 1_000_000 and second.status == 206
    assert len(hub.records("GET", WEIGHTS)) == (3 if corrupt_next else 2)  # a bad copy is fetched again
    weights = _snapshot(hub_env, sha) / "model.safetensors"
    assert sha256_of(weights) == hashlib.sha256(hub.file_bytes("tester/cnn", "model.safetensors", sha)).hexdigest()


def _sent_before_answer(retry, first) -> bool:
    """Whether ``retry`` reached the server while ``first`` was still unanswered: an ordering of
    the server's own events, which holds however slow the machine is (no wall-clock bound)."""
    return first.end is None or retry.start < first.end


def test_a_metadata_answer_slower_than_the_timeout_fails_clearly_and_soon(pushed, monkeypatch):
    from huggingface_hub import constants

    hub, model, sha = pushed
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 1)
    hub.fail(BRANCH_LOOKUP, delay=8, times=None)
    with pytest.raises(HubUnavailableError, match=r"did not answer in time.*ReadTimeout.*\(2 tries\).*"
                                                  r"HF_HUB_ETAG_TIMEOUT=1 s"):
        zoo.pull("tester/cnn", retries=1, retry_wait=0)
    first, second = hub.records("GET", BRANCH_LOOKUP, settled=False)
    assert _sent_before_answer(second, first)  # the first try was given up before the server's 8 s answer


@pytest.mark.parametrize("method, route, timeout", [
    ("GET", WEIGHTS, "HF_HUB_DOWNLOAD_TIMEOUT"),
    ("HEAD", r"/config\.json$", "HF_HUB_ETAG_TIMEOUT"),
])
def test_a_file_answer_slower_than_the_timeout_is_retried(pushed, monkeypatch, method, route, timeout):
    from huggingface_hub import constants

    hub, model, sha = pushed
    monkeypatch.setattr(constants, timeout, 1)
    hub.fail(route, method=method, delay=4)
    _check_loads(f"hf://tester/cnn@{sha}", model)
    first, second = hub.records(method, route, settled=False)[:2]
    assert second.start - first.start >= 0.9  # the client waited out its 1 s timeout ...
    assert _sent_before_answer(second, first)  # ... and gave up before the server's 4 s answer


# -- redirects to a storage host --------------------------------------------------------------------
@pytest.mark.parametrize("xet", [False, True], ids=["lfs", "xet-announced"])
def test_downloads_redirected_to_a_storage_host_do_not_carry_the_token(tmp_path_factory, hub_env, monkeypatch, xet):
    with LocalHub(tmp_path_factory.mktemp("hub"), token=HUB_TOKEN, storage=True) as hub:
        hub.advertise_xet = xet
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
        model = zoo.create("cnn")
        sha = zoo.push(model, "tester/cnn", private=True)
        hub.reset_requests()
        _check_loads(f"hf://tester/cnn@{sha}", model)
        weights_sha256 = hashlib.sha256(hub.file_bytes("tester/cnn", "model.safetensors", sha)).hexdigest()
        stored = hub.records(server="storage")
        assert [(r.method, r.path, r.status) for r in stored] == [("GET", f"/objects/{weights_sha256}", 200)]
        assert all(r.header("Authorization") is None for r in stored)  # the token stayed on the Hub
        resolves = hub.records(route=WEIGHTS)
        assert resolves and {r.status for r in resolves} == {302}
        assert all(r.header("Authorization") == f"Bearer {HUB_TOKEN}" for r in resolves)  # ... and was sent there
        assert not any("/xet-" in r.path for r in hub.log)
    assert hub.errors == []


# -- Xet ----------------------------------------------------------------------------------------------
_XET_SCRIPT = """
import os, sys
assert "HF_HUB_DISABLE_XET" not in os.environ
from huggingface_hub import HfApi, constants
from huggingface_hub.utils._runtime import is_xet_available
import hf_xet  # installed: the client takes the Xet path for every LFS file it uploads or downloads
assert is_xet_available() and constants.HF_HUB_DISABLE_XET is False
import numpy as np, keras, zoo
model = zoo.create("cnn")
sha = zoo.push(model, "tester/cnn")
assert constants.HF_HUB_DISABLE_XET is False  # the user's setting is back after the push
loaded = zoo.load(f"hf://tester/cnn@{sha}")
for a, b in zip(model.weights, loaded.weights):
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
assert constants.HF_HUB_DISABLE_XET is False and is_xet_available()
try:  # control: the plain client, with the same setting, does take the Xet path (and this hub has no CAS)
    HfApi().upload_file(path_or_fileobj=b"\\0" * 1000, path_in_repo="x.bin", repo_id="tester/cnn")
except Exception as error:
    print("control failed as expected:", type(error).__name__)
else:
    sys.exit("the control upload did not take the Xet path")
print("OK", sha)
"""


def test_a_users_xet_setting_breaks_neither_push_nor_pull(tmp_path_factory, tmp_path):
    """hf_xet installed, HF_HUB_DISABLE_XET unset, a Hub announcing Xet-backed files: zoo uses HTTP/LFS."""
    with LocalHub(tmp_path_factory.mktemp("hub")) as hub:
        hub.advertise_xet = True
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_XET", "HF_HUB_OFFLINE", "HF_TOKEN")}
        env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf_home"), HF_XET_CACHE=str(tmp_path / "xet"))
        result = subprocess.run([sys.executable, "-c", _XET_SCRIPT], env=env, cwd=ROOT, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr[-3000:]
        assert "OK" in result.stdout and "control failed as expected" in result.stdout
        by_zoo = [r for r in hub.log if "keras-zoo" in (r.header("User-Agent") or "")]
        assert ("POST", "/tester/cnn.git/info/lfs/objects/batch") in [(r.method, r.path) for r in by_zoo]
        assert any(r.method == "GET" and r.path.endswith("/model.safetensors") for r in by_zoo)
        assert not any("/xet-" in r.path for r in by_zoo)  # no xet-write-token / xet-read-token
        control = [r for r in hub.log if "keras-zoo" not in (r.header("User-Agent") or "")]
        assert any("xet-write-token" in r.path for r in control)


# -- kill -9, a changed cache -------------------------------------------------------------------------
def test_kill_9_during_a_download_then_the_next_pull_restarts_and_verifies(pushed, hub_env):
    hub, model, sha = pushed
    size = len(hub.file_bytes("tester/cnn", "model.safetensors", sha))
    hub.fail(WEIGHTS, method="GET", throttle=(32 * 1024, 0.05))  # about 6 s for the 4 MB
    env = {**os.environ, "HF_HUB_CACHE": str(hub_env)}
    proc = subprocess.Popen([sys.executable, "-c", f"import zoo; zoo.pull('tester/cnn', revision='{sha}')"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (hub.records("GET", WEIGHTS, settled=False)
                   and hub.records("GET", WEIGHTS, settled=False)[0].sent >= size // 4):
            assert proc.poll() is None and time.monotonic() < deadline, "the download never got going"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    (killed,) = hub.records("GET", WEIGHTS)
    assert size // 4 <= killed.sent < size  # killed mid-body
    assert not (_snapshot(hub_env, sha) / "model.safetensors").exists()  # nothing half-written is visible
    folder = zoo.pull("tester/cnn", revision=sha)
    assert sha256_of(folder / "model.safetensors") == hashlib.sha256(
        hub.file_bytes("tester/cnn", "model.safetensors", sha)).hexdigest()
    restarted = hub.records("GET", WEIGHTS)[1]
    assert restarted.status == 200 and restarted.sent == size
    _check_loads(f"hf://tester/cnn@{sha}", model)


def _flip_in_place(path):
    """Change one byte of the tensor data (the file still reads as safetensors, with other values)."""
    offset = path.stat().st_size - 13  # the sign and exponent byte of a float32 near the end
    with open(path, "r+b") as handle:  # through the snapshot link: the blob itself changes
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_cached_weights_changed_after_download_are_downloaded_again(pushed, hub_env):
    hub, model, sha = pushed
    zoo.load(f"hf://tester/cnn@{sha}")
    _flip_in_place(_snapshot(hub_env, sha) / "model.safetensors")
    hub.reset_requests()
    _check_loads(f"hf://tester/cnn@{sha}", model)
    assert hub.requests == [("HEAD", f"/tester/cnn/resolve/{sha}/model.safetensors"),
                            ("GET", f"/tester/cnn/resolve/{sha}/model.safetensors")]


def test_weights_and_their_recorded_hash_changed_together_in_the_cache_are_caught(pushed, hub_env):
    """A consistent forgery in the cache (weights + metadata.json's sha256) is caught by the Hub's ETags."""
    hub, model, sha = pushed
    zoo.load(f"hf://tester/cnn@{sha}")
    snapshot = _snapshot(hub_env, sha)
    _flip_in_place(snapshot / "model.safetensors")
    metadata = json.loads((snapshot / "metadata.json").read_text())
    metadata["weights"]["files"]["model.safetensors"]["sha256"] = sha256_of(snapshot / "model.safetensors")
    with open(snapshot / "metadata.json", "w") as handle:
        json.dump(metadata, handle)
    hub.reset_requests()
    _check_loads(f"hf://tester/cnn@{sha}", model)
    assert sorted(hub.requests) == sorted((m, f"/tester/cnn/resolve/{sha}/{f}") for m in ("HEAD", "GET")
                                          for f in ("metadata.json", "model.safetensors"))


def test_a_changed_cache_while_offline_is_refused_without_requests(pushed, hub_env, monkeypatch):
    from huggingface_hub import constants

    hub, model, sha = pushed
    zoo.load(f"hf://tester/cnn@{sha}")
    _flip_in_place(_snapshot(hub_env, sha) / "model.safetensors")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub.reset_requests()
    with pytest.raises(IntegrityError, match=r"Integrity check failed for 'model.safetensors' of 'tester/cnn'.*"
                                             r"HF_HUB_OFFLINE=1 is set, so it was not downloaded again"):
        zoo.load(f"hf://tester/cnn@{sha}")
    assert hub.requests == []
    with pytest.raises(HubUnavailableError, match="HF_HUB_OFFLINE=1 is set and the Hugging Face cache"):
        zoo.load(f"hf://tester/cnn@{sha}")  # the bad copy is gone; offline there is no other


def test_a_changed_cache_while_the_hub_is_unreachable_says_so(pushed, hub_env, monkeypatch):
    """Not offline mode: the Hub does not answer. The error says that, not that HF_HUB_OFFLINE is set."""
    hub, model, sha = pushed
    zoo.load("hf://tester/cnn")  # main: the cache remembers which commit it was
    _flip_in_place(_snapshot(hub_env, sha) / "model.safetensors")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")  # nothing listens there
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(IntegrityError, match=r"Integrity check failed for 'model.safetensors'.*"
                                             r"the Hub could not be reached, so it was not downloaded again") as error:
        zoo.pull("tester/cnn", retries=0)
    assert "HF_HUB_OFFLINE" not in str(error.value)

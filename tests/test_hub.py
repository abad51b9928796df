"""Push to and pull from a Hub through the real huggingface_hub client and a local server."""

import os
import re
import shutil
import socket
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import predict, run_python, sample_batch, small_overrides
from conftest_hub import HUB_TOKEN, hub_env, local_hub, local_hub_auth  # noqa: F401

#: The JAX suite checks the model layer; zoo's pipeline above it runs under TensorFlow and PyTorch
#: (pyproject.toml's `pipeline` marker).
pytestmark = pytest.mark.pipeline

import zoo
from zoo.format import file_records, save_folder
from zoo.hub import HubAuthError, HubError, HubNotFoundError, HubUnavailableError, IntegrityError, InvalidHandleError
from zoo.registry import Release, WeightSpec, _REGISTRY, register_model


@pytest.fixture
def endpoint(local_hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    return local_hub.endpoint


def _same(a, b):
    keras.tree.map_structure(np.testing.assert_array_equal, a, b)


@pytest.mark.parametrize("name", ["cnn", "resnet34", "xception_localizer"])
def test_push_then_load_gives_identical_predictions(name, local_hub, endpoint, hub_env):
    model = zoo.create(name, **small_overrides(name))
    sha = zoo.push(model, f"tester/{name}", commit_message="first")
    assert len(sha) == 40
    loaded = zoo.load(f"hf://tester/{name}@{sha}")
    x = sample_batch(model)
    _same(predict(loaded, x), predict(model, x))
    cached = list(Path(hub_env).glob("models--tester--*/snapshots/*/*"))
    assert {p.name for p in cached} == {"config.json", "metadata.json", "model.safetensors"}  # only what is needed


def test_revisions_tags_and_branches_pull_the_right_weights(local_hub, endpoint):
    from huggingface_hub import HfApi

    first, second = zoo.create("cnn"), zoo.create("cnn")
    sha1 = zoo.push(first, "tester/cnn")
    sha2 = zoo.push(second, "tester/cnn", commit_message="second")
    assert sha1 != sha2
    HfApi(endpoint=endpoint).create_tag("tester/cnn", tag="v1", revision=sha1)
    x = sample_batch(first)
    _same(predict(zoo.load(f"hf://tester/cnn@{sha1}"), x), predict(first, x))
    _same(predict(zoo.load("hf://tester/cnn@v1"), x), predict(first, x))
    _same(predict(zoo.load("hf://tester/cnn@main"), x), predict(second, x))
    _same(predict(zoo.load("hf://tester/cnn"), x), predict(second, x))


def test_model_card_has_hub_front_matter_and_is_kept_unless_replaced(local_hub, endpoint):
    zoo.push(zoo.create("cnn"), "tester/cnn")
    card = local_hub.file_bytes("tester/cnn", "README.md", "main").decode()
    assert card.startswith("---\n") and "library_name: keras" in card and "pipeline_tag: image-classification" in card
    assert "zoo.load('hf://tester/cnn')" in card
    from huggingface_hub import HfApi

    HfApi(endpoint=endpoint).upload_file(
        path_or_fileobj=b"---\nlibrary_name: keras\n---\n# Hand-written card\n", path_in_repo="README.md", repo_id="tester/cnn"
    )
    zoo.push(zoo.create("cnn"), "tester/cnn")
    assert b"Hand-written card" in local_hub.file_bytes("tester/cnn", "README.md", "main")
    zoo.push(zoo.create("cnn"), "tester/cnn", replace_card=True)
    assert b"Hand-written card" not in local_hub.file_bytes("tester/cnn", "README.md", "main")


def test_push_is_one_commit_with_sharded_weights(local_hub, endpoint):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint)
    model = zoo.create("cnn")
    zoo.push(model, "tester/sharded", max_shard_size=1_000_000)
    commits = api.list_repo_commits("tester/sharded")
    assert len(commits) == 2  # the repo's initial commit + ours
    files = set(api.list_repo_files("tester/sharded"))
    assert "model.safetensors.index.json" in files and "model-00001-of-00003.safetensors" in files
    x = sample_batch(model)
    _same(predict(zoo.load("hf://tester/sharded"), x), predict(model, x))


def test_a_push_replaces_the_weight_files_and_card_images_of_the_previous_one(local_hub, endpoint, tmp_path):
    """Shards after a single file (or the reverse) leave no weight file of the earlier push in the
    commit: a snapshot of it loads. A card written anew drops the old card's images; a kept card keeps them."""
    from huggingface_hub import HfApi, snapshot_download

    api = HfApi(endpoint=endpoint)
    model = zoo.create("cnn")
    save_folder(model, tmp_path / "run")
    (tmp_path / "run" / "training_curves.png").write_bytes(b"\x89PNG curves")
    zoo.push(tmp_path / "run", "tester/swap")
    zoo.push(model, "tester/swap", max_shard_size=1_000_000)
    files = set(api.list_repo_files("tester/swap"))
    assert "model.safetensors" not in files and "model.safetensors.index.json" in files
    assert "training_curves.png" in files  # the card was kept: so are its images
    sha = zoo.push(model, "tester/swap", replace_card=True)
    files = set(api.list_repo_files("tester/swap", revision=sha))
    assert "model.safetensors" in files and not any(name.startswith("model-") or name.endswith(".png") for name in files)
    snapshot = snapshot_download("tester/swap", revision=sha, cache_dir=tmp_path / "cache", endpoint=endpoint)
    x = sample_batch(model)
    _same(predict(zoo.load(Path(snapshot)), x), predict(model, x))


def test_a_push_deletes_no_picture_of_the_users_own(local_hub, endpoint, tmp_path):
    """Pictures a user put in the repo (at its root or in a folder) survive a first push (no card yet)
    and a push that replaces the card; only the figures of the replaced zoo card are dropped."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint)
    api.create_repo("tester/mine")
    for name in ("diagram.png", "samples/my-sneaker.png", "samples/training_curves.png"):
        api.upload_file(path_or_fileobj=b"\x89PNG the user's", path_in_repo=name, repo_id="tester/mine")
    model = zoo.create("cnn")
    save_folder(model, tmp_path / "run")
    (tmp_path / "run" / "training_curves.png").write_bytes(b"\x89PNG curves")
    (tmp_path / "run" / "confusion_matrix.png").write_bytes(b"\x89PNG matrix")
    zoo.push(tmp_path / "run", "tester/mine")
    users = {"diagram.png", "samples/my-sneaker.png", "samples/training_curves.png"}
    assert users | {"training_curves.png", "confusion_matrix.png"} <= set(api.list_repo_files("tester/mine"))
    (tmp_path / "run" / "confusion_matrix.png").unlink()
    zoo.push(tmp_path / "run", "tester/mine", replace_card=True)
    files = set(api.list_repo_files("tester/mine"))
    assert users | {"training_curves.png"} <= files and "confusion_matrix.png" not in files


def test_private_push_to_a_public_repo_is_refused_and_commits_nothing(local_hub, endpoint):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint)
    zoo.push(zoo.create("cnn"), "tester/open")
    before = api.list_repo_commits("tester/open")
    with pytest.raises(HubError, match="'tester/open' already exists .* is public.*Received: repo_id='tester/open', private=True"):
        zoo.push(zoo.create("cnn"), "tester/open", private=True)
    assert api.list_repo_commits("tester/open") == before
    zoo.push(zoo.create("cnn"), "tester/closed", private=True)
    assert api.model_info("tester/closed").private is True
    assert len(zoo.push(zoo.create("cnn"), "tester/closed", private=True)) == 40  # private stays private


def test_a_folder_is_checked_against_its_records_before_it_is_pushed(local_hub, endpoint, tmp_path):
    import json

    save_folder(zoo.create("cnn"), tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")  # edited after it was saved
    with pytest.raises(IntegrityError, match="Integrity check failed for 'model.safetensors'"):
        zoo.push(tmp_path / "m", "tester/edited")
    metadata = tmp_path / "m" / "metadata.json"
    metadata.write_text(json.dumps({key: value for key, value in json.loads(metadata.read_text()).items()
                                    if key != "weights"}))
    with pytest.raises(ValueError, match="records no weight files.*Received: model_or_folder="):
        zoo.push(tmp_path / "m", "tester/edited")
    assert "tester/edited" not in local_hub.repos


def test_local_folder_works_like_a_repo(tmp_path):
    model = zoo.create("cnn", num_classes=4)
    save_folder(model, tmp_path / "exported")
    x = sample_batch(model)
    _same(predict(zoo.load(tmp_path / "exported"), x), predict(model, x))
    assert zoo.pull(str(tmp_path / "exported")) == tmp_path / "exported"
    (tmp_path / "exported" / "metadata.json").unlink()  # nothing records the weights' sha256 any more
    with pytest.raises(IntegrityError, match="records no weight files with their sha256"):
        zoo.pull(tmp_path / "exported")
    assert zoo.pull(tmp_path / "exported", weights=False) == tmp_path / "exported"


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "metadata.json"])
def test_corrupted_download_is_caught_and_not_trusted_next_time(local_hub, endpoint, hub_env, name):
    """The Hub sends the right headers but flipped bytes for one file (the 2.4 client checks sizes only)."""
    model = zoo.create("cnn")
    sha = zoo.push(model, "tester/cnn")
    fault = local_hub.fail(rf"/resolve/{sha}/{re.escape(name)}$", method="GET", corrupt=True, times=None)
    with pytest.raises(IntegrityError, match=rf"Integrity check failed for '{re.escape(name)}' of 'tester/cnn'"):
        zoo.load(f"hf://tester/cnn@{sha}")
    assert fault.hits == 2  # downloaded again once, bad again: refused
    assert not list(Path(hub_env).glob(f"models--tester--cnn/snapshots/*/{name}"))  # nothing bad stays cached
    local_hub.clear_faults()
    x = sample_batch(model)
    _same(predict(zoo.load(f"hf://tester/cnn@{sha}"), x), predict(model, x))


@pytest.mark.parametrize(
    "handle, message",
    [
        ("hf://tester/nothing", "Repository not found: 'tester/nothing'.*Received: repo_id='tester/nothing'"),
        ("hf://tester/cnn@no-such-branch", "Revision not found: 'tester/cnn' at revision 'no-such-branch'"),
        ("hf://tester/cnn@" + "0" * 40, "Revision not found: 'tester/cnn' at revision '0000000000"),
    ],
)
def test_missing_repo_and_revision_give_clear_errors(local_hub, endpoint, handle, message):
    zoo.push(zoo.create("cnn"), "tester/cnn")
    with pytest.raises(HubNotFoundError, match=message):
        zoo.load(handle)


def test_missing_weight_file_gives_clear_error(local_hub, endpoint, tmp_path):
    from huggingface_hub import HfApi

    save_folder(zoo.create("cnn"), tmp_path / "m")
    api = HfApi(endpoint=endpoint)
    api.create_repo("tester/half")
    for name in ("config.json", "metadata.json"):
        api.upload_file(path_or_fileobj=str(tmp_path / "m" / name), path_in_repo=name, repo_id="tester/half")
    with pytest.raises(IntegrityError, match="Missing file 'model.safetensors' in 'tester/half'"):
        zoo.load("hf://tester/half")
    api.create_repo("tester/not-zoo")
    api.upload_file(path_or_fileobj=b"# hello", path_in_repo="README.md", repo_id="tester/not-zoo")
    with pytest.raises(HubNotFoundError, match="'tester/not-zoo' at revision .* has no config.json: it is not a keras-zoo repo"):
        zoo.load("hf://tester/not-zoo")
    with pytest.raises(ValueError, match="Received: handle='hf://just-a-name'"):
        zoo.load("hf://just-a-name")


def test_push_without_token_is_refused_clearly(local_hub_auth, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", local_hub_auth.endpoint)
    with pytest.raises(HubAuthError, match="refused to let you write to 'tester/cnn'.*no token was found.*HF_TOKEN"):
        zoo.push(zoo.create("cnn"), "tester/cnn")
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(HubAuthError, match=r"HTTP 401\).*the token was rejected.*Received: repo_id='tester/cnn'"):
        zoo.push(zoo.create("cnn"), "tester/cnn")
    assert "tester/cnn" not in local_hub_auth.repos  # nothing was created or committed
    assert len(zoo.push(zoo.create("cnn"), "tester/cnn", token=HUB_TOKEN)) == 40


def test_push_takes_the_hf_handle_and_says_when_offline_mode_is_set(local_hub, endpoint, monkeypatch, capsys, tmp_path):
    """`zoo push DIR hf://ns/name` (the handle zoo prints and pulls) pushes to ns/name; with
    HF_HUB_OFFLINE=1 a push says so instead of failing inside the client."""
    from huggingface_hub import HfApi, constants

    from zoo.cli import main

    model = zoo.create("cnn")
    save_folder(model, tmp_path / "m")
    assert main(["push", str(tmp_path / "m"), "hf://tester/handle"]) == 0
    sha = HfApi(endpoint=endpoint).model_info("tester/handle").sha
    assert f'zoo.load("hf://tester/handle@{sha}")' in capsys.readouterr().out
    with pytest.raises(InvalidHandleError, match=r"names a commit to load, not where to push.*Received: 'hf://tester/handle@"):
        zoo.push(model, f"hf://tester/handle@{sha}")  # the handle a push prints, revision included
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnavailableError, match=r"HF_HUB_OFFLINE=1 is set, and a push needs the Hub.*Received: repo_id='tester/handle'"):
        zoo.push(model, "hf://tester/handle")


def test_no_network_and_no_cache_says_what_to_do(hub_env, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(HubUnavailableError) as error:
        zoo.pull("tester/cnn", revision="main", retry_wait=0.1)
    message = str(error.value)
    assert "not reachable" in message and "HF_ENDPOINT" in message and "local folder" in message
    assert "ConnectError" in message and "(3 tries)" in message  # DEFAULT_RETRIES = 2, then the error


def _load_script(handles, out_path):
    """Load each handle in a fresh interpreter and save its weights (the environment decides the rest)."""
    return f"""
import numpy as np, keras, zoo
out = {{}}
for i, handle in enumerate({list(handles)!r}):
    model = zoo.load(handle)
    for j, w in enumerate(model.weights):
        out[f"{{i}}-{{j}}"] = keras.ops.convert_to_numpy(w)
np.savez({out_path!r}, **out)
"""


def _assert_weights(path, model, count):
    saved = np.load(path)
    for i in range(count):
        for j, w in enumerate(model.weights):
            np.testing.assert_array_equal(saved[f"{i}-{j}"], keras.ops.convert_to_numpy(w))


@pytest.mark.slow  # request counts do not depend on the backend: TensorFlow suite only
def test_offline_loads_make_no_requests_with_the_server_running(local_hub, endpoint, hub_env, tmp_path):
    """HF_HUB_OFFLINE=1 and a warm cache: zero requests, counted while the server is up and answering."""
    model = zoo.create("cnn")
    sha = zoo.push(model, "tester/cnn")
    handles = [f"hf://tester/cnn@{sha}", "hf://tester/cnn", "hf://tester/cnn@main"]
    env = {"HF_HUB_CACHE": str(hub_env), "HF_ENDPOINT": endpoint}
    for handle in handles:  # online: fills the cache (this process uses hub_env as its cache too)
        zoo.load(handle)
    local_hub.reset_requests()
    run_python(_load_script(handles, str(tmp_path / "online.npz")), env=env)
    online = list(local_hub.requests)
    assert online == [("GET", "/api/models/tester/cnn/revision/main")] * 2  # the counter counts: branches ask
    local_hub.reset_requests()
    run_python(_load_script(handles, str(tmp_path / "offline.npz")), env={**env, "HF_HUB_OFFLINE": "1"})
    assert local_hub.requests == []
    _assert_weights(tmp_path / "offline.npz", model, len(handles))


def test_request_counts_of_cold_and_warm_loads(local_hub, endpoint, hub_env):
    """The numbers docs/HUB.md states; a change here is a change of what zoo sends to the Hub."""
    model = zoo.create("cnn")
    local_hub.reset_requests()
    sha = zoo.push(model, "tester/cnn")
    weights_oid = local_hub.repos["tester/cnn"]["commits"][sha]["files"]["model.safetensors"]["sha256"]
    assert local_hub.requests == [  # a push to a new repo: 10 (the tree listed for weight files to delete)
        ("POST", "/api/repos/create"), ("GET", "/api/models/tester/cnn/revision/main"),
        ("GET", "/api/models/tester/cnn/tree/main"), ("POST", "/api/validate-yaml"), ("POST", "/api/validate-yaml"), ("POST", "/api/models/tester/cnn/preupload/main"),
        ("POST", "/tester/cnn.git/info/lfs/objects/batch"), ("PUT", f"/__lfs_upload__/tester/cnn/{weights_oid}"),
        ("POST", "/tester/cnn.git/info/lfs/objects/verify"), ("POST", "/api/models/tester/cnn/commit/main"),
    ]
    files = ["config.json", "metadata.json", "model.safetensors"]
    per_file = [(m, f"/tester/cnn/resolve/{sha}/{f}") for f in files for m in ("HEAD", "GET")]
    local_hub.reset_requests()
    zoo.load(f"hf://tester/cnn@{sha}")
    assert local_hub.requests == per_file  # cold, pinned: 6
    local_hub.reset_requests()
    zoo.load(f"hf://tester/cnn@{sha}")
    assert local_hub.requests == []  # warm, pinned: 0
    local_hub.reset_requests()
    zoo.load("hf://tester/cnn")
    assert local_hub.requests == [("GET", "/api/models/tester/cnn/revision/main")]  # warm, branch: 1
    local_hub.reset_requests()
    zoo.load("hf://tester/cnn", weights=None)
    assert local_hub.requests == [("GET", "/api/models/tester/cnn/revision/main")]
    shutil.rmtree(hub_env)
    local_hub.reset_requests()
    zoo.load("hf://tester/cnn")
    assert local_hub.requests == [("GET", "/api/models/tester/cnn/revision/main")] + per_file  # cold, branch: 7


def test_registered_tag_resolves_pinned_hub_revision(local_hub, endpoint, monkeypatch, tmp_path):
    model = zoo.create("cnn", num_classes=3)
    sha = zoo.push(model, "zoo-test/cnn3.fmnist")
    folder = zoo.pull("zoo-test/cnn3.fmnist", revision=sha)
    records = file_records(folder, ["model.safetensors", "config.json"])
    release = Release(files=records, metrics={}, train_command="test", hub_repo_id="zoo-test/cnn3.fmnist", hub_revision=sha)
    spec = WeightSpec(tag="fmnist", dataset="test", description="test", overrides={"num_classes": 3}, release=release)
    monkeypatch.setitem(_REGISTRY, "hubtest_cnn", _REGISTRY["cnn"])
    register_model(_REGISTRY["cnn"].builder, name="hubtest_cnn", weights=[spec], head=("predictions",), overwrite=True)
    assert "hubtest_cnn.fmnist" in zoo.list_models(pretrained=True)
    x = sample_batch(model)
    _same(predict(zoo.load("hubtest_cnn"), x), predict(model, x))
    zoo.push(zoo.create("cnn", num_classes=3), "zoo-test/cnn3.fmnist")  # main moves on; the pin does not
    _same(predict(zoo.load("hubtest_cnn"), x), predict(model, x))


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("ZOO_LIVE_HUB_REPO") or not os.environ.get("HF_TOKEN"),
                    reason="live Hub test: set HF_TOKEN and ZOO_LIVE_HUB_REPO=namespace/name (needs network)")
def test_live_round_trip_on_the_real_hub():
    repo = os.environ["ZOO_LIVE_HUB_REPO"]
    model = zoo.create("cnn")
    sha = zoo.push(model, repo, private=True)
    x = sample_batch(model)
    _same(predict(zoo.load(f"hf://{repo}@{sha}"), x), predict(model, x))

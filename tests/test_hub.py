"""Push to and pull from a Hub through the real huggingface_hub client and a local server."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import ROOT, predict, run_python, sample_batch, small_overrides
from conftest_hub import HUB_TOKEN, hub_env, local_hub, local_hub_auth  # noqa: F401

import zoo
from zoo.format import file_records, save_folder
from zoo.hub import HubError, IntegrityError
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


def test_local_folder_works_like_a_repo(tmp_path):
    model = zoo.create("cnn", num_classes=4)
    save_folder(model, tmp_path / "exported")
    x = sample_batch(model)
    _same(predict(zoo.load(tmp_path / "exported"), x), predict(model, x))
    assert zoo.pull(str(tmp_path / "exported")) == tmp_path / "exported"


def test_corrupted_download_is_caught_and_not_trusted_next_time(local_hub, endpoint):
    model = zoo.create("cnn")
    sha = zoo.push(model, "tester/cnn")
    local_hub.corrupt = True
    with pytest.raises(IntegrityError, match="(Integrity check failed for .model.safetensors.|The config of .tester.cnn. could not be read)"):
        zoo.load(f"hf://tester/cnn@{sha}")
    local_hub.corrupt = False
    x = sample_batch(model)
    _same(predict(zoo.load(f"hf://tester/cnn@{sha}"), x), predict(model, x))


@pytest.mark.parametrize(
    "handle, message",
    [
        ("hf://tester/nothing", "Repository not found: 'tester/nothing'"),
        ("hf://tester/cnn@no-such-branch", "Revision not found: 'tester/cnn' at revision 'no-such-branch'"),
    ],
)
def test_missing_repo_and_revision_give_clear_errors(local_hub, endpoint, handle, message):
    zoo.push(zoo.create("cnn"), "tester/cnn")
    with pytest.raises(HubError, match=message):
        zoo.load(handle)


def test_missing_weight_file_gives_clear_error(local_hub, endpoint, tmp_path):
    from huggingface_hub import HfApi

    save_folder(zoo.create("cnn"), tmp_path / "m")
    api = HfApi(endpoint=endpoint)
    api.create_repo("tester/half")
    for name in ("config.json", "metadata.json"):
        api.upload_file(path_or_fileobj=str(tmp_path / "m" / name), path_in_repo=name, repo_id="tester/half")
    with pytest.raises(IntegrityError, match="Missing file 'model.safetensors'"):
        zoo.load("hf://tester/half")
    with pytest.raises(ValueError, match="Received: 'hf://just-a-name'"):
        zoo.load("hf://just-a-name")


def test_push_without_token_is_refused_clearly(local_hub_auth, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", local_hub_auth.endpoint)
    with pytest.raises(HubError, match="refused to let you write to 'tester/cnn'.*HF_TOKEN"):
        zoo.push(zoo.create("cnn"), "tester/cnn")
    assert len(zoo.push(zoo.create("cnn"), "tester/cnn", token=HUB_TOKEN)) == 40


def test_no_network_and_no_cache_says_what_to_do(hub_env, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(HubError) as error:
        zoo.load("hf://tester/cnn@main")
    message = str(error.value)
    assert "not reachable" in message and "HF_ENDPOINT" in message and "local folder" in message


def _offline_script(handle, x_path, out_path):
    return f"""
import numpy as np, keras, zoo
model = zoo.load({handle!r})
np.save({out_path!r}, keras.ops.convert_to_numpy(model(np.load({x_path!r}), training=False)))
"""


def test_offline_reload_with_server_stopped_makes_no_requests(local_hub, endpoint, hub_env, tmp_path):
    model = zoo.create("cnn")
    sha = zoo.push(model, "tester/cnn")
    x = sample_batch(model)
    np.save(tmp_path / "x.npy", x)
    env = {"HF_HUB_CACHE": str(hub_env), "HF_ENDPOINT": endpoint}
    run_python(_offline_script(f"hf://tester/cnn@{sha}", str(tmp_path / "x.npy"), str(tmp_path / "warm.npy")), env=env)
    local_hub.stop()
    before = len(local_hub.requests)
    run_python(
        _offline_script(f"hf://tester/cnn@{sha}", str(tmp_path / "x.npy"), str(tmp_path / "offline.npy")),
        env={**env, "HF_HUB_OFFLINE": "1"},
    )
    assert len(local_hub.requests) == before
    np.testing.assert_array_equal(np.load(tmp_path / "offline.npy"), predict(model, x))


def test_two_processes_loading_at_once_both_get_correct_files(local_hub, endpoint, hub_env, tmp_path):
    model = zoo.create("resnet18", input_shape=(28, 28, 1))
    sha = zoo.push(model, "tester/resnet18")
    x = sample_batch(model)
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "HF_HUB_CACHE": str(hub_env), "HF_ENDPOINT": endpoint}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _offline_script(f"hf://tester/resnet18@{sha}", str(tmp_path / "x.npy"), str(tmp_path / f"{i}.npy"))],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    for i in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"{i}.npy"), predict(model, x))


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

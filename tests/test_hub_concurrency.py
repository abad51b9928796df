"""Many loaders on one cold cache, pushes racing on one repo: the real client against LocalHub."""

import os
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest
from conftest import ROOT
from conftest_hub import hub_env, local_hub  # noqa: F401

import zoo
from zoo.format import save_folder
from zoo.hub import HubConflictError

#: The Hub transport has no backend code (zoo.hub never builds a model): these tests run in the
#: default backend's suite only. A pulled folder is loaded by the loader every suite checks on the
#: released folders (tests/test_released_weights.py); tests/test_hub.py loads pulled models (TensorFlow suite).
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="backend-independent Hub transport: TensorFlow suite only"
)

WEIGHTS = r"/model\.safetensors$"

_LOADER = """
import pathlib, sys, time
import numpy as np, keras, zoo  # the slow imports happen before the barrier
ready, go, out, handle = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4]
ready.touch()
while not go.exists():
    time.sleep(0.005)
model = zoo.load(handle)
np.savez(out, *[keras.ops.convert_to_numpy(w) for w in model.weights])
"""


def _origin(record):
    agent = record.header("User-Agent") or ""
    return agent.rsplit("origin/", 1)[-1] if "origin/" in agent else None


@pytest.mark.slow
def test_eight_processes_load_one_model_into_one_cold_cache_at_once(local_hub, hub_env, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    model = zoo.create("cnn")
    sha = zoo.push(model, "tester/cnn")
    local_hub.fail(WEIGHTS, method="GET", throttle=(64 * 1024, 0.05), times=None)  # ~3 s per download
    go = tmp_path / "go"
    procs = []
    for i in range(8):
        env = {**os.environ, "HF_HUB_CACHE": str(hub_env), "HF_HUB_USER_AGENT_ORIGIN": f"loader-{i}"}
        procs.append(subprocess.Popen(
            [sys.executable, "-c", _LOADER, str(tmp_path / f"ready-{i}"), str(go), str(tmp_path / f"{i}.npz"),
             f"hf://tester/cnn@{sha}"],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ))
    try:
        deadline = time.monotonic() + 600
        while not all((tmp_path / f"ready-{i}").exists() for i in range(8)):  # the barrier
            assert all(p.poll() is None for p in procs), "a loader died before the barrier"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        local_hub.reset_requests()
        go.touch()
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err.decode()[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for i in range(8):  # identical, verified weights everywhere
        saved = np.load(tmp_path / f"{i}.npz")
        for j, w in enumerate(model.weights):
            np.testing.assert_array_equal(saved[f"arr_{j}"], keras.ops.convert_to_numpy(w))
    # The downloads overlapped: while the first GET of the weights was streaming, the other loaders
    # were already asking for the same file (and waited on the cache's lock instead of downloading it).
    assert {_origin(r) for r in local_hub.log} == {f"loader-{i}" for i in range(8)}
    gets = local_hub.records("GET", WEIGHTS)
    first = min(gets, key=lambda r: r.start)
    assert first.end - first.start >= 2.0  # the throttle made the download last
    during = {_origin(r) for r in local_hub.log if r.start < first.end} - {_origin(first)}
    waiting = {_origin(r) for r in local_hub.records("HEAD", WEIGHTS) if first.start <= r.start < first.end}
    print(f"\n{_origin(first)} downloaded the weights in {first.end - first.start:.1f} s; meanwhile "
          f"{len(during)} other loaders sent requests, {len(waiting - {_origin(first)})} asked for the weights; "
          f"GETs of the weights: {len(gets)}; requests: {len(local_hub.log)}")
    assert len(during) >= 4, f"only {sorted(during)} were loading while {_origin(first)} downloaded"
    assert len(waiting - {_origin(first)}) >= 1


def _push_in_thread(source, results, key, barrier=None):
    def run():
        if barrier is not None:
            barrier.wait()
        try:
            results[key] = zoo.push(source, "tester/cnn")
        except Exception as error:  # noqa: BLE001 - the test looks at what it was
            results[key] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _commits_on_main(hub):
    sha, out = hub.head("tester/cnn"), []
    while sha is not None:
        out.append(sha)
        sha = hub.repos["tester/cnn"]["commits"][sha]["parent"]
    return out[:-1]  # without the repo's initial empty commit


def _weights_at(sha):
    model = zoo.load(f"hf://tester/cnn@{sha}")  # verified against the commit's own metadata
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def _equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_push_that_loses_a_race_commits_nothing(local_hub, hub_env, tmp_path, monkeypatch):
    """B prepares its commit against X; A commits first; B must not land on top of A's files.

    B re-pushes X's weights with new metadata, so the client leaves the unchanged weights out of
    B's commit: landing on top of A it would pair A's weights with B's hashes -- a broken repo.
    """
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    m0, m1 = zoo.create("cnn"), zoo.create("cnn")
    save_folder(m0, tmp_path / "x")
    save_folder(m0, tmp_path / "b", metadata={"dataset": "b-relabelled"})
    save_folder(m1, tmp_path / "a")
    zoo.push(tmp_path / "x", "tester/cnn")
    held = local_hub.fail(r"^/api/models/tester/cnn/commit/main$", method="POST", delay=3)  # B's commit waits
    results = {}
    thread_b = _push_in_thread(tmp_path / "b", results, "b")
    deadline = time.monotonic() + 60
    while not held.hits:
        assert time.monotonic() < deadline and thread_b.is_alive()
        time.sleep(0.01)
    results["a"] = zoo.push(tmp_path / "a", "tester/cnn")  # lands while B's commit is held
    thread_b.join(60)
    assert isinstance(results["b"], HubConflictError), results["b"]
    assert "lost a race" in str(results["b"]) and "Nothing of this push was committed" in str(results["b"])
    assert local_hub.head("tester/cnn") == results["a"]
    assert _equal(_weights_at(results["a"]), [keras.ops.convert_to_numpy(w) for w in m1.weights])


def test_two_pushes_at_once_give_two_good_commits_or_a_clear_conflict(local_hub, hub_env, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    zoo.push(zoo.create("cnn"), "tester/cnn")
    models = {"a": zoo.create("cnn"), "b": zoo.create("cnn")}
    expected = {k: [keras.ops.convert_to_numpy(w) for w in m.weights] for k, m in models.items()}
    results, barrier = {}, threading.Barrier(2)
    threads = [_push_in_thread(models[k], results, k, barrier) for k in models]
    for thread in threads:
        thread.join(120)
    for key, result in results.items():
        assert isinstance(result, (str, HubConflictError)), result
    won = {k: v for k, v in results.items() if isinstance(v, str)}
    assert won, results
    history = _commits_on_main(local_hub)
    assert set(won.values()) <= set(history) and len(history) == 1 + len(won)
    for key, sha in won.items():  # every commit holds one push's complete, matching files
        assert _equal(_weights_at(sha), expected[key])

"""The installed library does not depend on its checkout (issue 12): a wheel in a fresh venv
loads a released tag from the Hub repo named in its record, hashes checked, and reproduces the
recorded accuracy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import pytest
from conftest import ROOT
from conftest_hub import local_hub  # noqa: F401

import zoo
from zoo.data.fashion_mnist import find_data_dir
from zoo.registry import get_spec


def _data_available() -> bool:
    return find_data_dir() is not None


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="a wheel in a fresh venv: packaging, not backend code: TensorFlow suite only")
@pytest.mark.slow
@pytest.mark.skipif(not _data_available(), reason="needs Fashion-MNIST ($FASHION_MNIST_DIR or dataset-fashion-mnist)")
def test_wheel_in_a_fresh_venv_loads_cnn_from_the_hub_repo_of_its_record(tmp_path, local_hub, monkeypatch):
    weight = get_spec("cnn").weight(None)
    release = weight.release
    assert release is not None and release.local_dir
    # The release, pushed where its record says (an unpinned record: the installed zoo pulls main).
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    zoo.push(ROOT / release.local_dir, release.hub_repo_id or weight.hub_repo_id)

    source = tmp_path / "source"  # built from a copy: the build writes build/ next to its sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "zoo"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if (ROOT / name).is_dir() else {}))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(source)],
                   check=True, capture_output=True, timeout=600)
    wheel = next(wheels.glob("keras_zoo-*.whl"))
    venv = tmp_path / "venv"
    # The venv sees the machine's keras/tensorflow/huggingface_hub; zoo itself comes from the wheel.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    code = """
import json, zoo
from zoo.evaluation import evaluate, evaluation_data
model = zoo.load("cnn")
x, y = evaluation_data(model, limit=1000)
print(json.dumps({"file": zoo.__file__, "metrics": evaluate(model, x, y)}))
"""
    env = {**os.environ, "HF_ENDPOINT": local_hub.endpoint, "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
           "PYTHONPATH": "", "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow")}
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).is_relative_to(venv)  # the installed copy, not the checkout
    recorded = release.metrics["accuracy@test[:1000]"]
    assert abs(result["metrics"]["accuracy"] - recorded) <= 0.005, (result, recorded)
    assert list((tmp_path / "hf-cache").glob("models--*--cnn.fmnist/snapshots/*/model.safetensors"))
    # The installed console script answers `zoo list` from the packaged registry.json.
    listed = subprocess.run([str(venv / "bin" / "zoo"), "list", "--pretrained", "--json"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert [row["name"] for row in json.loads(listed.stdout)] == zoo.list_models(pretrained=True)

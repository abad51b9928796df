"""Shared test setup. Environment first: TensorFlow and huggingface_hub read it at import."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

#: Small but valid shapes per architecture, so every test stays fast on two CPU cores.
SMALL = {
    "cnn": {},
    "resnet18": {"input_shape": (28, 28, 1)},
    "resnet34": {"input_shape": (28, 28, 1)},
    "xception_localizer": {"input_shape": (71, 71, 1)},
}


@pytest.fixture(autouse=True)
def _same_random_state_for_every_test():
    """Python's, numpy's and the backend's global generators start every test function from seed 0, so that no
    test's initial weights or draws depend on which tests ran before it (several tests seed them for themselves;
    module-scoped fixtures are set up before this runs)."""
    keras.utils.set_random_seed(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def unreleased(monkeypatch):
    """``unreleased("resnet34.fmnist")`` hides that tag's release for one test, so that tests of what a user
    sees before a release keep testing it once the checkout holds the weights."""
    from zoo.registry import _REGISTRY, get_spec, set_release, split_name

    def hide(name: str) -> None:
        arch, _ = split_name(name)
        # get_spec loads the registry when no test has yet; the real spec comes back after the test
        monkeypatch.setitem(_REGISTRY, arch, get_spec(arch))
        set_release(name, None)

    return hide


def small_overrides(name: str) -> dict:
    """Overrides that make ``name`` cheap to build and run in tests."""
    return dict(SMALL.get(name.split(".")[0], {}))


def sample_batch(model: keras.Model, batch: int = 2, seed: int = 0) -> np.ndarray:
    """Random pixels in [0, 255] shaped for ``model``'s input."""
    shape = (batch, *model.inputs[0].shape[1:])
    return np.random.default_rng(seed).uniform(0, 255, size=shape).astype("float32")


def predict(model: keras.Model, x: np.ndarray):
    """Inference-mode outputs as numpy (a dict for multi-output models)."""
    out = model(x, training=False)
    return keras.tree.map_structure(keras.ops.convert_to_numpy, out)


#: Largest difference allowed between the weights of a resumed and an uninterrupted run (measured:
#: 0.0 on TensorFlow, JAX and torch on CPU: the same arithmetic in the same order).
RESUME_TOLERANCE = 1e-6


def assert_same_run_weights(expected_run: Path, actual_run: Path, tolerance: float = RESUME_TOLERANCE) -> None:
    """The best-epoch and last-epoch weights of two run folders agree within ``tolerance``."""
    from zoo.format import read_folder
    from zoo.weights import read_weights

    expected_steps = read_folder(expected_run).metadata["training"]["optimizer_steps"]
    assert read_folder(actual_run).metadata["training"]["optimizer_steps"] == expected_steps
    for name in ("last.safetensors", "model.safetensors"):
        expected, actual = read_weights(expected_run / name), read_weights(actual_run / name)
        assert set(actual) == set(expected)
        for key in expected:
            np.testing.assert_allclose(actual[key], expected[key], rtol=0, atol=tolerance, err_msg=f"{name}: {key}")


class Crash(Exception):
    """Raised by :class:`CrashAfterEpoch`: a kill that a test can catch."""


class CrashAfterEpoch(keras.callbacks.Callback):
    """Raises :class:`Crash` at the end of epoch ``epoch`` (0-based), after the callbacks before it (the backup)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Crash()


def run_python(code: str, env: dict | None = None, timeout: int = 300) -> str:
    """Run ``code`` in a fresh interpreter (own backend, nothing imported); return stdout."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT
    )
    if result.returncode != 0:
        raise AssertionError(f"subprocess failed:\n{result.stdout}\n{result.stderr[-4000:]}")
    return result.stdout


try:  # the local Hub fixtures, when present
    from conftest_hub import *  # noqa: F401,F403,E402
except ImportError:  # pragma: no cover
    pass

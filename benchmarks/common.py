"""Shared helpers of the CPU benchmarks (``benchmarks/run.py``): constants, timing plans, small
helpers with no framework imports, and the measuring loops the workers share."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import importlib.util
import itertools
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: The environment variable an environment variant sets, per backend (--tf-onednn, --jax-xla-flags).
ENV_VARIANT_VARIABLE = {"tensorflow": "TF_ENABLE_ONEDNN_OPTS", "jax": "XLA_FLAGS"}

#: Input shape and batch size per architecture: full run, and --quick (smoke test).
SHAPES = {
    "cnn": {"input_shape": (28, 28, 1), "batch": 128, "quick_shape": (28, 28, 1), "quick_batch": 8},
    "resnet34": {"input_shape": (28, 28, 1), "batch": 128, "quick_shape": (28, 28, 1), "quick_batch": 4},
    "xception_localizer": {"input_shape": (96, 96, 1), "batch": 32, "quick_shape": (71, 71, 1), "quick_batch": 2},
}
#: zoo.create overrides that pin each architecture to the benchmarked variant.
ZOO_OVERRIDES = {
    "cnn": {"num_classes": 10},
    "resnet34": {"num_classes": 10, "stem": "small"},
    "xception_localizer": {"num_classes": 10},
}

#: Timing plan: warm-up steps, timed windows, target seconds per window, steps per window bounds.
FULL_PLAN = {
    "warmup_steps": 3, "windows": 5, "train_window_s": 6.0, "infer_window_s": 3.0,
    "min_steps": 2, "max_steps": 200, "repeats": 3, "timeout_s": 3600, "budget_s": 240,
}
QUICK_PLAN = {
    "warmup_steps": 1, "windows": 3, "train_window_s": 0.0, "infer_window_s": 0.0,
    "min_steps": 1, "max_steps": 1, "repeats": 1, "timeout_s": 600, "budget_s": 0,
}



# ----------------------------------------------------------------------------------------------
# small helpers (no framework imports)
# ----------------------------------------------------------------------------------------------


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def load_avg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def version_of(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def cpu_info() -> dict[str, Any]:
    info: dict[str, Any] = {"machine": platform.machine(), "logical_cpus": os.cpu_count()}
    try:
        info["affinity_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["model"] = line.split(":", 1)[1].strip()
                break
        flags: set[str] = set()
        for line in text.splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
        wanted = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"]
        info["flags"] = [f for f in wanted if f in flags]
    except OSError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_total_gb"] = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return info


def versions() -> dict[str, str | None]:
    names = ["keras", "tensorflow", "jax", "jaxlib", "torch", "numpy", "safetensors", "huggingface_hub", "h5py", "keras-zoo"]
    return {name: version_of(name) for name in names}


def _mb(nbytes: float) -> float:
    return nbytes / 1e6


# ----------------------------------------------------------------------------------------------
# workers: each runs in its own interpreter, started by the orchestrator
# ----------------------------------------------------------------------------------------------


def _quiet_logs() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("absl").setLevel(logging.ERROR)


def _backend_info() -> dict[str, Any]:
    """Backend name, threads, and (TensorFlow) whether oneDNN is on in this process."""
    import keras

    backend = keras.backend.backend()
    info: dict[str, Any] = {"backend": backend, "keras": keras.__version__}
    if backend == "tensorflow":
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        info["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
        try:
            from tensorflow.python.util import _pywrap_util_port

            info["onednn_enabled"] = bool(_pywrap_util_port.IsMklEnabled())
        except Exception:  # noqa: BLE001 - private API: report unknown
            info["onednn_enabled"] = None
        info["TF_ENABLE_ONEDNN_OPTS"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    elif backend == "jax":
        import jax

        info["jax"] = jax.__version__
        info["jax_devices"] = [str(d) for d in jax.devices()]
    elif backend == "torch":
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def _seed(seed: int) -> None:
    """Seed Python, numpy and (under TensorFlow) TF. ``keras.utils.set_random_seed`` would
    import TensorFlow into JAX / torch workers whenever it is installed."""
    import random

    import keras
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    if keras.backend.backend() == "tensorflow":
        keras.utils.set_random_seed(seed)


def _steps_for(step_s: float, target_s: float, plan: dict) -> int:
    if step_s <= 0 or target_s <= 0:
        return plan["min_steps"]
    return int(max(plan["min_steps"], min(plan["max_steps"], math.ceil(target_s / step_s))))


def _windows_for(round_s: float, plan: dict) -> int:
    """``plan["windows"]``, cut (never below 3) when one round of windows takes so long that all
    of them would exceed ``plan["budget_s"]`` (slow backend / model pairs on a small CPU)."""
    windows = int(plan["windows"])
    budget = plan.get("budget_s") or 0
    if budget <= 0 or round_s <= 0 or windows * round_s <= budget:
        return windows
    return max(min(3, windows), int(budget // round_s))


def _interleaved(names: list[str], windows: int, measure: Callable[[str], float]) -> dict[str, list[float]]:
    """Measure every name once per window, alternating the order (A B, B A, A B, ...)."""
    out: dict[str, list[float]] = {name: [] for name in names}
    for window in range(windows):
        order = names if window % 2 == 0 else list(reversed(names))
        for name in order:
            out[name].append(measure(name))
    return out


def _summary(per_window: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in per_window.items():
        out[name] = {"windows": [round(v, 3) for v in values], "median": median(values)}
    return out


def _compile_for_benchmark(model: Any, localizer: bool, *, as_dict: bool = True, jit_compile: Any = "auto") -> None:
    """SGD(0.01, momentum 0.9), cross-entropy (+ box MSE weighted 0.8/0.2 for the localizer), no metrics."""
    import keras

    if localizer:
        loss = {"class": "sparse_categorical_crossentropy", "box": "mse"} if as_dict else ["sparse_categorical_crossentropy", "mse"]
        weights = {"class": 0.8, "box": 0.2} if as_dict else [0.8, 0.2]
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss=loss, loss_weights=weights, jit_compile=jit_compile)
    else:
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy", jit_compile=jit_compile)


def _synthetic_batches(shape: tuple, localizer: bool, seed: int = 0) -> Callable[[int], tuple[Any, Any, Any]]:
    """``make(n) -> (x, labels, boxes)``: float32 pixels in [0, 255], int labels, boxes (localizer)."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def make(n: int):
        x = rng.uniform(0, 255, size=(n, *shape)).astype("float32")
        labels = rng.integers(0, 10, size=(n,)).astype("int32")
        boxes = rng.uniform(0.1, 0.9, size=(n, 4)).astype("float32") if localizer else None
        return x, labels, boxes

    return make


def _measure_training(models: dict[str, Any], make_inputs: Callable[[int], dict[str, tuple[Any, Any]]], batch: int, plan: dict) -> tuple[dict, dict]:
    """Warm-up ``fit`` of every model (it compiles), then interleaved timed windows.

    ``make_inputs(n)`` returns ``{key: (x, y)}`` holding ``n`` samples per key: arrays, or a
    ``keras.utils.PyDataset`` of ``n / batch`` batches and ``y=None``. Returns
    ``(first_fit_s, summary)``; the summary has ``steps_per_window``, ``warmup_step_s`` and per
    key the windows (images/s) and their median.
    """
    import keras

    class StepTimer(keras.callbacks.Callback):
        """Timestamps at each batch end (a custom batch callback makes Keras sync every step)."""

        def __init__(self):
            super().__init__()
            self.times: list[float] = []

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter())

    def fit(key: str, inputs: dict[str, tuple[Any, Any]], steps: int) -> list[float]:
        timer = StepTimer()
        x, y = inputs[key]
        if isinstance(x, keras.utils.PyDataset):
            models[key].fit(x, epochs=1, verbose=0, callbacks=[timer])
        else:
            models[key].fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
        if len(timer.times) != steps:
            raise RuntimeError(f"expected {steps} batches, got {len(timer.times)}")
        return timer.times

    warm = plan["warmup_steps"] + 1
    inputs = make_inputs(warm * batch)
    step_s: dict[str, float] = {}
    first_fit_s: dict[str, float] = {}
    for key in models:
        t = time.perf_counter()
        times = fit(key, inputs, warm)
        first_fit_s[key] = time.perf_counter() - t
        deltas = [b - a for a, b in itertools.pairwise(times)]
        step_s[key] = median(deltas) or (times[-1] - t)
    first = next(iter(models))
    steps = _steps_for(step_s[first], plan["train_window_s"], plan)
    windows = _windows_for((steps + 1) * max(step_s.values()) * len(models), plan)
    inputs = make_inputs((steps + 1) * batch)

    def window(key: str) -> float:
        times = fit(key, inputs, steps + 1)  # the first step of every fit call is not timed
        return steps * batch / (times[-1] - times[0])

    per_window = _interleaved(list(models), windows, window)
    return first_fit_s, {"steps_per_window": steps, "warmup_step_s": step_s, **_summary(per_window)}


def _measure_inference(models: dict[str, Any], xb: Any, plan: dict) -> dict:
    """``predict_on_batch`` (the compiled predict function) on one batch, interleaved windows."""
    batch = len(xb)
    step: dict[str, float] = {}
    for key, model in models.items():
        model.predict_on_batch(xb)  # compiles
        t = time.perf_counter()
        for _ in range(2):
            model.predict_on_batch(xb)
        step[key] = (time.perf_counter() - t) / 2
    first = next(iter(models))
    calls = _steps_for(step[first], plan["infer_window_s"], plan)
    windows = _windows_for(calls * max(step.values()) * len(models), plan)

    def window(key: str) -> float:
        model = models[key]
        t = time.perf_counter()
        for _ in range(calls):
            model.predict_on_batch(xb)
        return calls * batch / (time.perf_counter() - t)

    return {"batches_per_window": calls, **_summary(_interleaved(list(models), windows, window))}

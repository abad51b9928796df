#!/usr/bin/env python
"""CPU benchmarks of the zoo (issue #6): one run on this machine -> ``results.md`` + ``results.json``.

    python benchmarks/run.py [--quick] [--backends tensorflow,jax,torch]
                             [--models cnn,resnet34,xception_localizer] [--out benchmarks/results]

What is measured (see BENCHMARKS.md for every column):

* throughput: training and inference images/s of ``zoo.create(...)`` against the same network
  written as the tutorial's plain Keras code (``benchmarks/reference_keras.py``), measured
  interleaved (zoo, reference, reference, zoo, ...) in one process per (backend, model); for
  TensorFlow once with the default environment and once with ``TF_ENABLE_ONEDNN_OPTS=1``;
* options: the zoo model with XLA switched the other way and under ``mixed_bfloat16``;
* pipeline: training fed by the real Fashion-MNIST input pipeline (``zoo.data.ArrayDataset`` with
  the recipe's augmentation) against the same images as in-memory arrays;
* peer: the same CNN and ResNet-34 in plain PyTorch (``benchmarks/reference_torch.py``);
* load: framework / keras / zoo import times, ``zoo.load(folder)`` from a warm local folder
  (verify, build and weight-loading parts), and ResNet-34 weights from safetensors
  (``zoo.load_weights``) against Keras ``.weights.h5`` (``model.load_weights``);
* hub: push and pull throughput against the local Hub-compatible server (tests/hub_server.py),
  the cost of sha256 verification, and ``zoo.load("hf://...")`` from a warm Hugging Face cache;
* memory: ru_maxrss of every subprocess, and tracemalloc peaks while loading weights.

Every measurement runs in its own subprocess (``KERAS_BACKEND`` and ``TF_ENABLE_ONEDNN_OPTS`` must be
set before import), started by this script (``--worker ...``); the parent imports no framework.
Throughputs are medians of at least 3 timed windows taken after warm-up steps; compare ratios
measured in the same run, not absolute numbers across runs (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import importlib.util
import itertools
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ALL_BACKENDS = ("tensorflow", "jax", "torch")
ALL_MODELS = ("cnn", "resnet34", "xception_localizer")
TORCH_MODELS = ("cnn", "resnet34")
ALL_SECTIONS = ("throughput", "options", "pipeline", "peer", "load", "hub")
HUB_NAMESPACE = "tester"
HUB_TOKEN = "hf_benchmark_token"
SCHEMA_VERSION = 1

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


def worker_throughput(params: dict) -> dict:
    """zoo vs tutorial Keras code, one architecture, one backend: train + inference images/s."""
    _quiet_logs()
    plan = params["plan"]
    name = params["model"]
    shape = tuple(params["input_shape"])
    batch = int(params["batch"])
    t0 = time.perf_counter()
    import numpy as np
    import reference_keras

    import zoo

    result: dict[str, Any] = {"model": name, "input_shape": list(shape), "batch": batch}
    result["import_s"] = time.perf_counter() - t0
    result.update(_backend_info())
    _seed(0)

    models: dict[str, Any] = {}
    t = time.perf_counter()
    models["zoo"] = zoo.create(name, input_shape=shape, **ZOO_OVERRIDES[name])
    result["build_s"] = {"zoo": time.perf_counter() - t}
    t = time.perf_counter()
    models["reference"] = reference_keras.BUILDERS[name](input_shape=shape, num_classes=10)
    result["build_s"]["reference"] = time.perf_counter() - t
    result["params"] = {k: int(m.count_params()) for k, m in models.items()}
    if result["params"]["zoo"] != result["params"]["reference"]:
        raise RuntimeError(f"zoo and reference {name} differ in size: {result['params']}")

    localizer = name == "xception_localizer"
    for key, model in models.items():
        _compile_for_benchmark(model, localizer, as_dict=key == "zoo")
    result["jit_compile"] = {k: getattr(m, "jit_compile", None) for k, m in models.items()}
    synthetic = _synthetic_batches(shape, localizer)

    def make_inputs(n: int):
        x, labels, boxes = synthetic(n)
        if not localizer:
            return {"zoo": (x, labels), "reference": (x, labels)}
        return {"zoo": (x, {"class": labels, "box": boxes}), "reference": (x, (labels, boxes))}

    x = synthetic(batch)[0]
    # Outputs of the freshly built (seeded) zoo model: environment variants must agree on them.
    probe = models["zoo"].predict_on_batch(x[:4])
    result["probe_output"] = np.asarray(probe["class"] if localizer else probe, dtype="float64").tolist()
    result["first_fit_s"], result["train"] = _measure_training(models, make_inputs, batch, plan)
    result["train"]["ratio"] = ratio(result["train"]["zoo"]["median"], result["train"]["reference"]["median"])
    result["infer"] = _measure_inference(models, x, plan)
    result["infer"]["ratio"] = ratio(result["infer"]["zoo"]["median"], result["infer"]["reference"]["median"])
    return result


def worker_options(params: dict) -> dict:
    """The zoo model under compile / precision options, against the backend's default: images/s.

    Options: the default (``jit_compile="auto"``, float32), XLA the other way where the backend
    runs usefully both ways (TensorFlow; JAX without jit runs op by op, torch.compile is left
    out), and the ``mixed_bfloat16`` dtype policy.
    """
    _quiet_logs()
    plan = params["plan"]
    name = params["model"]
    shape = tuple(params["input_shape"])
    batch = int(params["batch"])
    import keras

    import zoo

    result: dict[str, Any] = {"model": name, "input_shape": list(shape), "batch": batch}
    result.update(_backend_info())
    backend = keras.backend.backend()
    localizer = name == "xception_localizer"
    _seed(0)

    def build(policy: str, jit_compile: Any) -> Any:
        keras.config.set_dtype_policy(policy)
        try:
            model = zoo.create(name, input_shape=shape, **ZOO_OVERRIDES[name])
        finally:
            keras.config.set_dtype_policy("float32")
        _compile_for_benchmark(model, localizer, jit_compile=jit_compile)
        return model

    models: dict[str, Any] = {"default": build("float32", "auto")}
    auto_jit = bool(models["default"].jit_compile)
    if backend == "tensorflow":
        models["no_xla" if auto_jit else "xla"] = build("float32", not auto_jit)
    models["mixed_bfloat16"] = build("mixed_bfloat16", "auto")
    result["options"] = {
        key: {"jit_compile": model.jit_compile, "dtype_policy": model.dtype_policy.name} for key, model in models.items()
    }
    synthetic = _synthetic_batches(shape, localizer)

    def make_inputs(n: int):
        x, labels, boxes = synthetic(n)
        y = {"class": labels, "box": boxes} if localizer else labels
        return {key: (x, y) for key in models}

    x = synthetic(batch)[0]
    result["first_fit_s"], result["train"] = _measure_training(models, make_inputs, batch, plan)
    result["infer"] = _measure_inference(models, x, plan)
    for part in ("train", "infer"):
        base = result[part]["default"]["median"]
        result[part]["ratio_vs_default"] = {key: ratio(result[part][key]["median"], base) for key in models}
    return result


def _describe_augmenter(augmenter: Any) -> str:
    """``"pad-crop 2, flip"`` for a ``zoo.data.Augmenter``; ``"none"`` for ``None``."""
    if augmenter is None:
        return "none"
    parts = [f"pad-crop {augmenter.pad}"] if augmenter.pad else []
    parts += ["flip"] if augmenter.flip else []
    parts += [f"erasing p={augmenter.erasing_p}"] if augmenter.erasing_p else []
    return ", ".join(parts) or "none"


def worker_pipeline(params: dict) -> dict:
    """Training fed by the real input pipeline against in-memory arrays: images/s.

    Fashion-MNIST images (96x96 canvases for the localizer), one zoo model per source, compiled
    alike and measured interleaved: ``arrays`` (the same uint8 images in memory, ``fit(x, y)``:
    the reference), ``pipeline`` (``zoo.data.ArrayDataset`` with the architecture's recipe
    augmenter, shuffled: what ``scripts/train.py`` feeds), ``no_augmentation`` and
    ``pipeline_threads`` (the recipe augmenter on 2 worker threads). Then the pipeline alone, no
    model: ``ArrayDataset[i]`` over every batch. Returns ``skip`` when the data is not found.
    """
    _quiet_logs()
    plan = params["plan"]
    name = params["model"]
    shape = tuple(params["input_shape"])
    batch = int(params["batch"])
    import zoo
    from zoo.data import ArrayDataset, find_data_dir, load_fashion_mnist, make_localization_set
    from zoo.training import get_recipe

    data_dir = find_data_dir(params.get("data_dir"))
    if data_dir is None:
        return {"skip": "Fashion-MNIST IDX files not found (apt-get install dataset-fashion-mnist, or --data-dir)"}
    localizer = name == "xception_localizer"
    augmenter = get_recipe(name).augmenter()
    result: dict[str, Any] = {"model": name, "input_shape": list(shape), "batch": batch, "data_dir": str(data_dir),
                              "augmentation": _describe_augmenter(augmenter)}
    result.update(_backend_info())
    images, labels = load_fashion_mnist("train", data_dir=data_dir)
    if localizer:
        images, labels, boxes = make_localization_set(images[: 40 * batch], labels[: 40 * batch], canvas_size=shape[0], seed=0)
    elif shape != images.shape[1:]:
        raise ValueError(f"the pipeline section feeds 28x28x1 images. Received: input_shape={shape}")
    sources = {
        "arrays": None,
        "pipeline": {"augmenter": augmenter},
        "no_augmentation": {"augmenter": None},
        "pipeline_threads": {"augmenter": augmenter, "workers": 2, "use_multiprocessing": False},
    }
    _seed(0)
    models = {key: zoo.create(name, input_shape=shape, **ZOO_OVERRIDES[name]) for key in sources}
    for model in models.values():
        _compile_for_benchmark(model, localizer)

    def make_inputs(n: int) -> dict[str, tuple[Any, Any]]:
        if n > len(images):
            raise ValueError(f"a window needs {n} images; the pipeline section has {len(images)}")
        x = images[:n]
        y = {"class": labels[:n], "box": boxes[:n]} if localizer else labels[:n]
        inputs: dict[str, tuple[Any, Any]] = {}
        for key, extra in sources.items():
            if extra is None:
                inputs[key] = (x, y)
            else:
                dataset = ArrayDataset(x, y, batch_size=batch, shuffle=True, seed=0, dtype="uint8", drop_remainder=True, **extra)
                inputs[key] = (dataset, None)
        return inputs

    result["first_fit_s"], result["train"] = _measure_training(models, make_inputs, batch, plan)
    base = result["train"]["arrays"]["median"]
    result["train"]["ratio_vs_arrays"] = {key: ratio(result["train"][key]["median"], base) for key in sources}

    dataset = make_inputs((result["train"]["steps_per_window"] + 1) * batch)["pipeline"][0]
    alone = []
    for _ in range(max(3, plan["windows"])):
        dataset.on_epoch_end()
        t = time.perf_counter()
        for index in range(len(dataset)):
            dataset[index]
        alone.append(len(dataset) * batch / (time.perf_counter() - t))
    result["pipeline_alone"] = {"windows": alone, "median": median(alone)}
    return result


def worker_torch(params: dict) -> dict:
    """The same CNN / ResNet-34 in plain PyTorch (eager; optionally channels_last)."""
    _quiet_logs()
    plan = params["plan"]
    name = params["model"]
    shape = tuple(params["input_shape"])
    batch = int(params["batch"])
    variants = params.get("variants") or ["eager"]
    t0 = time.perf_counter()
    import reference_torch
    import torch

    result: dict[str, Any] = {"model": name, "input_shape": list(shape), "batch": batch, "torch": torch.__version__}
    result["import_s"] = time.perf_counter() - t0
    result["torch_threads"] = torch.get_num_threads()
    torch.manual_seed(0)
    height, width, channels = shape
    generator = torch.Generator().manual_seed(0)
    x = torch.rand((batch, channels, height, width), generator=generator) * 255.0
    y = torch.randint(0, 10, (batch,), generator=generator)

    nets, opts, inputs = {}, {}, {}
    for variant in variants:
        torch.manual_seed(0)
        net = reference_torch.build(name, shape, num_classes=10, stem="small")
        xv = x
        if variant == "channels_last":
            net = net.to(memory_format=torch.channels_last)
            xv = x.contiguous(memory_format=torch.channels_last)
        elif variant != "eager":
            raise ValueError(f"unknown torch variant {variant!r}")
        nets[variant], inputs[variant] = net, xv
        opts[variant] = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    result["params"] = reference_torch.count_params(next(iter(nets.values())))
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_steps(variant: str, steps: int) -> float:
        net, opt, xv = nets[variant], opts[variant], inputs[variant]
        net.train()
        t = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xv), y)
            loss.backward()
            opt.step()
            float(loss.detach())  # like Keras' per-step logs
        return time.perf_counter() - t

    def infer_calls(variant: str, calls: int) -> float:
        net, xv = nets[variant], inputs[variant]
        net.eval()
        t = time.perf_counter()
        with torch.inference_mode():
            for _ in range(calls):
                net(xv).numpy()
        return time.perf_counter() - t

    step_s = {}
    for variant in variants:
        train_steps(variant, 1 if plan["warmup_steps"] < 2 else 3)  # oneDNN warms up over ~4 steps
        step_s[variant] = train_steps(variant, plan["warmup_steps"]) / plan["warmup_steps"]
    steps = _steps_for(step_s[variants[0]], plan["train_window_s"], plan)
    train_windows = _windows_for(steps * max(step_s.values()) * len(variants), plan)
    train = _interleaved(variants, train_windows, lambda v: steps * batch / train_steps(v, steps))
    result["train"] = {"steps_per_window": steps, **_summary(train)}

    infer_step = {}
    for variant in variants:
        infer_calls(variant, 1)
        infer_step[variant] = infer_calls(variant, 2) / 2
    calls = _steps_for(infer_step[variants[0]], plan["infer_window_s"], plan)
    infer_windows = _windows_for(calls * max(infer_step.values()) * len(variants), plan)
    infer = _interleaved(variants, infer_windows, lambda v: calls * batch / infer_calls(v, calls))
    result["infer"] = {"batches_per_window": calls, **_summary(infer)}
    return result


def _read_all(folder: Path) -> int:
    """Read every file under ``folder`` (warms the page cache); return the bytes read."""
    total = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            total += len(path.read_bytes())
    return total


def _export(name: str, shape: tuple, folder: Path) -> Path:
    """zoo.create + zoo.format.save_folder into ``folder`` (atomic: built next to it, then renamed)."""
    import zoo
    from zoo.format import save_folder

    if (folder / "config.json").exists():
        return folder
    staging = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    model = zoo.create(name, input_shape=shape, **ZOO_OVERRIDES[name])
    save_folder(model, staging)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging.rename(folder)
    except OSError:  # exported meanwhile by someone else
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def worker_load(params: dict) -> dict:
    """Import times, zoo.load from a warm local folder, safetensors vs .weights.h5 (ResNet-34)."""
    _quiet_logs()
    plan = params["plan"]
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    result: dict[str, Any] = {}
    # The framework alone, in a fresh interpreter (TensorFlow imports keras itself, so it cannot be
    # timed separately after or before `import keras` in one process).
    probe = f"import time; t = time.perf_counter(); import {backend}; print(time.perf_counter() - t)"
    framework = []
    for _ in range(max(1, min(3, int(plan["repeats"])))):
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        framework.append(float(done.stdout.strip().splitlines()[-1]))
    result["import_framework_s"] = median(framework)
    t = time.perf_counter()
    import keras  # noqa: F401

    result["import_keras_s"] = time.perf_counter() - t  # includes the framework
    t = time.perf_counter()
    import zoo

    zoo.list_models()  # registers the built-in architectures
    result["import_zoo_s"] = time.perf_counter() - t
    import gc
    import tracemalloc

    from zoo import api
    from zoo import weights as weights_io
    from zoo.format import read_folder, verify_files

    result.update(_backend_info())
    work = Path(params["work"])
    repeats = max(1, int(plan["repeats"]))

    result["models"] = {}
    for name in params["models"]:
        shape = tuple(params["shapes"][name])
        folder = _export(name, shape, work / "folders" / name)
        size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        _read_all(folder)
        entry: dict[str, Any] = {"weights_mb": _mb(size)}
        t = time.perf_counter()
        model = zoo.load(folder)
        entry["first_load_s"] = time.perf_counter() - t
        del model
        totals, verify, build, load = [], [], [], []
        for _ in range(repeats):
            gc.collect()
            t = time.perf_counter()
            model = zoo.load(folder)
            totals.append(time.perf_counter() - t)
            del model
            gc.collect()
            contents = read_folder(folder)
            t = time.perf_counter()
            verify_files(folder, contents.records)
            verify.append(time.perf_counter() - t)
            t = time.perf_counter()
            model = api.build(api.resolve(folder, weights=None))
            build.append(time.perf_counter() - t)
            t = time.perf_counter()
            weights_io.load_weights(model, folder)
            load.append(time.perf_counter() - t)
            del model
        entry.update(
            load_s=median(totals), load_windows=totals, verify_s=median(verify), build_s=median(build),
            weights_s=median(load),
        )
        result["models"][name] = entry

    # -- ResNet-34 weights: safetensors (zoo.load_weights) vs Keras .weights.h5 ----------------
    model = zoo.create("resnet34", input_shape=tuple(params["shapes"].get("resnet34", (28, 28, 1))), **ZOO_OVERRIDES["resnet34"])
    wdir = work / f"weights-{backend}"
    wdir.mkdir(parents=True, exist_ok=True)
    st_path, h5_path = wdir / "resnet34.safetensors", wdir / "resnet34.weights.h5"
    zoo.save_weights(model, st_path, overwrite=True)
    model.save_weights(h5_path, overwrite=True)
    for path in (st_path, h5_path):
        path.read_bytes()
    loaders = {
        "safetensors": lambda: zoo.load_weights(model, st_path),
        "h5": lambda: model.load_weights(h5_path),
    }
    for load_fn in loaders.values():  # first calls outside the timing
        load_fn()

    def timed(key: str) -> float:
        gc.collect()
        t = time.perf_counter()
        loaders[key]()
        return time.perf_counter() - t

    windows = max(3, repeats) if plan["repeats"] > 1 else 1
    times = _interleaved(list(loaders), windows, timed)
    peaks = {}
    for key, load_fn in loaders.items():
        gc.collect()
        tracemalloc.start()
        load_fn()
        peaks[key] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    result["weights_resnet34"] = {
        "safetensors_s": median(times["safetensors"]),
        "h5_s": median(times["h5"]),
        "safetensors_windows": times["safetensors"],
        "h5_windows": times["h5"],
        "speedup": ratio(median(times["h5"]), median(times["safetensors"])),
        "safetensors_mb": _mb(st_path.stat().st_size),
        "h5_mb": _mb(h5_path.stat().st_size),
        "tracemalloc_peak_mb": {k: _mb(v) for k, v in peaks.items()},
    }
    return result


def worker_hub(params: dict) -> dict:
    """Push / pull through the local Hub server (HF_ENDPOINT), sha256 cost, hf:// load from cache."""
    _quiet_logs()
    plan = params["plan"]
    repeats = max(1, int(plan["repeats"]))
    result: dict[str, Any] = {"endpoint": os.environ.get("HF_ENDPOINT"), "HF_HUB_DISABLE_XET": os.environ.get("HF_HUB_DISABLE_XET")}
    t = time.perf_counter()
    import huggingface_hub
    from huggingface_hub import constants, snapshot_download

    result["import_huggingface_hub_s"] = time.perf_counter() - t
    result["huggingface_hub"] = huggingface_hub.__version__
    if constants.ENDPOINT != os.environ.get("HF_ENDPOINT"):
        raise RuntimeError(f"huggingface_hub uses {constants.ENDPOINT}, not HF_ENDPOINT")
    import zoo
    from zoo import hub
    from zoo.format import sha256_of

    result.update(_backend_info())
    work = Path(params["work"])
    cold_root = work / "hf-cold"
    result["repos"] = {}

    def folder_bytes(folder: Path) -> int:
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())  # stat follows cache symlinks

    def sha_all(folder: Path) -> float:
        t = time.perf_counter()
        for path in sorted(folder.iterdir()):
            if path.is_file():
                sha256_of(path)
        return time.perf_counter() - t

    for name in params["models"]:
        shape = tuple(params["shapes"][name])
        folder = _export(name, shape, work / "folders" / name)
        repo_id = f"{HUB_NAMESPACE}/{name}"
        entry: dict[str, Any] = {"repo_id": repo_id}
        pushed = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        t = time.perf_counter()
        zoo.push(folder, repo_id, token=HUB_TOKEN, commit_message="benchmark")
        entry["push_s"] = time.perf_counter() - t
        entry["push_mb"] = _mb(pushed)
        entry["push_mb_s"] = _mb(pushed) / entry["push_s"]

        download, verify, pull = [], [], []
        nbytes = 0
        for rep in range(repeats):
            for what in (("download", "pull") if rep % 2 == 0 else ("pull", "download")):
                cache = cold_root / f"{name}-{rep}-{what}"
                t = time.perf_counter()
                if what == "download":  # huggingface_hub alone, no verification
                    got = Path(snapshot_download(repo_id, cache_dir=cache, allow_patterns=hub.REPO_PATTERNS, library_name="keras-zoo"))
                    download.append(time.perf_counter() - t)
                    nbytes = folder_bytes(got)
                    verify.append(sha_all(got))  # what zoo adds on top of the download
                else:  # zoo.hub.pull: download + sha256 of every weight file
                    hub.pull(repo_id, cache_dir=cache)
                    pull.append(time.perf_counter() - t)
                shutil.rmtree(cache, ignore_errors=True)
        entry.update(
            mb=_mb(nbytes),
            download_s=median(download), pull_s=median(pull), sha256_s=median(verify),
            download_windows=download, pull_windows=pull, sha256_windows=verify,
        )
        entry["download_mb_s"] = _mb(nbytes) / entry["download_s"]
        entry["pull_mb_s"] = _mb(nbytes) / entry["pull_s"]
        entry["sha256_mb_s"] = _mb(nbytes) / entry["sha256_s"]
        entry["verify_fraction_of_pull"] = ratio(entry["sha256_s"], entry["pull_s"])

        # warm Hugging Face cache (the default one, under HF_HOME): pull again, load hf://
        hub.pull(repo_id)
        warm = []
        for _ in range(repeats):
            t = time.perf_counter()
            hub.pull(repo_id)
            warm.append(time.perf_counter() - t)
        entry["warm_pull_s"] = median(warm)
        entry["verify_fraction_of_warm_pull"] = ratio(entry["sha256_s"], entry["warm_pull_s"])
        handle = f"hf://{repo_id}@main"
        zoo.load(handle)  # first build in this process, outside the timing
        online, offline = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            zoo.load(handle)
            online.append(time.perf_counter() - t)
            saved = constants.HF_HUB_OFFLINE
            constants.HF_HUB_OFFLINE = True  # read at call time by huggingface_hub 2.x
            try:
                t = time.perf_counter()
                zoo.load(handle)
                offline.append(time.perf_counter() - t)
            finally:
                constants.HF_HUB_OFFLINE = saved
        entry["load_hf_warm_online_s"] = median(online)
        entry["load_hf_warm_offline_s"] = median(offline)
        result["repos"][name] = entry
    shutil.rmtree(cold_root, ignore_errors=True)
    return result


WORKERS = {
    "throughput": worker_throughput, "options": worker_options, "pipeline": worker_pipeline, "torch": worker_torch,
    "load": worker_load, "hub": worker_hub,
}


def run_worker(kind: str, params_path: str, result_path: str) -> int:
    params = json.loads(Path(params_path).read_text())
    sys.path.insert(0, str(HERE))
    started = time.time()
    out: dict[str, Any] = {"kind": kind, "load_avg_start": load_avg()}
    try:
        out.update(WORKERS[kind](params))
        out["status"] = "ok"
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which goes on
        out["status"] = "error"
        out["error"] = f"{type(error).__name__}: {error}"
        out["traceback"] = traceback.format_exc()[-4000:]
    out["wall_s"] = time.time() - started
    out["load_avg_end"] = load_avg()
    # TensorFlow loaded into a JAX / torch worker would distort its memory and threads.
    out["tensorflow_imported"] = "tensorflow" in sys.modules
    out["self_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(result_path).write_text(json.dumps(out, indent=1, default=str))
    sys.stdout.flush()
    os._exit(0 if out["status"] == "ok" else 1)  # skip slow framework teardown


def serve_hub(root: str) -> int:
    """Run tests/hub_server.LocalHub until stdin closes; print the endpoint first."""
    sys.path.insert(0, str(ROOT / "tests"))
    from hub_server import LocalHub

    hub = LocalHub(Path(root)).start()
    print(hub.endpoint, flush=True)
    try:
        sys.stdin.read()
    finally:
        hub.stop()
        print(json.dumps({"requests": len(hub.requests), "errors": [repr(e) for e in hub.errors]}), flush=True)
    return 0


# ----------------------------------------------------------------------------------------------
# orchestrator
# ----------------------------------------------------------------------------------------------


class Runner:
    """Starts workers, collects their JSON, rusage and logs."""

    def __init__(self, work: Path, logs: Path, timeout_s: float, verbose: bool = True):
        self.work = work
        self.logs = logs
        self.timeout_s = timeout_s
        self.verbose = verbose
        self.count = 0

    def env_for(self, backend: str | None, extra: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> dict[str, str]:
        env = dict(os.environ)
        for key in drop:
            env.pop(key, None)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        if backend:
            env["KERAS_BACKEND"] = backend
        env.update(extra or {})
        return env

    def run(self, kind: str, label: str, params: dict, env: dict[str, str]) -> dict:
        self.count += 1
        stem = f"{self.count:02d}-{kind}-{label}".replace("/", "_").replace(" ", "_").replace("=", "")
        params_path = self.work / f"{stem}.params.json"
        result_path = self.work / f"{stem}.result.json"
        log_path = self.logs / f"{stem}.log"
        params_path.write_text(json.dumps(params))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--params", str(params_path), "--result", str(result_path)]
        if self.verbose:
            print(f"[{time.strftime('%H:%M:%S')}] {kind:10s} {label} ...", end="", flush=True)
        started = time.time()
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
            killer = threading.Timer(self.timeout_s, proc.kill)
            killer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                killer.cancel()
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.time() - started
        if result_path.exists():
            result = json.loads(result_path.read_text())
        else:
            tail = log_path.read_text(errors="replace")[-3000:]
            reason = "timed out" if wall >= self.timeout_s else f"exit code {proc.returncode}"
            result = {"kind": kind, "status": "error", "error": f"worker died ({reason}); log tail:\n{tail}"}
        result["label"] = label
        result["peak_rss_mb"] = usage.ru_maxrss / 1024  # KiB on Linux
        result["process_wall_s"] = wall
        result["log"] = str(log_path)
        if self.verbose:
            status_text = "ok" if result.get("status") == "ok" else "FAILED: " + str(result.get("error", ""))[:300]
            print(f" {wall:6.1f}s  {status_text}", flush=True)
        return result


def start_hub_server(work: Path, logs: Path) -> tuple[subprocess.Popen, str, Any]:
    log = open(logs / "hub-server.log", "w")  # noqa: SIM115 - closed by stop_hub_server
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-hub", str(work / "hub-root")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT,
    )
    line = [""]

    def read_line() -> None:
        line[0] = proc.stdout.readline().strip()

    reader = threading.Thread(target=read_line, daemon=True)
    reader.start()
    reader.join(60)
    if not line[0].startswith("http"):
        proc.kill()
        proc.wait()
        log.close()
        raise RuntimeError(f"the local Hub server did not start (see {logs / 'hub-server.log'})")
    return proc, line[0], log


def stop_hub_server(proc: subprocess.Popen, log: Any) -> dict:
    try:
        out, _ = proc.communicate(input="", timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    log.close()
    for text in reversed((out or "").strip().splitlines()):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            continue
    return {}


def parse_list(text: str | None, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    unknown = [t for t in items if t not in allowed]
    if unknown:
        raise SystemExit(f"Unknown {what}: {unknown}. Known: {', '.join(allowed)}")
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and steps (smoke test); numbers mean nothing")
    parser.add_argument("--backends", help="comma list among tensorflow,jax,torch (default: every installed one)")
    parser.add_argument("--models", help=f"comma list among {','.join(ALL_MODELS)} (default: all)")
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for results.md, results.json and logs/")
    parser.add_argument("--sections", default=",".join(ALL_SECTIONS), help=f"comma list among {','.join(ALL_SECTIONS)}")
    parser.add_argument("--tf-onednn", default="default,1", help="TensorFlow variants: 'default' (environment as is, "
                        "TF_ENABLE_ONEDNN_OPTS unset), '1' and/or '0' (default: default,1)")
    parser.add_argument("--jax-xla-flags", action="append", default=[], metavar="FLAGS",
                        help="also measure Keras on JAX with XLA_FLAGS=FLAGS (repeatable), e.g. "
                        "--xla_cpu_use_xnnpack=true; ratios are against the default environment")
    parser.add_argument("--torch-variants", default="eager", help="PyTorch peer variants: eager[,channels_last]")
    parser.add_argument("--windows", type=int, help="timed windows per measurement (full run: 5; use >= 3)")
    parser.add_argument("--window-seconds", type=float, help="target seconds per training window (full run: 6)")
    parser.add_argument("--window-budget", type=float, help="seconds of timed windows per measurement above which "
                        "fewer windows are taken, never fewer than 3 (full run: 240; 0: never cut)")
    parser.add_argument("--repeats", type=int, help="repeats of load / pull timings (full run: 3)")
    parser.add_argument("--timeout", type=float, help="seconds before a worker is killed (full run: 3600)")
    parser.add_argument("--data-dir", help="Fashion-MNIST IDX folder for the pipeline section (default: "
                        "$FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist)")
    parser.add_argument("--keep-work", action="store_true", help="keep the scratch folder (exports, caches)")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--serve-hub", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        return run_worker(args.worker, args.params, args.result)
    if args.serve_hub:
        return serve_hub(args.serve_hub)

    plan = dict(QUICK_PLAN if args.quick else FULL_PLAN)
    if args.windows is not None:
        plan["windows"] = max(1, args.windows)
    if args.window_seconds is not None:
        plan["train_window_s"] = args.window_seconds
        plan["infer_window_s"] = args.window_seconds / 2
    if args.window_budget is not None:
        plan["budget_s"] = max(0.0, args.window_budget)
    if args.repeats is not None:
        plan["repeats"] = max(1, args.repeats)
    if args.timeout is not None:
        plan["timeout_s"] = args.timeout

    sections = parse_list(args.sections, ALL_SECTIONS, "sections")
    requested_backends = parse_list(args.backends, ALL_BACKENDS, "backends") if args.backends else list(ALL_BACKENDS)
    models = parse_list(args.models, ALL_MODELS, "models") if args.models else list(ALL_MODELS)
    tf_variants = parse_list(args.tf_onednn, ("default", "1", "0"), "--tf-onednn values") or ["default"]
    env_variants = {"tensorflow": tf_variants, "jax": ["default", *args.jax_xla_flags]}
    torch_variants = parse_list(args.torch_variants, ("eager", "channels_last"), "--torch-variants") or ["eager"]
    skipped: list[dict[str, str]] = []
    backends = []
    for backend in requested_backends:
        if installed(backend):
            backends.append(backend)
        else:
            skipped.append({"section": "backend", "what": backend, "reason": f"{backend} is not installed"})
    torch_ok = installed("torch")

    out = Path(args.out)
    logs = out / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    runner = Runner(work, logs, plan["timeout_s"])
    shapes = {m: SHAPES[m]["quick_shape" if args.quick else "input_shape"] for m in ALL_MODELS}
    batches = {m: SHAPES[m]["quick_batch" if args.quick else "batch"] for m in ALL_MODELS}

    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "meta": {
            "started": now_iso(),
            "quick": args.quick,
            "command": " ".join([Path(sys.executable).name, "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
            "host": platform.node(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu": cpu_info(),
            "versions": versions(),
            "backends": backends,
            "models": models,
            "sections": sections,
            "plan": plan,
            "shapes": {m: {"input_shape": list(shapes[m]), "batch": batches[m]} for m in models},
            "load_avg_start": load_avg(),
            "env": {k: os.environ.get(k) for k in ("TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS", "XLA_FLAGS", "KERAS_BACKEND")},
        },
        "throughput": [],
        "options": [],
        "pipeline": [],
        "torch_peer": [],
        "load": [],
        "hub": None,
        "skipped": skipped,
        "errors": [],
    }
    started = time.time()
    print(f"zoo benchmarks -> {out} (scratch {work}); backends {backends}, models {models}, quick={args.quick}")

    def record_error(section: str, result: dict) -> None:
        if result.get("status") != "ok":
            results["errors"].append({"section": section, "label": result.get("label"), "error": result.get("error"), "log": result.get("log")})

    try:
        # ---- throughput, model by model, so a model's Keras and PyTorch figures are close in time
        for model in models:
            params = {"plan": plan, "model": model, "input_shape": shapes[model], "batch": batches[model]}
            if "throughput" in sections:
                for backend in backends:
                    for variant in env_variants.get(backend, ["default"]):
                        if variant == "default":
                            env = runner.env_for(backend, drop=("TF_ENABLE_ONEDNN_OPTS",))
                            label = backend
                        else:
                            variable = ENV_VARIANT_VARIABLE[backend]
                            env = runner.env_for(backend, {variable: variant}, drop=("TF_ENABLE_ONEDNN_OPTS",))
                            label = f"{backend} {variable}={variant}"
                        result = runner.run("throughput", f"{label} {model}", params, env)
                        result.update(backend=backend, variant=variant, model=model)
                        results["throughput"].append(result)
                        record_error("throughput", result)
            if "options" in sections:
                for backend in backends:
                    env = runner.env_for(backend, drop=("TF_ENABLE_ONEDNN_OPTS",))
                    result = runner.run("options", f"{backend} {model} options", params, env)
                    result.update(backend=backend, model=model)
                    results["options"].append(result)
                    record_error("options", result)
            if "pipeline" in sections:
                for backend in backends:
                    env = runner.env_for(backend, drop=("TF_ENABLE_ONEDNN_OPTS",))
                    result = runner.run("pipeline", f"{backend} {model} pipeline", {**params, "data_dir": args.data_dir}, env)
                    result.update(backend=backend, model=model)
                    if result.get("skip"):
                        skipped.append({"section": "pipeline", "what": f"{backend} {model}", "reason": result["skip"]})
                    else:
                        results["pipeline"].append(result)
                        record_error("pipeline", result)
            if "peer" in sections and model in TORCH_MODELS:
                if not torch_ok:
                    if not any(s["section"] == "peer" for s in skipped):
                        skipped.append({"section": "peer", "what": "PyTorch", "reason": "torch is not installed (pip install torch==2.13.0)"})
                else:
                    result = runner.run("torch", f"pytorch {model}", {**params, "variants": torch_variants}, runner.env_for(None))
                    result["model"] = model
                    results["torch_peer"].append(result)
                    record_error("peer", result)
            elif "peer" in sections:
                skipped.append({"section": "peer", "what": model, "reason": "no PyTorch reference for this architecture"})

        # ---- load
        if "load" in sections:
            for backend in backends:
                params = {"plan": plan, "models": models, "shapes": shapes, "work": str(work)}
                result = runner.run("load", backend, params, runner.env_for(backend, drop=("TF_ENABLE_ONEDNN_OPTS",)))
                result["backend"] = backend
                results["load"].append(result)
                record_error("load", result)

        # ---- hub
        if "hub" in sections:
            if not backends:
                skipped.append({"section": "hub", "what": "hub", "reason": "no Keras backend installed"})
            else:
                backend = backends[0]
                hf_home = work / "hf-home"
                try:
                    server, endpoint, server_log = start_hub_server(work, logs)
                except Exception as error:  # noqa: BLE001
                    results["hub"] = {"status": "error", "error": f"{type(error).__name__}: {error}"}
                    record_error("hub", results["hub"])
                else:
                    try:
                        env = runner.env_for(backend, {
                            "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(hf_home),
                            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                        }, drop=("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_HUB_ENABLE_HF_TRANSFER", "TF_ENABLE_ONEDNN_OPTS"))
                        params = {"plan": plan, "models": models, "shapes": shapes, "work": str(work)}
                        result = runner.run("hub", backend, params, env)
                    finally:
                        server_report = stop_hub_server(server, server_log)
                    result["backend"] = backend
                    result["server"] = server_report
                    if server_report.get("errors"):
                        result.setdefault("notes", []).append(f"the local Hub server logged errors: {server_report['errors'][:3]}")
                    results["hub"] = result
                    record_error("hub", result)
    finally:
        results["meta"]["finished"] = now_iso()
        results["meta"]["wall_s"] = time.time() - started
        results["meta"]["load_avg_end"] = load_avg()
        attach_peer_ratios(results)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
        (out / "results.md").write_text(render_markdown(results))
        if args.keep_work:
            print(f"scratch kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {out / 'results.md'} and {out / 'results.json'} in {results['meta']['wall_s']:.0f} s")
    if results["errors"]:
        print(f"{len(results['errors'])} part(s) failed; see 'errors' in results.json and the logs in {logs}")
    return 1 if results["errors"] else 0


def attach_peer_ratios(results: dict) -> None:
    """zoo (each Keras backend) / plain PyTorch eager, per architecture, train and inference."""
    peer = {r["model"]: r for r in results["torch_peer"] if r.get("status") == "ok"}
    for row in results["throughput"]:
        torch_row = peer.get(row.get("model"))
        if row.get("status") != "ok" or torch_row is None:
            continue
        for part in ("train", "infer"):
            zoo_median = row[part]["zoo"]["median"]
            torch_median = torch_row[part]["eager"]["median"] if "eager" in torch_row[part] else None
            row[part]["torch_eager_median"] = torch_median
            row[part]["ratio_vs_torch"] = ratio(zoo_median, torch_median)


# ----------------------------------------------------------------------------------------------
# markdown
# ----------------------------------------------------------------------------------------------


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _output_difference(row: dict, base: dict | None) -> str:
    """Largest absolute difference between the probe outputs (softmax) of two throughput rows."""
    if base is None or "probe_output" not in row or "probe_output" not in base:
        return "-"
    pairs = zip(itertools.chain.from_iterable(row["probe_output"]), itertools.chain.from_iterable(base["probe_output"]))
    return f"{max(abs(a - b) for a, b in pairs):.1e}"


def _label(row: dict) -> str:
    if row.get("backend") == "jax" and row.get("variant", "default") != "default":
        return f"jax, XLA_FLAGS={row['variant']}"
    if row.get("backend") != "tensorflow":
        return row.get("backend", "?")
    state = row.get("onednn_enabled")
    state_text = "" if state is None else (" (oneDNN on)" if state else " (oneDNN off)")
    if row.get("variant", "default") == "default":
        return f"tensorflow, default env{state_text}"
    return f"tensorflow, TF_ENABLE_ONEDNN_OPTS={row['variant']}{state_text}"


def render_markdown(results: dict) -> str:
    meta = results["meta"]
    cpu = meta.get("cpu", {})
    v = meta.get("versions", {})
    lines = [
        "# zoo CPU benchmark results",
        "",
        "Generated by `benchmarks/run.py`; see BENCHMARKS.md for what each column means.",
        "",
        f"- Command: `{meta.get('command')}`" + ("  **(--quick: tiny sizes, the numbers mean nothing)**" if meta.get("quick") else ""),
        f"- Date: {meta.get('started')} to {meta.get('finished')} ({_f(meta.get('wall_s'), 0)} s)",
        (f"- Machine: {cpu.get('model', '?')}, {cpu.get('affinity_cpus', cpu.get('logical_cpus'))} CPUs, "
        f"{cpu.get('mem_total_gb', '?')} GB; flags {', '.join(cpu.get('flags', [])) or '?'}; {meta.get('platform')}"),
        f"- Load average at start / end: {meta.get('load_avg_start')} / {meta.get('load_avg_end')}",
        (f"- Python {meta.get('python')}; keras {v.get('keras')}, tensorflow {v.get('tensorflow')}, jax {v.get('jax')}, "
        f"torch {v.get('torch')}, numpy {v.get('numpy')}, safetensors {v.get('safetensors')}, "
        f"huggingface_hub {v.get('huggingface_hub')}, keras-zoo {v.get('keras-zoo')}"),
        f"- Plan: {meta.get('plan')}",
        "",
    ]

    rows = [r for r in results["throughput"] if r.get("status") == "ok"]
    lines += ["## Throughput (images/s, median of timed windows; higher is better)", ""]
    if not rows:
        lines += ["No zoo/ref throughput rows in this run (`throughput` section not run, or it failed).", ""]
    else:
        lines += [
            ("zoo = `zoo.create(...)`; ref = the tutorial's plain Keras code (benchmarks/reference_keras.py); "
            "PyTorch = benchmarks/reference_torch.py, eager. Ratios are zoo / other (target zoo/ref >= 0.98)."),
            "",
            ("| backend | model | input, batch | train zoo | train ref | zoo/ref | train PyTorch | zoo/PyTorch "
            "| infer zoo | infer ref | zoo/ref | infer PyTorch | zoo/PyTorch | peak RSS MB |"),
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
    for r in rows:
        shape = "x".join(str(d) for d in r["input_shape"])
        t, i = r["train"], r["infer"]
        lines.append(
            f"| {_label(r)} | {r['model']} | {shape}, {r['batch']} | {_f(t['zoo']['median'])} | {_f(t['reference']['median'])} "
            f"| {_f(t['ratio'], 3)} | {_f(t.get('torch_eager_median'))} | {_f(t.get('ratio_vs_torch'), 2)} "
            f"| {_f(i['zoo']['median'])} | {_f(i['reference']['median'])} | {_f(i['ratio'], 3)} "
            f"| {_f(i.get('torch_eager_median'))} | {_f(i.get('ratio_vs_torch'), 2)} | {_f(r.get('peak_rss_mb'), 0)} |"
        )
    lines.append("")

    peers = [r for r in results["torch_peer"] if r.get("status") == "ok"]
    if peers:
        lines += [
            "### PyTorch peer",
            "",
            "| model | variant | threads | train img/s | infer img/s | peak RSS MB |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in peers:
            for variant in (k for k in r["train"] if isinstance(r["train"][k], dict)):
                lines.append(
                    f"| {r['model']} | {variant} | {r.get('torch_threads')} | {_f(r['train'][variant]['median'])} "
                    f"| {_f(r['infer'][variant]['median'])} | {_f(r.get('peak_rss_mb'), 0)} |"
                )
        lines.append("")

    for backend, title in (("tensorflow", "TensorFlow: TF_ENABLE_ONEDNN_OPTS"), ("jax", "JAX: XLA_FLAGS")):
        backend_rows = [r for r in rows if r.get("backend") == backend]
        if len({r.get("variant", "default") for r in backend_rows}) < 2:
            continue
        variable = ENV_VARIANT_VARIABLE[backend]
        lines += [
            f"### {title} (zoo model, against the default environment in the same run)",
            "",
            ("| model | environment | oneDNN on? | train zoo | vs default | infer zoo | vs default "
            "| max abs output difference vs default |"),
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for model in results["meta"]["models"]:
            by_variant = {r.get("variant", "default"): r for r in backend_rows if r["model"] == model}
            base = by_variant.get("default")
            for variant, r in sorted(by_variant.items(), key=lambda kv: kv[0] != "default"):
                tz, iz = r["train"]["zoo"]["median"], r["infer"]["zoo"]["median"]
                lines.append(
                    f"| {model} | {'default env' if variant == 'default' else f'{variable}={variant}'} "
                    f"| {r.get('onednn_enabled', '-')} | {_f(tz)} | {_f(ratio(tz, base['train']['zoo']['median']) if base else None, 2)} "
                    f"| {_f(iz)} | {_f(ratio(iz, base['infer']['zoo']['median']) if base else None, 2)} "
                    f"| {_output_difference(r, base)} |"
                )
        lines.append("")

    if rows:
        lines += [
            "### First-call costs (seconds)",
            "",
            "| backend | model | build zoo | build ref | first fit zoo | first fit ref | jit_compile | steps/window |",
            "|---|---|---:|---:|---:|---:|---|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {_label(r)} | {r['model']} | {_f(r['build_s']['zoo'], 2)} | {_f(r['build_s']['reference'], 2)} "
                f"| {_f(r['first_fit_s']['zoo'], 1)} | {_f(r['first_fit_s']['reference'], 1)} | {r.get('jit_compile', {}).get('zoo')} "
                f"| {r['train']['steps_per_window']} |"
            )
        lines.append("")

    options = [r for r in results.get("options", []) if r.get("status") == "ok"]
    if options:
        lines += [
            "### Compile and precision options (zoo model, against the backend's default)",
            "",
            ("default = `jit_compile=\"auto\"`, float32; `xla` / `no_xla` = `jit_compile=True` / `False`; "
            "`mixed_bfloat16` = the Keras dtype policy (bfloat16 compute, float32 variables), `jit_compile=\"auto\"`. "
            "Measured interleaved in one process per backend and model."),
            "",
            "| backend | model | option | jit_compile | train img/s | vs default | infer img/s | vs default | first fit s |",
            "|---|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in options:
            for key, option in r["options"].items():
                lines.append(
                    f"| {r['backend']} | {r['model']} | {key} | {option['jit_compile']} | {_f(r['train'][key]['median'])} "
                    f"| {_f(r['train']['ratio_vs_default'][key], 2)} | {_f(r['infer'][key]['median'])} "
                    f"| {_f(r['infer']['ratio_vs_default'][key], 2)} | {_f(r['first_fit_s'][key], 1)} |"
                )
        lines.append("")

    pipelines = [r for r in results.get("pipeline", []) if r.get("status") == "ok"]
    if pipelines:
        lines += [
            "### Input pipeline (zoo model, training images/s against in-memory arrays)",
            "",
            ("arrays = the same Fashion-MNIST images as uint8 numpy arrays, `fit(x, y)`; pipeline = "
            "`zoo.data.ArrayDataset` with the recipe's augmentation, shuffled (what `scripts/train.py` feeds); "
            "threads = the same on 2 worker threads; alone = the pipeline without a model. "
            "Target (the GPU issue's): pipeline >= 0.90 of arrays."),
            "",
            ("| backend | model | input, batch | augmentation | arrays | pipeline | vs arrays | no augmentation | vs arrays "
            "| threads | vs arrays | pipeline alone |"),
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in pipelines:
            t, rel = r["train"], r["train"]["ratio_vs_arrays"]
            shape = "x".join(str(d) for d in r["input_shape"])
            lines.append(
                f"| {r['backend']} | {r['model']} | {shape}, {r['batch']} | {r.get('augmentation')} | {_f(t['arrays']['median'])} "
                f"| {_f(t['pipeline']['median'])} | {_f(rel['pipeline'], 2)} | {_f(t['no_augmentation']['median'])} "
                f"| {_f(rel['no_augmentation'], 2)} | {_f(t['pipeline_threads']['median'])} | {_f(rel['pipeline_threads'], 2)} "
                f"| {_f(r['pipeline_alone']['median'], 0)} |"
            )
        lines.append("")

    loads = [r for r in results["load"] if r.get("status") == "ok"]
    if loads:
        lines += [
            "## Load times (seconds; lower is better)",
            "",
            ("Import times: the framework alone in a fresh interpreter; `import keras` in a fresh interpreter "
            "(includes the framework); then `import zoo` (+ registering the architectures). "
            "`zoo.load(folder)` is timed after a first call, from a folder whose files are in the page cache."),
            "",
            ("| backend | import framework | import keras (incl. framework) | import zoo | model | weights MB | first zoo.load | zoo.load | "
            "verify (sha256) | build | load weights | peak RSS MB |"),
            "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in loads:
            for model, e in r["models"].items():
                lines.append(
                    f"| {r['backend']} | {_f(r['import_framework_s'], 2)} | {_f(r['import_keras_s'], 2)} | {_f(r['import_zoo_s'], 2)} "
                    f"| {model} | {_f(e['weights_mb'])} | {_f(e['first_load_s'], 2)} | {_f(e['load_s'], 2)} | {_f(e['verify_s'], 3)} "
                    f"| {_f(e['build_s'], 2)} | {_f(e['weights_s'], 3)} | {_f(r.get('peak_rss_mb'), 0)} |"
                )
        lines += [
            "",
            "### ResNet-34 weights: safetensors (`zoo.load_weights`) vs Keras `.weights.h5` (`model.load_weights`)",
            "",
            ("| backend | safetensors s | .weights.h5 s | h5 / safetensors (target >= 2) | file MB (st / h5) "
            "| tracemalloc peak MB (st / h5) |"),
            "|---|---:|---:|---:|---|---|",
        ]
        for r in loads:
            w = r["weights_resnet34"]
            peak = w["tracemalloc_peak_mb"]
            lines.append(
                f"| {r['backend']} | {_f(w['safetensors_s'], 3)} | {_f(w['h5_s'], 3)} | {_f(w['speedup'], 2)} "
                f"| {_f(w['safetensors_mb'])} / {_f(w['h5_mb'])} | {_f(peak['safetensors'])} / {_f(peak['h5'])} |"
            )
        lines.append("")

    hub = results.get("hub")
    if hub and hub.get("status") == "ok":
        lines += [
            "## Hub (local Hub-compatible server, tests/hub_server.py, over 127.0.0.1)",
            "",
            (f"Backend {hub.get('backend')}, huggingface_hub {hub.get('huggingface_hub')}, Xet disabled. "
            "MB = 10^6 bytes. Cold = empty cache directory; the verify share is sha256 time / `zoo.hub.pull` time."),
            "",
            ("| model | MB | push MB/s | download MB/s | zoo pull MB/s | sha256 MB/s | verify share (cold) "
            "| warm pull s | verify share (warm) | zoo.load hf:// warm s | offline s | peak RSS MB |"),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for model, e in hub["repos"].items():
            lines.append(
                f"| {model} | {_f(e['mb'])} | {_f(e['push_mb_s'])} | {_f(e['download_mb_s'])} | {_f(e['pull_mb_s'])} "
                f"| {_f(e['sha256_mb_s'])} | {_f(100 * e['verify_fraction_of_pull'], 0)}% | {_f(e['warm_pull_s'], 3)} "
                f"| {_f(100 * e['verify_fraction_of_warm_pull'], 0)}% | {_f(e['load_hf_warm_online_s'], 2)} "
                f"| {_f(e['load_hf_warm_offline_s'], 2)} | {_f(hub.get('peak_rss_mb'), 0)} |"
            )
        lines.append("")

    notes = []
    for section in ("throughput", "options", "pipeline", "load"):
        for r in results[section]:
            if r.get("backend") not in (None, "tensorflow") and r.get("tensorflow_imported"):
                notes.append(f"{section} {r.get('label')}: TensorFlow was imported into this {r['backend']} worker")
    hub_row = results.get("hub") or {}
    notes += list(hub_row.get("notes") or [])
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    if results["skipped"]:
        lines += ["## Skipped", ""] + [f"- {s['section']}: {s['what']}: {s['reason']}" for s in results["skipped"]] + [""]
    if results["errors"]:
        lines += ["## Errors", ""]
        for e in results["errors"]:
            first = str(e.get("error", "")).strip().splitlines()[:1]
            lines.append(f"- {e['section']} {e.get('label') or ''}: {first[0] if first else ''} (log: {e.get('log')})")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

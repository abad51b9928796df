"""Speed workers of the CPU benchmarks: zoo vs reference Keras throughput, compile / precision
options, the input pipeline, and the plain PyTorch peer. Each runs in its own interpreter, started
by ``benchmarks/run.py --worker KIND``."""

from __future__ import annotations

import time
from typing import Any

from common import (
    ZOO_OVERRIDES,
    _backend_info,
    _compile_for_benchmark,
    _interleaved,
    _measure_inference,
    _measure_training,
    _quiet_logs,
    _seed,
    _steps_for,
    _summary,
    _synthetic_batches,
    _windows_for,
    median,
    ratio,
)


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

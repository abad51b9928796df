#!/usr/bin/env python
"""One-call GPU benchmark for a lent H200: zoo ResNet-34 on Keras/JAX against PyTorch, in one run.

    python benchmarks/gpu.py [--data-dir DIR] [--out DIR] [--wheels DIR] [--budget-s 480]
    python benchmarks/gpu.py --dry-run          # on a CPU: tiny sizes, checks the plumbing only

Measures, each part in its own subprocess (JAX and PyTorch never share a process or GPU memory):

1. ``keras224``: ``zoo.create("resnet34", input_shape=(224, 224, 3), stem="imagenet")``, Keras on
   JAX, ``mixed_bfloat16``, ``model.fit`` on uint8 numpy batches of 256: training images/s.
2. ``torch_eager``: torchvision ``resnet34``, channels_last, autocast bf16, eager, at 224x224x3 batch
   256 and 28x28x1 batch 512 (3x3/1 stem, no max-pool: zoo's ``stem="small"``).
3. ``keras28``: the zoo ResNet-34 with ``stem="small"`` at 28x28x1, batch 512, on synthetic uint8
   arrays, then on the real Fashion-MNIST input pipeline (``zoo.data.ArrayDataset`` with
   ``Augmenter(pad=4, flip=True)``; without augmentation; with 4 worker threads) and the pipeline
   alone without a model.
4. ``torch_compile224`` / ``torch_compile28``: the same PyTorch models through ``torch.compile``.

Sections run in that order while the time budget (``--budget-s``, default 480 s) lasts; a section
that would start with less than its expected cost left is skipped and reported. Results go to
``$OUT/gpu_results.json`` (or ``--out``), worker logs to ``$OUT/logs/``; a short table is printed last.

The lent machine has Python 3.12, JAX and PyTorch but neither TensorFlow nor Keras: when ``keras``
(or ``namex``, ``optree``, ``safetensors``) is missing, the wheels in ``--wheels`` (default:
``wheels/`` at the repository root, then ``benchmarks/wheels/``) are installed with
``pip install --no-index`` first. Prepare them on a machine with network access with::

    python benchmarks/gpu.py --fetch-wheels     # pip download ... --python-version 3.12 -d wheels/
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WHEEL_MODULES = ("keras", "namex", "optree", "safetensors", "typing_extensions")
WHEEL_REQUIREMENTS = ["keras==3.15.1", "namex", "optree", "safetensors", "typing-extensions"]

#: Sizes per section: (full run, --dry-run).
CONFIG = {
    "keras224": {
        "full": {"input_shape": (224, 224, 3), "batch": 256, "steps": 32, "windows": 4, "num_classes": 1000, "stem": "imagenet"},
        "dry": {"input_shape": (32, 32, 3), "batch": 4, "steps": 2, "windows": 2, "num_classes": 1000, "stem": "imagenet"},
    },
    "keras28": {
        "full": {"input_shape": (28, 28, 1), "batch": 512, "windows": 3, "num_classes": 10, "stem": "small", "limit": None},
        "dry": {"input_shape": (28, 28, 1), "batch": 8, "windows": 2, "num_classes": 10, "stem": "small", "limit": 32},
    },
    "torch": {
        "full": {"224": {"input_shape": (224, 224, 3), "batch": 256, "num_classes": 1000, "stem": "imagenet"},
                 "28": {"input_shape": (28, 28, 1), "batch": 512, "num_classes": 10, "stem": "small"},
                 "warmup": 10, "steps": 30, "windows": 4},
        "dry": {"224": {"input_shape": (32, 32, 3), "batch": 4, "num_classes": 1000, "stem": "imagenet"},
                "28": {"input_shape": (28, 28, 1), "batch": 8, "num_classes": 10, "stem": "small"},
                "warmup": 1, "steps": 2, "windows": 2},
    },
}
#: Order, and the seconds each section needs at least (full run; start-up and compile included).
SECTIONS = [
    ("keras224", 90),
    ("torch_eager", 60),
    ("keras28", 90),
    ("torch_compile224", 120),
    ("torch_compile28", 120),
]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# ----------------------------------------------------------------------------------------------
# wheels
# ----------------------------------------------------------------------------------------------


def missing_modules() -> list[str]:
    return [m for m in WHEEL_MODULES if importlib.util.find_spec(m) is None]


def wheel_dirs(explicit: str | None) -> list[Path]:
    candidates = [Path(explicit)] if explicit else [ROOT / "wheels", HERE / "wheels"]
    return [d for d in candidates if d.is_dir() and any(d.glob("*.whl"))]


def install_wheels(explicit: str | None) -> dict[str, Any]:
    """pip-install the carried wheels when keras (or a dependency zoo needs) is missing."""
    report: dict[str, Any] = {"missing_before": missing_modules()}
    if not report["missing_before"]:
        report["action"] = "nothing to install"
        return report
    dirs = wheel_dirs(explicit)
    if not dirs:
        report["action"] = "no wheels/ directory with .whl files found"
        return report
    wheels = sorted(str(p) for d in dirs for p in d.glob("*.whl"))
    base = [sys.executable, "-m", "pip", "install", "--no-index", "--disable-pip-version-check", "--quiet"]
    base += [f"--find-links={d}" for d in dirs]
    attempts = []
    for extra in ([], ["--no-deps"]):
        done = subprocess.run(base + extra + wheels, capture_output=True, text=True, check=False)
        attempts.append({"args": extra, "rc": done.returncode, "tail": (done.stdout + done.stderr)[-2000:]})
        if done.returncode == 0:
            break
    importlib.invalidate_caches()
    report.update(action="pip install --no-index", attempts=attempts, missing_after=missing_modules())
    return report


def fetch_wheels(target: Path) -> int:
    """Download the wheels for a Python 3.12 x86_64 Linux machine (needs network)."""
    target.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps",
        "--python-version", "3.12", "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
        "-d", str(target), *WHEEL_REQUIREMENTS,
    ]
    print(" ".join(cmd))
    return subprocess.call(cmd)


# ----------------------------------------------------------------------------------------------
# workers
# ----------------------------------------------------------------------------------------------


def _keras_setup(dry_run: bool) -> dict[str, Any]:
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import keras

    devices = jax.devices()
    info = {"keras": keras.__version__, "jax": jax.__version__, "devices": [str(d) for d in devices]}
    if devices[0].platform != "gpu" and not dry_run:
        raise RuntimeError(f"JAX sees no GPU (devices: {info['devices']}); use --dry-run on a CPU")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    import numpy as np

    np.random.seed(0)  # not keras.utils.set_random_seed: it imports TensorFlow when installed
    return info


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Epoch-end timestamps (epoch ends sync the device); batch ends stay asynchronous."""

        def __init__(self):
            super().__init__()
            self.marks: list[float] = []

        def on_train_begin(self, logs=None):
            self.marks = [time.perf_counter()]

        def on_epoch_end(self, epoch, logs=None):
            self.marks.append(time.perf_counter())

        def per_epoch(self) -> list[float]:
            return [b - a for a, b in itertools.pairwise(self.marks)]

    return EpochTimer()


def _zoo_resnet(cfg: dict):
    import keras

    sys.path.insert(0, str(ROOT))
    import zoo

    model = zoo.create("resnet34", input_shape=tuple(cfg["input_shape"]), num_classes=cfg["num_classes"], stem=cfg["stem"])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
        loss="sparse_categorical_crossentropy",
    )
    return model


def _fit_windows(model, data, *, batch: int | None, epochs: int, **kwargs) -> dict[str, Any]:
    """fit for ``epochs`` epochs; epoch 1 (compile / warm-up) is reported apart from the windows."""
    timer = _epoch_timer()
    if isinstance(data, tuple):
        model.fit(data[0], data[1], batch_size=batch, epochs=epochs, verbose=0, callbacks=[timer], **kwargs)
    else:
        model.fit(data, epochs=epochs, verbose=0, callbacks=[timer], **kwargs)
    durations = timer.per_epoch()
    return {"first_epoch_s": durations[0], "window_s": durations[1:]}


def worker_keras224(cfg: dict, dry_run: bool) -> dict[str, Any]:
    import numpy as np

    result = _keras_setup(dry_run)
    t = time.perf_counter()
    model = _zoo_resnet(cfg)
    result["build_s"] = time.perf_counter() - t
    batch, steps = cfg["batch"], cfg["steps"]
    rng = np.random.default_rng(0)
    n = batch * steps
    x = rng.integers(0, 256, size=(n, *cfg["input_shape"]), dtype=np.uint8)
    y = rng.integers(0, cfg["num_classes"], size=(n,)).astype("int32")
    run = _fit_windows(model, (x, y), batch=batch, epochs=1 + cfg["windows"], shuffle=False)
    rates = [n / s for s in run["window_s"]]
    result.update(
        config=cfg, first_epoch_s=run["first_epoch_s"], windows_img_s=rates, img_s=_median(rates),
        policy="mixed_bfloat16", jit_compile=getattr(model, "jit_compile", None),
    )
    return result


def worker_keras28(cfg: dict, dry_run: bool, data_dir: str | None) -> dict[str, Any]:
    import numpy as np

    result = _keras_setup(dry_run)
    sys.path.insert(0, str(ROOT))
    from zoo.data import ArrayDataset, Augmenter, find_data_dir, load_fashion_mnist

    t = time.perf_counter()
    model = _zoo_resnet(cfg)
    result["build_s"] = time.perf_counter() - t
    batch, windows = cfg["batch"], cfg["windows"]
    epochs = 1 + windows
    found = find_data_dir(data_dir)
    result["data_dir"] = str(found) if found else None
    if found is not None:
        x_real, y_real = load_fashion_mnist("train", data_dir=found, limit=cfg["limit"])
    else:  # no download attempt: the lent machine has no network
        x_real = y_real = None
        result["note"] = f"Fashion-MNIST not found (--data-dir {data_dir!r}, $FASHION_MNIST_DIR, Debian path): real-data runs skipped"
    n = (60000 if cfg["limit"] is None else cfg["limit"]) // batch * batch
    rng = np.random.default_rng(0)
    x_syn = rng.integers(0, 256, size=(n, *cfg["input_shape"]), dtype=np.uint8)
    y_syn = rng.integers(0, cfg["num_classes"], size=(n,)).astype("int32")
    runs: dict[str, Any] = {}

    def record(name: str, run: dict[str, Any], images: int) -> None:
        rates = [images / s for s in run["window_s"]]
        runs[name] = {"first_epoch_s": run["first_epoch_s"], "windows_img_s": rates, "img_s": _median(rates), "images_per_epoch": images}

    record("synthetic arrays", _fit_windows(model, (x_syn, y_syn), batch=batch, epochs=epochs, shuffle=True), n)
    if x_real is not None:
        x_real, y_real = x_real[:n], y_real[:n].astype("int32")
        augment = Augmenter(pad=4, flip=True)
        pipelines = {
            "ArrayDataset + Augmenter(pad=4, flip)": {"augmenter": augment},
            "ArrayDataset, no augmentation": {"augmenter": None},
            "ArrayDataset + Augmenter, 4 worker threads": {"augmenter": augment, "workers": 4, "use_multiprocessing": False},
        }
        for name, extra in pipelines.items():
            ds = ArrayDataset(x_real, y_real, batch_size=batch, dtype="uint8", drop_remainder=True, seed=0, **extra)
            record(name, _fit_windows(model, ds, batch=None, epochs=epochs), len(ds) * batch)
        ds = ArrayDataset(x_real, y_real, batch_size=batch, dtype="uint8", drop_remainder=True, seed=0, augmenter=augment)
        t = time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        runs["pipeline alone (ArrayDataset + Augmenter, no model)"] = {"img_s": len(ds) * batch / (time.perf_counter() - t)}
    result.update(config=cfg, runs=runs, policy="mixed_bfloat16")
    return result


def _torch_model(cfg: dict, device: str):
    import torch
    from torch import nn

    channels = cfg["input_shape"][-1]
    try:
        import torchvision

        net = torchvision.models.resnet34(num_classes=cfg["num_classes"])
        if cfg["stem"] == "small":
            net.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif channels != 3:
            net.conv1 = nn.Conv2d(channels, 64, 7, stride=2, padding=3, bias=False)

        class Rescaled(nn.Module):  # raw uint8 pixels in, like zoo's Rescaling layer
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                return self.inner(x.float() / 255.0)

        net, source = Rescaled(net), f"torchvision {torchvision.__version__} resnet34"
    except ImportError:
        sys.path.insert(0, str(HERE))
        import reference_torch

        net = reference_torch.ResNet34(channels, cfg["num_classes"], stem=cfg["stem"])
        source = "benchmarks/reference_torch.py ResNet34 (torchvision not installed)"
    net = net.to(device=device, memory_format=torch.channels_last)
    return net, source


def _torch_train(cfg: dict, timing: dict, device: str, compiled: bool) -> dict[str, Any]:
    """Train one PyTorch ResNet-34 on one resident batch; images/s over timed windows."""
    import torch

    cuda = device == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    torch.manual_seed(0)
    net, source = _torch_model(cfg, device)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    height, width, channels = cfg["input_shape"]
    batch = cfg["batch"]
    x = torch.randint(0, 256, (batch, channels, height, width), dtype=torch.uint8, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, cfg["num_classes"], (batch,), device=device)
    model = torch.compile(net) if compiled else net

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    t = time.perf_counter()
    for _ in range(timing["warmup"]):
        step()
    sync()
    warmup_s = time.perf_counter() - t
    rates = []
    for _ in range(timing["windows"]):
        sync()
        t = time.perf_counter()
        for _ in range(timing["steps"]):
            step()
        sync()
        rates.append(timing["steps"] * batch / (time.perf_counter() - t))
    return {
        "config": cfg, "source": source, "compiled": compiled, "warmup_s": warmup_s,
        "windows_img_s": rates, "img_s": _median(rates), "input": "uint8 batch resident on the device",
    }


def worker_torch(configs: dict, dry_run: bool, compiled: bool, shapes: list[str]) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not dry_run:
        raise RuntimeError("PyTorch sees no CUDA device; use --dry-run on a CPU")
    device = "cuda" if cuda else "cpu"
    result: dict[str, Any] = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if cuda else "cpu", "runs": {}}
    if cuda:
        torch.backends.cudnn.benchmark = True
    for shape_key in shapes:
        result["runs"][shape_key] = _torch_train(configs[shape_key], configs, device, compiled)
        if cuda:
            torch.cuda.empty_cache()
    return result


def run_worker(name: str, args: argparse.Namespace) -> int:
    kind = "dry" if args.dry_run else "full"
    started = time.time()
    out: dict[str, Any] = {"section": name, "started": _now()}
    try:
        if name == "keras224":
            out.update(worker_keras224(CONFIG["keras224"][kind], args.dry_run))
        elif name == "keras28":
            out.update(worker_keras28(CONFIG["keras28"][kind], args.dry_run, args.data_dir))
        elif name == "torch_eager":
            out.update(worker_torch(CONFIG["torch"][kind], args.dry_run, False, ["224", "28"]))
        elif name == "torch_compile224":
            out.update(worker_torch(CONFIG["torch"][kind], args.dry_run, True, ["224"]))
        elif name == "torch_compile28":
            out.update(worker_torch(CONFIG["torch"][kind], args.dry_run, True, ["28"]))
        else:
            raise ValueError(f"unknown section {name!r}")
        out["status"] = "ok"
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        out.update(status="error", error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc()[-3000:])
    out["wall_s"] = time.time() - started
    Path(args.result).write_text(json.dumps(out, indent=1, default=str))
    sys.stdout.flush()
    os._exit(0 if out["status"] == "ok" else 1)


# ----------------------------------------------------------------------------------------------
# parent
# ----------------------------------------------------------------------------------------------


def _gpu_description() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
        capture_output=True, text=True, check=False,
    )
    return done.stdout.strip() or None


def _run_section(name: str, args: argparse.Namespace, out: Path, timeout: float) -> dict[str, Any]:
    logs = out / "logs"
    result_path = out / f"gpu_{name}.json"
    result_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--result", str(result_path)]
    if args.dry_run:
        cmd.append("--dry-run")
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if args.dry_run:
        env.setdefault("JAX_PLATFORMS", "cpu")
    started = time.time()
    with open(logs / f"{name}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
    wall = time.time() - started
    if result_path.exists():
        result = json.loads(result_path.read_text())
    else:
        tail = (logs / f"{name}.log").read_text(errors="replace")[-2000:]
        reason = f"killed after {timeout:.0f} s (budget)" if wall >= timeout else f"exit status {os.waitstatus_to_exitcode(status)}"
        result = {"section": name, "status": "error", "error": f"worker died ({reason}); log tail:\n{tail}"}
    result["process_wall_s"] = wall
    result["host_peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


def _table(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    sections = results["sections"]

    def img_s(section: str, *path: str) -> float | None:
        node: Any = sections.get(section)
        if not node or node.get("status") != "ok":
            return None
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
            if node is None:
                return None
        return node if isinstance(node, (int, float)) else None

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    kind = "dry" if results["dry_run"] else "full"
    c224, c28 = CONFIG["keras224"][kind], CONFIG["keras28"][kind]
    s224 = "x".join(map(str, c224["input_shape"])) + f" b{c224['batch']}"
    s28 = "x".join(map(str, c28["input_shape"])) + f" b{c28['batch']}"
    k224 = img_s("keras224", "img_s")
    e224 = img_s("torch_eager", "runs", "224", "img_s")
    t224 = img_s("torch_compile224", "runs", "224", "img_s")
    k28 = img_s("keras28", "runs", "synthetic arrays", "img_s")
    e28 = img_s("torch_eager", "runs", "28", "img_s")
    t28 = img_s("torch_compile28", "runs", "28", "img_s")
    torch_sources = {
        run.get("source", "")
        for name in ("torch_eager", "torch_compile224", "torch_compile28")
        for run in ((sections.get(name) or {}).get("runs") or {}).values()
    }
    peer = "torchvision resnet34" if all(s.startswith("torchvision") for s in torch_sources) else "PyTorch ResNet-34"
    rows.append((f"zoo resnet34 Keras/JAX mixed_bfloat16, {s224}", fmt(k224), ""))
    rows.append((f"{peer} eager bf16, {s224}", fmt(e224), f"zoo/eager {_fmt_ratio(_ratio(k224, e224))}"))
    rows.append((f"{peer} torch.compile bf16, {s224}", fmt(t224), f"zoo/compile {_fmt_ratio(_ratio(k224, t224))}"))
    rows.append((f"zoo resnet34 small stem, {s28}, synthetic arrays", fmt(k28), ""))
    rows.append((f"{peer} small stem eager, {s28}", fmt(e28), f"zoo/eager {_fmt_ratio(_ratio(k28, e28))}"))
    rows.append((f"{peer} small stem torch.compile, {s28}", fmt(t28), f"zoo/compile {_fmt_ratio(_ratio(k28, t28))}"))
    keras28 = sections.get("keras28") or {}
    for name, run in (keras28.get("runs") or {}).items():
        if name == "synthetic arrays":
            continue
        note = "input pipeline only" if name.startswith("pipeline alone") else f"vs synthetic {_fmt_ratio(_ratio(run.get('img_s'), k28))}"
        rows.append((f"zoo small stem, Fashion-MNIST: {name}", fmt(run.get("img_s")), note))
    return rows


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder with the four Fashion-MNIST IDX files (.gz or raw)")
    parser.add_argument("--out", help="output folder (default: $OUT, else benchmarks/results/gpu)")
    parser.add_argument("--overwrite", action="store_true", help="replace a gpu_results.json already in the output folder")
    parser.add_argument("--wheels", help="folder of wheels to install when keras is missing (default: wheels/, benchmarks/wheels/)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="stop starting sections after this many seconds (default 480)")
    parser.add_argument("--sections", help="comma list among " + ",".join(n for n, _ in SECTIONS))
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, no torch.compile unless --dry-run-compile: checks the plumbing only")
    parser.add_argument("--dry-run-compile", action="store_true", help="with --dry-run: also run the torch.compile parts (slow on a CPU)")
    parser.add_argument("--fetch-wheels", action="store_true", help="download the wheels for a Python 3.12 machine into --wheels (or wheels/) and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.fetch_wheels:
        return fetch_wheels(Path(args.wheels or ROOT / "wheels"))
    if args.worker:
        return run_worker(args.worker, args)

    t0 = time.time()
    out = Path(args.out or os.environ.get("OUT") or HERE / "results" / "gpu")
    if (out / "gpu_results.json").exists() and not args.overwrite:
        parser.exit(2, f"benchmarks/gpu.py: error: {out} already holds gpu_results.json. Pass --overwrite to replace "
                    f"it, or choose another --out. Received: --out {args.out or out}\n")
    (out / "logs").mkdir(parents=True, exist_ok=True)
    chosen = [n for n, _ in SECTIONS]
    if args.sections:
        chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
        unknown = sorted(set(chosen) - {n for n, _ in SECTIONS})
        if unknown:
            raise SystemExit(f"unknown sections {unknown}")
    results: dict[str, Any] = {
        "started": _now(),
        "dry_run": args.dry_run,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpu": _gpu_description(),
        "wheels": install_wheels(args.wheels),
        "budget_s": args.budget_s,
        "sections": {},
        "skipped": [],
    }
    if missing_modules() and "keras" in missing_modules():
        results["error"] = "keras is not importable and could not be installed from wheels; nothing measured"
    else:
        for name, cost in SECTIONS:
            if name not in chosen:
                continue
            if args.dry_run and name.startswith("torch_compile") and not args.dry_run_compile:
                results["skipped"].append(f"{name}: torch.compile is not run in --dry-run")
                continue
            if name.startswith("torch") and importlib.util.find_spec("torch") is None:
                results["skipped"].append(f"{name}: torch is not installed")
                continue
            left = args.budget_s - (time.time() - t0)
            if not args.dry_run and left < cost:
                results["skipped"].append(f"{name}: {left:.0f} s of budget left, needs about {cost} s")
                continue
            print(f"[{time.strftime('%H:%M:%S')}] {name} (budget left {left:.0f} s)", flush=True)
            timeout = max(left, 60.0) if not args.dry_run else 900.0
            results["sections"][name] = section = _run_section(name, args, out, timeout)
            status = "ok" if section.get("status") == "ok" else "FAILED: " + str(section.get("error", ""))[:200]
            print(f"    {section['process_wall_s']:.0f} s, {status}", flush=True)
    results["finished"] = _now()
    results["wall_s"] = time.time() - t0
    rows = _table(results) if results["sections"] else []
    results["table"] = [list(r) for r in rows]
    sys.path.insert(0, str(ROOT))  # zoo's atomic writer (stdlib only; zoo need not be installed here)
    from zoo.atomic import atomic_write_text

    atomic_write_text(out / "gpu_results.json", json.dumps(results, indent=1, default=str))
    print(f"\nwrote {out / 'gpu_results.json'} ({results['wall_s']:.0f} s)")
    for item in results["skipped"]:
        print(f"skipped: {item}")
    for name, section in results["sections"].items():
        if section.get("status") != "ok":
            print(f"failed: {name}: {str(section.get('error'))[:300]}")
    if results.get("error"):
        print(results["error"])
    if rows:
        title = "ResNet-34 training images/s" + (" (DRY RUN: tiny CPU sizes, meaningless)" if args.dry_run else "")
        width = max(len(r[0]) for r in rows)
        print(f"\n{title}\n{'setup'.ljust(width)}  {'img/s':>9}  ratio")
        for label, value, note in rows:
            print(f"{label.ljust(width)}  {value:>9}  {note}")
    return 0 if not results.get("error") and all(s.get("status") == "ok" for s in results["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

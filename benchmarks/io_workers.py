"""Load and Hub workers of the CPU benchmarks: import and ``zoo.load`` times, safetensors vs
``.weights.h5``, and push / pull through the local Hub server. Each runs in its own interpreter,
started by ``benchmarks/run.py --worker KIND``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import ZOO_OVERRIDES, _backend_info, _interleaved, _mb, _quiet_logs, median, ratio

HUB_NAMESPACE = "tester"
HUB_TOKEN = "hf_benchmark_token"


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

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

This file is the entry point (command line, orchestrator, worker dispatch, local Hub server); the
code it runs lives next to it: ``common.py`` (constants, timing plans, shared helpers and measuring
loops), ``speed.py`` (throughput, options, pipeline and PyTorch workers), ``io_workers.py`` (load
and Hub workers) and ``report.py`` (peer ratios and ``results.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from common import (
    ENV_VARIANT_VARIABLE,
    FULL_PLAN,
    HERE,
    QUICK_PLAN,
    ROOT,
    SHAPES,
    cpu_info,
    installed,
    load_avg,
    now_iso,
    versions,
)
from io_workers import worker_hub, worker_load
from report import attach_peer_ratios, render_markdown
from speed import worker_options, worker_pipeline, worker_throughput, worker_torch


ALL_BACKENDS = ("tensorflow", "jax", "torch")
ALL_MODELS = ("cnn", "resnet34", "xception_localizer")
TORCH_MODELS = ("cnn", "resnet34")
ALL_SECTIONS = ("throughput", "options", "pipeline", "peer", "load", "hub")
SCHEMA_VERSION = 1


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
        result["log"] = f"{self.logs.name}/{log_path.name}"  # relative to the output folder: no machine path recorded
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
    parser.add_argument("--overwrite", action="store_true", help="replace the results and logs already in --out "
                        "(the default --out holds the committed results)")
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
                        "$FASHION_MNIST_DIR if set, else /usr/share/datasets/fashion-mnist)")
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
    # Only the orchestrator uses zoo (its workers time `import zoo` themselves); from the checkout, installed or not.
    sys.path.insert(0, str(ROOT))
    from zoo.atomic import atomic_write_text
    from zoo.cards import public_command

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
    earlier = [name for name in ("results.json", "results.md") if (out / name).exists()]
    if (out / "logs").is_dir() and any((out / "logs").iterdir()):
        earlier.append("logs/")  # replaced as a whole below: never without asking
    if earlier and not args.overwrite:
        parser.exit(2, f"benchmarks/run.py: error: {out} already holds {' and '.join(earlier)} (the default --out holds "
                    f"the committed results). Pass --overwrite to replace them, or choose another --out. "
                    f"Received: --out {args.out}\n")
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
            "command": public_command(shlex.join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])),
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
        atomic_write_text(out / "results.json", json.dumps(results, indent=1, default=str))
        atomic_write_text(out / "results.md", render_markdown(results))
        if args.keep_work:
            print(f"scratch kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {out / 'results.md'} and {out / 'results.json'} in {results['meta']['wall_s']:.0f} s")
    if results["errors"]:
        print(f"{len(results['errors'])} part(s) failed; see 'errors' in results.json and the logs in {logs}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Train and stage the GPU releases (resnet34.fmnist, xception_localizer.fmnist-loc) in one call.

Made for the lent H200 (``device`` tool: Python 3.12, JAX, no TensorFlow, no Keras, no network,
files of at most 16 MiB come back). On the repository root of that machine::

    python scripts/gpu_release.py --out "$OUT" --data-dir build/device/fashion-mnist \\
        --wheels build/device/wheels          # carry: ["build/device"]
    python scripts/gpu_release.py --out "$OUT" --resume ...   # same machine, continue cut runs

What it does, each step a thin call of the repository's own scripts:

1. installs the carried wheels when ``keras`` (or another module zoo needs) is missing
   (``benchmarks/gpu.py``'s installer: ``pip install --no-index``);
2. trains every requested model with ``python scripts/train.py <arch>`` (defaults: the recipe's)
   on Keras/JAX, all of them at once, each in its own process with an equal share of GPU memory;
3. stages each finished run with ``python scripts/release.py RUN arch.tag --storage-dtype float16
   --max-shard-mb 15`` (the staged files are re-evaluated on the run's test images; when float16
   moves a metric by more than 0.05 points it stages float32 shards instead);
4. copies what a commit needs into ``--out``: ``weights/<arch>.<tag>/``, ``zoo/released/<arch>.<tag>.json``,
   ``registry.json`` and each run's logs, history and metrics (no file over 15 MiB of tensors).

A training run still going when ``--budget-s`` runs out is stopped and reported; its run folder
keeps the finished epochs, and ``--resume`` on the same (still warm) machine continues it.
``--dry-run`` checks the plumbing on a CPU: one epoch on 256 images, in a scratch copy of the
repository so the checkout's ``weights/`` and records are never touched. Without ``--dry-run``, a
release already staged in the checkout (e.g. a CPU release of the same tag) is replaced only
with ``--overwrite``; on the lent machine, whose checkout is a disposable copy, pass it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Architecture -> the release tag its Fashion-MNIST recipe produces.
RELEASES = {"resnet34": "fmnist", "xception_localizer": "fmnist-loc"}
MAX_SHARD_MB = 15
COPIED_RUN_FILES = ("history.csv", "metrics.json", "run.json")


def _scratch_copy() -> Path:
    """A copy of the checkout without .git, build outputs and runs (for --dry-run)."""
    target = Path(tempfile.mkdtemp(prefix="zoo-gpu-release-")) / "repo"
    ignore = shutil.ignore_patterns(".git", "build", "runs", "__pycache__", "*.egg-info", ".pytest_cache", ".hypothesis")
    shutil.copytree(ROOT, target, ignore=ignore)
    return target


def _env(root: Path, share: float, data_dir: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if data_dir:  # through the environment, so the recorded train command has no machine paths
        env["FASHION_MNIST_DIR"] = str(Path(data_dir).resolve())
    env["KERAS_BACKEND"] = "jax"
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{share:.2f}"  # JAX takes 75% of the GPU by default
    return env


def train_all(root: Path, archs: list[str], args: argparse.Namespace, logs: Path) -> dict[str, dict]:
    """Start ``scripts/train.py`` for every arch at once; wait until done or the budget is spent."""
    share = min(0.75, 0.9 / len(archs))
    procs = {}
    for arch in archs:
        cmd = [sys.executable, "scripts/train.py", arch, "--output", f"runs/{arch}-gpu", "--verbose", "2"]
        cmd += ["--resume"] if args.resume else []
        cmd += ["--epochs", "1", "--limit", "256"] if args.dry_run else []
        log = open(logs / f"train-{arch}.log", "a" if args.resume else "w")  # noqa: SIM115 - closed below
        procs[arch] = (subprocess.Popen(cmd, cwd=root, env=_env(root, share, args.data_dir), stdout=log, stderr=subprocess.STDOUT), log, cmd, time.time())
    deadline = time.time() + args.budget_s
    report = {}
    for arch, (proc, log, cmd, started) in procs.items():
        try:
            proc.wait(timeout=max(1.0, deadline - time.time()))
            status = "finished" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=60)
            status = "stopped at the budget: rerun with --resume on the same machine"
        log.close()
        report[arch] = {"status": status, "command": " ".join(cmd[1:]), "seconds": round(time.time() - started, 1)}
    return report


def stage(root: Path, arch: str, args: argparse.Namespace, logs: Path) -> dict:
    """``scripts/release.py`` in float16 shards; float32 shards when float16 moves the metrics."""
    name = f"{arch}.{RELEASES[arch]}"
    notes = f"Trained on {args.device_note} with Keras on JAX by scripts/gpu_release.py."
    for dtype in ("float16", "float32"):
        cmd = [sys.executable, "scripts/release.py", f"runs/{arch}-gpu", name, "--notes", notes,
               "--storage-dtype", dtype, "--max-shard-mb", str(MAX_SHARD_MB)]
        cmd += ["--overwrite"] if args.overwrite or args.dry_run else []  # the dry run's scratch copy is ours to replace
        cmd += ["--below-floor"] if args.dry_run else []  # one epoch on 256 images: plumbing, not a release
        with open(logs / f"release-{arch}-{dtype}.log", "w") as log:
            done = subprocess.run(cmd, cwd=root, env=_env(root, 0.9, args.data_dir), stdout=log, stderr=subprocess.STDOUT, check=False)
        if done.returncode == 0:
            record = json.loads((root / "zoo" / "released" / f"{name}.json").read_text())
            return {"name": name, "storage_dtype": dtype, "metrics": record["metrics"]}
    return {"name": name, "error": f"scripts/release.py failed; see {logs.name}/release-{arch}-*.log"}


def collect(root: Path, archs: list[str], out: Path) -> None:
    """Copy the staged releases, their records, registry.json and the run summaries to ``out``."""
    for arch in archs:
        name = f"{arch}.{RELEASES[arch]}"
        if (root / "weights" / name).is_dir():
            shutil.copytree(root / "weights" / name, out / "weights" / name, dirs_exist_ok=True)
            (out / "zoo" / "released").mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / "zoo" / "released" / f"{name}.json", out / "zoo" / "released" / f"{name}.json")
        run = root / "runs" / f"{arch}-gpu"
        for file_name in COPIED_RUN_FILES:
            if (run / file_name).exists():
                (out / "runs" / run.name).mkdir(parents=True, exist_ok=True)
                shutil.copy2(run / file_name, out / "runs" / run.name / file_name)
    if (root / "registry.json").exists():
        shutil.copy2(root / "registry.json", out / "registry.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(RELEASES), help=f"comma list among {','.join(RELEASES)}")
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu-release"), help="where the results go (default: $OUT)")
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--wheels", help="folder of wheels to install when keras is missing")
    parser.add_argument("--budget-s", type=float, default=480, help="seconds of training before runs are stopped")
    parser.add_argument("--resume", action="store_true", help="continue the runs of an earlier call on this machine")
    parser.add_argument("--device-note", default="one NVIDIA H200", help="where it ran, for the release notes")
    parser.add_argument("--dry-run", action="store_true", help="one epoch on 256 images in a scratch copy (CPU check)")
    parser.add_argument("--overwrite", action="store_true", help="replace releases already staged in this checkout "
                        "(weights/<arch>.<tag>/, e.g. a CPU release the GPU run upgrades); without it they are refused")
    args = parser.parse_args(argv)
    archs = [a.strip() for a in args.models.split(",") if a.strip()]
    unknown = sorted(set(archs) - set(RELEASES))
    if unknown or not archs:
        parser.error(f"--models must be a comma list among {sorted(RELEASES)}. Received: {args.models!r}")

    out = Path(args.out).resolve()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu import install_wheels  # the GPU benchmark's installer of carried wheels

    summary: dict = {"wheels": install_wheels(args.wheels)}
    root = _scratch_copy() if args.dry_run else ROOT
    summary["root"] = "a scratch copy of the checkout" if args.dry_run else "the checkout"  # no machine path recorded
    summary["training"] = train_all(root, archs, args, logs)
    summary["releases"] = [stage(root, arch, args, logs) for arch, run in summary["training"].items() if run["status"] == "finished"]
    collect(root, archs, out)
    sys.path.insert(0, str(ROOT))  # zoo's atomic writer (stdlib only; zoo need not be installed here)
    from zoo.atomic import atomic_write_text

    atomic_write_text(out / "gpu_release.json", json.dumps(summary, indent=1, default=str))

    print(f"\n{'model':<20} {'training':<60} {'s':>7}  staged metrics")
    for arch, run in summary["training"].items():
        staged = next((r for r in summary["releases"] if r["name"].startswith(arch + ".")), {})
        shown = staged.get("error") or f"{staged.get('storage_dtype', '-')}: {staged.get('metrics', '-')}"
        print(f"{arch:<20} {run['status'][:60]:<60} {run['seconds']:>7}  {shown}")
    ok = all(r["status"] == "finished" for r in summary["training"].values()) and not any("error" in r for r in summary["releases"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

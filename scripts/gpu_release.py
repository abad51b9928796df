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

``--variant "resnet34:b512=--batch-size 512 --epochs 104"`` trains more runs of an architecture
beside its recipe run (in ``runs/<arch>-<label>-gpu``; a small model leaves most of an H200 idle, so
they cost little extra time): each architecture's release is then its finished run with the best
validation figure (the recipe's ``monitor``; never the test split), and every run's validation and
test figures are reported in ``gpu_release.json``. Variants may not change ``monitor`` or ``val_size``;
a ``--seed`` variant draws its own validation split (same size, same source), so its figure is
comparable in expectation, not image for image.

A training run still going when ``--budget-s`` runs out is stopped and reported; its run folder
keeps the finished epochs, and ``--resume`` on the same (still warm) machine continues it.
``--dry-run`` checks the plumbing on a CPU: one epoch on 256 images, in a scratch copy of the
repository so the checkout's ``weights/`` and records are never touched; the copy (with its runs, a
few hundred MB) is deleted at the end unless ``--keep-scratch`` (tools/device_job.sh ships from it).
Without ``--dry-run``, a
release already staged in the checkout (e.g. a CPU release of the same tag) is replaced only
with ``--overwrite``; on the lent machine, whose checkout is a disposable copy, pass it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
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
#: Flags the script sets itself, refused in a --variant.
MANAGED_FLAGS = ("--output", "--resume", "--overwrite", "--data-dir", "--data", "--backend", "--verbose", "--push", "--limit")
#: Recipe fields a variant may not --set: the runs are compared on the same validation figure.
COMPARED_FIELDS = ("monitor", "val_size")
RECIPE_LABEL = "recipe"


def _scratch_copy(source: Path = ROOT) -> Path:
    """A copy of the checkout without .git, build outputs and runs (for --dry-run), in a new temporary folder."""
    target = Path(tempfile.mkdtemp(prefix="zoo-gpu-release-")) / "repo"
    ignore = shutil.ignore_patterns(".git", "build", "runs", "__pycache__", "*.egg-info", ".pytest_cache", ".hypothesis")
    shutil.copytree(source, target, ignore=ignore)
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


def parse_variant(text: str, archs: list[str]) -> tuple[str, str, list[str]]:
    """``"ARCH:LABEL=FLAGS"`` -> ``(arch, label, flags)``; a clear ``ValueError`` for anything else.

    Example:
        >>> parse_variant("resnet34:b512=--batch-size 512", ["resnet34"])
        ('resnet34', 'b512', ['--batch-size', '512'])
    """
    match = re.fullmatch(r"([a-z0-9_]+):([a-z0-9][a-z0-9-]*)=(.*)", text.strip(), flags=re.DOTALL)
    if not match:
        raise ValueError(f"--variant must be ARCH:LABEL=FLAGS (LABEL in a-z, 0-9, '-'). Received: {text!r}")
    arch, label, flags_text = match.groups()
    if arch not in archs:
        raise ValueError(f"--variant names an architecture not in --models {archs}. Received: {text!r}")
    if label == RECIPE_LABEL:
        raise ValueError(f"--variant label {RECIPE_LABEL!r} is the recipe run's own. Received: {text!r}")
    try:
        flags = shlex.split(flags_text)
    except ValueError as error:
        raise ValueError(f"--variant FLAGS must split like a shell command line ({error}). Received: {text!r}") from None
    # argparse takes unambiguous prefixes (--out for --output): refuse those too.
    managed = [f for f in flags if f.startswith("--") and len(f.split("=")[0]) > 2
               and any(m.startswith(f.split("=")[0]) for m in MANAGED_FLAGS)]
    if managed:
        raise ValueError(f"--variant may not set {', '.join(MANAGED_FLAGS)} (the script sets them). Received: {text!r}")
    settings = [flags[i + 1] for i, f in enumerate(flags[:-1]) if f == "--set"]
    settings += [f.split("=", 1)[1] for f in flags if f.startswith("--set=")]
    compared = [item for item in settings if item.split("=")[0] in COMPARED_FIELDS]
    if compared:
        raise ValueError(f"--variant may not --set {' or '.join(COMPARED_FIELDS)}: the runs are chosen by the same "
                         f"validation figure. Received: {text!r}")
    return arch, label, flags


def run_folder(arch: str, label: str) -> str:
    """The run folder (relative to the checkout) of one training run."""
    return f"runs/{arch}-gpu" if label == RECIPE_LABEL else f"runs/{arch}-{label}-gpu"


def train_all(root: Path, runs: list[tuple[str, str, list[str]]], args: argparse.Namespace, logs: Path) -> dict[str, dict]:
    """Start ``scripts/train.py`` for every run at once; wait until done or the budget is spent."""
    share = min(0.75, 0.9 / len(runs))
    procs = {}
    report: dict[str, dict] = {}
    for arch, label, flags in runs:
        key = arch if label == RECIPE_LABEL else f"{arch}:{label}"
        cmd = [sys.executable, "scripts/train.py", arch, *flags, "--output", run_folder(arch, label), "--verbose", "2"]
        if args.resume and _run_figures(root / run_folder(arch, label)).get("status") == "complete":
            figures = _run_figures(root / run_folder(arch, label))
            report[key] = {"arch": arch, "label": label, "run": run_folder(arch, label), "status": "finished",
                           "command": " ".join(cmd[1:]), "seconds": 0.0, "note": "finished in an earlier call",
                           "best": figures.get("best"), "test_metrics": figures.get("test_metrics")}
            continue
        cmd += ["--resume"] if args.resume else []
        cmd += ["--epochs", "1", "--limit", "256"] if args.dry_run else []
        log_name = f"train-{arch}.log" if label == RECIPE_LABEL else f"train-{arch}-{label}.log"
        log = open(logs / log_name, "a" if args.resume else "w")  # noqa: SIM115 - closed below
        procs[key] = (subprocess.Popen(cmd, cwd=root, env=_env(root, share, args.data_dir), stdout=log, stderr=subprocess.STDOUT), log, cmd, time.time(), arch, label)
    deadline = time.time() + args.budget_s
    for key, (proc, log, cmd, started, arch, label) in procs.items():
        try:
            proc.wait(timeout=max(1.0, deadline - time.time()))
            status = "finished" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            status = "stopped at the budget: rerun with --resume on the same machine"
        log.close()
        figures = _run_figures(root / run_folder(arch, label))
        report[key] = {"arch": arch, "label": label, "run": run_folder(arch, label), "status": status,
                       "command": " ".join(cmd[1:]), "seconds": round(time.time() - started, 1),
                       "best": figures.get("best"), "test_metrics": figures.get("test_metrics")}
    return report


def _run_figures(run: Path) -> dict:
    """A run folder's status, best validation figure and test metrics (from its run.json)."""
    try:
        record = json.loads((run / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return {"status": record.get("status"), "best": record.get("training", {}).get("best"), "test_metrics": record.get("metrics")}


def choose_runs(training: dict[str, dict]) -> dict[str, dict]:
    """For each architecture, its finished run with the best validation figure (by the monitor's
    direction: lowest for a loss, else highest); ties go to the recipe run, then the first listed.

    Example:
        >>> runs = {"resnet34": {"arch": "resnet34", "label": "recipe", "status": "finished",
        ...                      "best": {"monitor": "val_accuracy", "value": 0.94}},
        ...         "resnet34:b512": {"arch": "resnet34", "label": "b512", "status": "finished",
        ...                           "best": {"monitor": "val_accuracy", "value": 0.95}}}
        >>> choose_runs(runs)["resnet34"]["label"]
        'b512'
    """
    chosen: dict[str, dict] = {}
    for run in training.values():
        best = run.get("best") or {}
        if run["status"] != "finished" or best.get("value") is None:
            continue
        # zoo.recipe.monitor_mode's rule, kept here: this script runs before zoo (and Keras) is importable.
        sign = -1.0 if str(best.get("monitor", "")).endswith("loss") else 1.0
        current = chosen.get(run["arch"])
        if current is None:
            chosen[run["arch"]] = run
            continue
        ours, theirs = sign * best["value"], sign * current["best"]["value"]
        if ours > theirs or (ours == theirs and run["label"] == RECIPE_LABEL):  # in whatever order they were listed
            chosen[run["arch"]] = run
    return chosen


def stage(root: Path, arch: str, run: str, args: argparse.Namespace, logs: Path, choice: str = "") -> dict:
    """``scripts/release.py`` of ``run`` in float16 shards; float32 shards when float16 moves the metrics."""
    name = f"{arch}.{RELEASES[arch]}"
    notes = f"Trained on {args.device_note} with Keras on JAX by scripts/gpu_release.py.{choice}"
    for dtype in ("float16", "float32"):
        cmd = [sys.executable, "scripts/release.py", run, name, "--notes", notes,
               "--storage-dtype", dtype, "--max-shard-mb", str(MAX_SHARD_MB)]
        cmd += ["--overwrite"] if args.overwrite or args.dry_run else []  # the dry run's scratch copy is ours to replace
        cmd += ["--below-floor"] if args.dry_run else []  # one epoch on 256 images: plumbing, not a release
        with open(logs / f"release-{arch}-{dtype}.log", "w") as log:
            done = subprocess.run(cmd, cwd=root, env=_env(root, 0.9, args.data_dir), stdout=log, stderr=subprocess.STDOUT, check=False)
        if done.returncode == 0:
            record = json.loads((root / "zoo" / "released" / f"{name}.json").read_text())
            return {"name": name, "run": run, "storage_dtype": dtype, "metrics": record["metrics"]}
    return {"name": name, "run": run, "error": f"scripts/release.py failed; see {logs.name}/release-{arch}-*.log"}


def choice_note(training: dict[str, dict], arch: str) -> str:
    """A sentence for the release notes naming every finished run of ``arch`` and its best validation
    figure, when there was more than one ("" otherwise)."""
    runs = [r for r in training.values() if r["arch"] == arch and r["status"] == "finished" and (r.get("best") or {}).get("value") is not None]
    if len(runs) < 2:
        return ""
    listed = "; ".join(f"{r['command'].split(' --output')[0]}: {r['best']['monitor']} {r['best']['value']:.4f}" for r in runs)
    return f" Chosen by the best validation figure among {len(runs)} runs ({listed})."


def collect(root: Path, archs: list[str], runs: list[str], out: Path) -> None:
    """Copy the staged releases, their records, registry.json and the run summaries to ``out``."""
    for arch in archs:
        name = f"{arch}.{RELEASES[arch]}"
        if (root / "weights" / name).is_dir():
            # Replaced whole: an earlier release's shards beside the new index would make a folder that fails to load.
            shutil.rmtree(out / "weights" / name, ignore_errors=True)
            shutil.copytree(root / "weights" / name, out / "weights" / name)
            (out / "zoo" / "released").mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / "zoo" / "released" / f"{name}.json", out / "zoo" / "released" / f"{name}.json")
    for folder in runs:
        run = root / folder
        for file_name in COPIED_RUN_FILES:
            if (run / file_name).exists():
                (out / "runs" / run.name).mkdir(parents=True, exist_ok=True)
                shutil.copy2(run / file_name, out / "runs" / run.name / file_name)
    if (root / "registry.json").exists():
        shutil.copy2(root / "registry.json", out / "registry.json")


def main(argv: list[str] | None = None) -> int:
    """Train, stage and collect the GPU releases: ``main(["--dry-run", "--models", "resnet34"])``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(RELEASES), help=f"comma list among {','.join(RELEASES)}")
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu-release"), help="where the results go (default: $OUT)")
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--wheels", help="folder of wheels to install when keras is missing")
    parser.add_argument("--budget-s", type=float, default=480, help="seconds of training before runs are stopped")
    parser.add_argument("--resume", action="store_true", help="continue the runs of an earlier call on this machine")
    parser.add_argument("--device-note", default="one NVIDIA H200", help="where it ran, for the release notes")
    parser.add_argument("--dry-run", action="store_true", help="one epoch on 256 images in a scratch copy (CPU check)")
    parser.add_argument("--keep-scratch", action="store_true",
                        help="with --dry-run: keep the scratch copy (deleted at the end by default) and print where it is")
    parser.add_argument("--variant", action="append", default=[], metavar="ARCH:LABEL=FLAGS",
                        help="one more training run of ARCH with these scripts/train.py flags, beside the recipe run "
                        "(repeatable); the release is each ARCH's run with the best validation figure")
    parser.add_argument("--overwrite", action="store_true", help="replace releases already staged in this checkout "
                        "(weights/<arch>.<tag>/, e.g. a CPU release the GPU run upgrades); without it they are refused")
    args = parser.parse_args(argv)
    if args.keep_scratch and not args.dry_run:
        parser.error("--keep-scratch only applies to --dry-run (a real run stages into the checkout itself).")
    archs = [a.strip() for a in args.models.split(",") if a.strip()]
    unknown = sorted(set(archs) - set(RELEASES))
    if unknown or not archs:
        parser.error(f"--models must be a comma list among {sorted(RELEASES)}. Received: {args.models!r}")

    try:
        variants = [parse_variant(text, archs) for text in args.variant]
    except ValueError as error:
        parser.error(str(error))
    labels = [(arch, label) for arch, label, _ in variants]
    if len(set(labels)) != len(labels):
        parser.error(f"--variant labels must differ within an architecture. Received: {args.variant}")
    runs = [(arch, RECIPE_LABEL, []) for arch in archs] + variants

    out = Path(args.out).resolve()
    if out.is_dir() and any(out.iterdir()) and not (args.resume or args.overwrite):
        parser.error(
            f"--out {args.out} already holds results of an earlier call: pass --resume to continue it, "
            "--overwrite to replace them, or choose another folder."
        )
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu import install_wheels  # the GPU benchmark's installer of carried wheels

    summary: dict = {"wheels": install_wheels(args.wheels)}
    root = _scratch_copy() if args.dry_run else ROOT
    summary["root"] = "a scratch copy of the checkout" if args.dry_run else "the checkout"  # no machine path recorded
    try:
        summary["training"] = train_all(root, runs, args, logs)
        chosen = choose_runs(summary["training"])
        summary["releases"] = [stage(root, arch, chosen[arch]["run"], args, logs, choice_note(summary["training"], arch))
                               for arch in archs if arch in chosen]
        collect(root, archs, [run_folder(arch, label) for arch, label, _ in runs], out)
    finally:
        if args.dry_run and not args.keep_scratch:
            shutil.rmtree(root.parent, ignore_errors=True)  # the temporary folder _scratch_copy made
        elif args.dry_run:
            print(f"The dry run's scratch copy is kept in {root}")
    sys.path.insert(0, str(ROOT))  # zoo's atomic writer (stdlib only; zoo need not be installed here)
    from zoo.atomic import atomic_write_text

    atomic_write_text(out / "gpu_release.json", json.dumps(summary, indent=1, default=str))

    print(f"\n{'run':<26} {'training':<60} {'s':>7} {'best validation':>22}  staged metrics")
    for key, run in summary["training"].items():
        staged = next((r for r in summary["releases"] if r.get("run", run["run"]) == run["run"] and r["name"].startswith(run["arch"] + ".")), {})
        shown = staged.get("error") or (f"{staged['storage_dtype']}: {staged['metrics']}" if staged else "-")
        best = run.get("best") or {}
        figure = f"{best.get('monitor', '-')} {best['value']:.4f}" if best.get("value") is not None else "-"
        print(f"{key:<26} {run['status'][:60]:<60} {run['seconds']:>7} {figure:>22}  {shown}")
    ok = (all(r["status"] == "finished" for r in summary["training"].values()) and set(archs) <= set(chosen)
          and not any("error" in r for r in summary["releases"]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

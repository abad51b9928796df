"""``--backend auto``: the fastest Keras backend for a training run, found by a short probe.

Which backend trains fastest depends on the machine and the model (measured: ResNet-34 at 16 px
in mixed_bfloat16 on a 2-core avx512_bf16 Xeon, torch 124 img/s and TensorFlow 75; in float32 on
an AVX2-only EPYC, torch 12.7, TensorFlow and JAX 5.2; in float32 on an AVX-512 Xeon without
bfloat16, TensorFlow 103, torch 95, JAX 14; the Xception localizer at 72 px on the avx512_bf16
Xeon, TensorFlow 37.2 and torch 35.3). Keras reads ``KERAS_BACKEND`` once, when it is imported, so each installed backend is
measured in its own process (``python -m zoo.training.backend_probe ARCH``): the model the run
would train (:func:`zoo.training.fit.build_training_model`: the recipe's precision, optimizer and
losses), at the image size and batch of its first epochs, trains a few steps on random inputs.
The fastest backend then trains the run; its recorded command names that backend (the weights
do not depend on it).

Example:
    >>> choose_backend([ProbeResult("tensorflow", 75.0), ProbeResult("torch", 98.0),
    ...                 ProbeResult("jax", None, "not installed")])
    'torch'
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import keras
import numpy as np

from zoo.recipe import Recipe, parse_recipe_settings
from zoo.registry import get_spec, split_name
from zoo.training.data import make_targets
from zoo.training.fit import build_training_model, training_phases
from zoo.training.recipes import get_recipe
from zoo.training.run_setup import apply_flags

__all__ = [
    "BACKENDS", "ProbeResult", "choose_backend", "format_results", "installed_backends", "measure_training_speed",
    "probe_backends", "random_batch", "with_backend",
]

BACKENDS = ("tensorflow", "jax", "torch")
#: Timed training steps per backend, after two untimed ones (compilation, first-call costs).
PROBE_STEPS = 3
#: Seconds one backend's probe may take (import, build, compile, steps) before it is given up.
PROBE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ProbeResult:
    """One backend's measured training speed (``None`` and an ``error`` when it could not train)."""

    backend: str
    images_per_second: float | None
    error: str | None = None


def installed_backends() -> list[str]:
    """The Keras backends whose framework is installed, in :data:`BACKENDS` order.

    Example:
        >>> set(installed_backends()) <= set(BACKENDS)
        True
    """
    return [name for name in BACKENDS if importlib.util.find_spec(name) is not None]


def choose_backend(results: Sequence[ProbeResult]) -> str:
    """The backend with the most training images/s; ``ValueError`` when none could train.

    Example:
        >>> choose_backend([ProbeResult("jax", None, "exit 1: out of memory")])
        Traceback (most recent call last):
        ...
        ValueError: No backend could train the probe. Received: jax: exit 1: out of memory
    """
    measured = [result for result in results if result.images_per_second is not None]
    if not measured:
        found = "; ".join(f"{result.backend}: {result.error}" for result in results) or "no backend installed"
        raise ValueError(f"No backend could train the probe. Received: {found}")
    return max(measured, key=lambda result: result.images_per_second).backend


def format_results(results: Sequence[ProbeResult], chosen: str | None = None) -> str:
    """The probe's measurements, one line per backend, the chosen one marked.

    Example:
        >>> print(format_results([ProbeResult("tensorflow", 75.04), ProbeResult("torch", 98.0)], "torch"))
          tensorflow    75.0 img/s
          torch         98.0 img/s  <- chosen
    """
    lines = []
    for result in results:
        figure = f"{result.images_per_second:6.1f} img/s" if result.images_per_second is not None else result.error
        lines.append(f"  {result.backend:<12}{figure}{'  <- chosen' if result.backend == chosen else ''}")
    return "\n".join(lines)


def with_backend(argv: Sequence[str], backend: str) -> list[str]:
    """``argv`` with its ``--backend`` value (``--backend X`` or ``--backend=X``) set to ``backend``.

    Example:
        >>> with_backend(["cnn", "--backend", "auto", "--epochs", "2"], "torch")
        ['cnn', '--backend', 'torch', '--epochs', '2']
        >>> with_backend(["cnn", "--backend=auto"], "jax")
        ['cnn', '--backend=jax']
    """
    argv = list(argv)
    for index, arg in enumerate(argv):
        if arg == "--backend" and index + 1 < len(argv):
            argv[index + 1] = backend
        elif arg.startswith("--backend="):
            argv[index] = f"--backend={backend}"
    return argv


def random_batch(recipe: Recipe, config: Mapping[str, Any], size: int, *, seed: int = 0) -> tuple[Any, Any]:
    """One training batch of ``recipe`` on random ``size x size`` images: inputs and targets as the
    run's input pipeline gives them (uint8 images; one-hot classes under label smoothing; class and
    box for a localizer).

    Example:
        >>> from zoo.training.recipes import get_recipe
        >>> x, y = random_batch(get_recipe("xception_localizer", batch_size=2), {"input_shape": (72, 72, 1), "num_classes": 10}, 72)
        >>> x.shape, x.dtype.name, y["class"].shape, y["box"].shape
        ((2, 72, 72, 1), 'uint8', (2, 10), (2, 4))
    """
    rng = np.random.default_rng(seed)
    batch, channels = recipe.batch_size, int(config["input_shape"][-1])
    x = rng.integers(0, 256, (batch, size, size, channels), dtype=np.uint8)
    labels = make_targets(rng.integers(0, int(config["num_classes"]), batch), recipe, num_classes=int(config["num_classes"]))
    if recipe.task == "localization":
        return x, {"class": labels, "box": rng.uniform(0.2, 0.8, (batch, 4)).astype("float32")}
    return x, labels


def measure_training_speed(
    name: str, *, batch_size: int | None = None, mixed_precision: bool | None = None, steps: int = PROBE_STEPS,
    seed: int = 0, recipe_overrides: Mapping[str, Any] | None = None, epochs: int | None = None,
) -> dict[str, Any]:
    """Training images/s of ``name``'s recipe on the running backend, on random inputs.

    The model is the one a run would train (precision, optimizer, losses), at the image size of
    the recipe's first epochs and its batch (or ``batch_size``); two untimed steps come first.
    ``recipe_overrides`` and ``epochs`` are the run's ``--set`` fields (e.g. ``resolutions=[]``: the
    full size) and ``--epochs`` (the length its restarts and resolutions are checked against).

    Example:
        >>> measure_training_speed("cnn", batch_size=8, steps=1)["image_size"]
        28
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be an int >= 1. Received: steps={steps!r}")
    recipe, _ = apply_flags(get_recipe(name), epochs=epochs, batch_size=batch_size, lr=None,
                            mixed_precision=mixed_precision, overrides=recipe_overrides)
    config = get_spec(name).config_for(split_name(name)[1], recipe.model_overrides)
    keras.utils.set_random_seed(seed)
    _, trainer = build_training_model(name, recipe, config, recipe.model_overrides, steps_per_epoch=100)
    size = training_phases(recipe)[0][2] or int(config["input_shape"][0])
    x, y = random_batch(recipe, config, size, seed=seed)
    for _ in range(2):
        trainer.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_on_batch(x, y)
    seconds = time.perf_counter() - started
    batch = recipe.batch_size
    return {
        "backend": keras.backend.backend(), "images_per_second": round(steps * batch / seconds, 2),
        "image_size": size, "batch_size": batch, "mixed_precision": bool(recipe.mixed_precision), "steps": steps,
    }


def probe_backends(
    name: str, *, backends: Sequence[str] | None = None, batch_size: int | None = None,
    mixed_precision: bool | None = None, steps: int = PROBE_STEPS, timeout: float = PROBE_TIMEOUT_S,
    log: Callable[[str], None] | None = None, recipe_settings: Sequence[str] = (), epochs: int | None = None,
) -> list[ProbeResult]:
    """Measure ``name``'s training speed under each backend (default: every installed one),
    each in its own process; a backend that is missing, fails or runs past ``timeout`` seconds
    gets an ``error`` instead of a figure. ``recipe_settings`` and ``epochs``: the run's ``--set FIELD=VALUE``
    items and ``--epochs``.

    Example:
        >>> results = probe_backends("resnet34")  # doctest: +SKIP
        >>> choose_backend(results)               # doctest: +SKIP
        'torch'
    """
    installed = installed_backends()
    results = []
    for backend in backends or installed:
        if backend not in installed:
            results.append(ProbeResult(backend, None, "not installed"))
            continue
        command = [sys.executable, "-m", "zoo.training.backend_probe", name, "--steps", str(steps)]
        command += ["--batch-size", str(batch_size)] if batch_size is not None else []
        if mixed_precision is not None:
            command.append("--mixed-precision" if mixed_precision else "--no-mixed-precision")
        command += [part for item in recipe_settings for part in ("--set", item)]
        command += ["--epochs", str(epochs)] if epochs is not None else []
        if log:
            log(f"[zoo] probing {backend} ...")
        try:
            done = subprocess.run(
                command, env={**os.environ, "KERAS_BACKEND": backend}, capture_output=True, text=True,
                timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            results.append(ProbeResult(backend, None, f"no result within {timeout:.0f} s"))
            continue
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            results.append(ProbeResult(backend, None, f"exit {done.returncode}: {last}"))
            continue
        results.append(ProbeResult(backend, float(json.loads(lines[-1])["images_per_second"])))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Print this backend's :func:`measure_training_speed` of ARCH as one JSON line.

    Example:
        >>> main(["cnn", "--steps", "3"])                                      # doctest: +SKIP
        {"backend": "tensorflow", "images_per_second": 789.2, ...}
        0
    """
    parser = argparse.ArgumentParser(prog="python -m zoo.training.backend_probe", description=__doc__.splitlines()[0])
    parser.add_argument("arch", help="a registered name with a recipe (e.g. resnet34)")
    parser.add_argument("--batch-size", type=int, help="the run's batch size (default: the recipe's)")
    parser.add_argument("--steps", type=int, default=PROBE_STEPS, help=f"timed steps (default: {PROBE_STEPS})")
    parser.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                        help="as the training command's flag (default: the recipe's)")
    parser.add_argument("--epochs", type=int, help="the run's length (default: the recipe's)")
    parser.add_argument("--set", dest="recipe_settings", action="append", default=[], metavar="FIELD=VALUE",
                        help="a recipe field as the training command's --set (repeatable)")
    args = parser.parse_args(argv)
    measured = measure_training_speed(
        args.arch, batch_size=args.batch_size, mixed_precision=args.mixed_precision, steps=args.steps,
        recipe_overrides=parse_recipe_settings(args.recipe_settings) or None, epochs=args.epochs,
    )
    print(json.dumps(measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())

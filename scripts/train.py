"""Train a zoo architecture on Fashion-MNIST with its recipe; writes a complete run folder.

A thin command line over ``zoo.training.cli.main`` (``build_parser`` has every flag; ``train``
and ``zoo.training.finetune.finetune`` are callable from a notebook). The backend comes from
``KERAS_BACKEND`` (tensorflow, jax or torch).

Speed: TensorFlow only turns on its oneDNN CPU kernels by itself on CPUs with AVX512-VNNI-class
features; elsewhere (e.g. AMD Zen 3) training was about 4x slower without them. This script
sets ``TF_ENABLE_ONEDNN_OPTS=1`` before TensorFlow is imported unless you set it yourself
(``TF_ENABLE_ONEDNN_OPTS=0`` keeps it off); so do ``zoo train`` and ``zoo eval``. ``zoo.training`` never sets it.

Precision: recipes default to ``mixed_precision="auto"``: ``mixed_bfloat16`` on GPUs with
compute capability >= 8.0 and on CPUs with AVX512-BF16/AMX-BF16 under TensorFlow or torch
(training measured 1.3-1.8x faster there, with no accuracy cost on the CNN), float32 elsewhere
(``zoo.training.precision``). ``--mixed-precision`` / ``--no-mixed-precision`` decide it
yourself; the run records which, and why.

Examples:
    python scripts/train.py cnn --limit 512 --epochs 1             # smoke run -> runs/cnn-0
    python scripts/train.py resnet34 --distribute                  # recipe defaults, all devices
    python scripts/train.py cnn --resume                             # continue runs/cnn-0 after a kill
    python scripts/train.py resnet34 --backend torch                 # the recorded recipe's backend
    python scripts/train.py cnn --data my_pictures --init-from cnn.fmnist --freeze-backbone   # your classes
"""

from __future__ import annotations

import os

# Must happen before TensorFlow is imported (it is read once, at import).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")


def reexec_with_backend(argv: list[str]) -> None:
    """Restart this script with ``KERAS_BACKEND`` set when ``--backend`` asks for another one.

    Keras reads ``KERAS_BACKEND`` once, when it is imported, so the choice needs a fresh process;
    this runs before anything imports Keras (importing the zoo does).
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend", choices=(*BACKENDS, "auto"))
    backend = pre.parse_known_args(argv)[0].backend
    if backend and backend != "auto" and os.environ.get("KERAS_BACKEND") != backend:  # auto: main() probes
        os.execve(sys.executable, [sys.executable, __file__, *argv], {**os.environ, "KERAS_BACKEND": backend})


def build_parser(architectures: list[str] | None = None) -> argparse.ArgumentParser:
    """``zoo.training.cli.build_parser``: every flag of this script."""
    from zoo.training.cli import build_parser as library_parser

    return library_parser(architectures, prog="scripts/train.py")


def main(argv: list[str] | None = None) -> int:
    """``zoo.training.cli.main``: the parser and the training live in the library."""
    from zoo.training.cli import main as train_main

    return train_main(argv, prog="scripts/train.py", reexec=[__file__])


if __name__ == "__main__":
    reexec_with_backend(sys.argv[1:])
    sys.exit(main())

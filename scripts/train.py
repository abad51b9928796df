"""Train a zoo architecture on Fashion-MNIST with its recipe; writes a complete run folder.

A thin command line over ``zoo.training.train`` (everything here is callable from a notebook).
The backend comes from ``KERAS_BACKEND`` (tensorflow, jax or torch).

Speed: TensorFlow only turns on its oneDNN CPU kernels by itself on CPUs with AVX512-VNNI-class
features; elsewhere (e.g. AMD Zen 3) training was about 4x slower without them. This script
sets ``TF_ENABLE_ONEDNN_OPTS=1`` before TensorFlow is imported unless you set it yourself
(``TF_ENABLE_ONEDNN_OPTS=0`` keeps it off). The library itself never sets it.

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
"""

from __future__ import annotations

import os

# Must happen before TensorFlow is imported (it is read once, at import).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")


def reexec_with_backend(argv: list[str]) -> None:
    """Restart this script with ``KERAS_BACKEND`` set when ``--backend`` asks for another one.

    Keras reads ``KERAS_BACKEND`` once, when it is imported, so the choice needs a fresh process.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend", choices=BACKENDS)
    backend = pre.parse_known_args(argv)[0].backend
    if backend and os.environ.get("KERAS_BACKEND") != backend:
        os.execve(sys.executable, [sys.executable, __file__, *argv], {**os.environ, "KERAS_BACKEND": backend})


def build_parser(architectures: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/train.py",
        description=(
            "Train a zoo model on Fashion-MNIST (validation carved from the train split, test "
            "split only for the final evaluation) and write a run folder: config.json, "
            "model.safetensors (best epoch), last.safetensors, metrics.json, history.csv, "
            "plots and README.md. The backend comes from KERAS_BACKEND."
        ),
        epilog="Unset flags take the recipe's value (zoo.training.get_recipe(ARCH)).",
    )
    parser.add_argument("arch", choices=architectures, help="architecture to train (its recipe gives every default)")
    parser.add_argument("--backend", choices=BACKENDS,
                        help="Keras backend to train on (default: $KERAS_BACKEND, else tensorflow); the weights "
                        "do not depend on it, the speed does (zoo.training.recipes says what was measured)")
    parser.add_argument("--epochs", type=int, help="number of epochs (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, help="global batch size over all devices (default: the recipe's; "
                        "without --lr the learning rate scales with it)")
    parser.add_argument("--lr", type=float, help="peak learning rate after warm-up (default: the recipe's)")
    parser.add_argument("--limit", type=int, help="use only the first N images of the train and of the test split")
    parser.add_argument("--output", type=Path, help="run folder (default: runs/<arch>-<seed>)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, split, shuffling, augmentation (default: 0)")
    parser.add_argument("--resume", action="store_true", help="continue an unfinished run folder from its last finished epoch")
    parser.add_argument("--overwrite", action="store_true", help="delete an existing run folder and train again")
    parser.add_argument("--push", metavar="REPO", help="upload the finished run folder to this Hub repo (zoo.push)")
    parser.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                        help="train with the mixed_bfloat16 dtype policy, or not (default: the recipe's 'auto': "
                        "mixed_bfloat16 where the device runs bfloat16 natively, see zoo.training.precision)")
    parser.add_argument("--distribute", action="store_true", help="data-parallel over all local devices (JAX or TensorFlow)")
    parser.add_argument("--data-dir", type=Path, help="folder with the Fashion-MNIST IDX files (default: $FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch (default: 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    import keras

    from zoo.training import default_run_dir, list_recipes, train

    args = build_parser(list_recipes()).parse_args(argv)
    if args.backend and args.backend != keras.backend.backend():
        raise SystemExit(
            f"--backend {args.backend} needs a new process (Keras runs on {keras.backend.backend()} here): "
            "run this script from the command line, or set KERAS_BACKEND before Python starts."
        )
    train(
        args.arch,
        output_dir=args.output or default_run_dir(args.arch, args.seed),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        limit=args.limit,
        seed=args.seed,
        resume=args.resume,
        overwrite=args.overwrite,
        mixed_precision=args.mixed_precision,
        distribute=args.distribute,
        push=args.push,
        data_dir=args.data_dir,
        verbose=args.verbose,
    )
    return 0


if __name__ == "__main__":
    reexec_with_backend(sys.argv[1:])
    sys.exit(main())

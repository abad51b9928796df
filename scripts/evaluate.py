"""Evaluate a zoo model on Fashion-MNIST and print its metrics.

A thin command line over ``zoo.evaluation.evaluate_name``. The model is anything ``zoo.load``
accepts: a registered name with released weights (``cnn``, ``cnn.fmnist``), a run or
release folder (``runs/cnn-0``) or a Hub handle (``hf://namespace/name@revision``). On a run
folder, ``--limit`` equal to the run's ``--limit`` reproduces its metrics.json.

Like scripts/train.py, this sets ``TF_ENABLE_ONEDNN_OPTS=1`` before TensorFlow is imported
unless it is set already, so both scripts compute with the same kernels.

Examples:
    python scripts/evaluate.py runs/cnn-0
    python scripts/evaluate.py hf://keras-zoo/cnn.fmnist@main --limit 2000 --json
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``python scripts/evaluate.py MODEL`` (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="scripts/evaluate.py", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("model", help="registered name, run/release folder, or hf://namespace/name@revision")
    parser.add_argument("--split", default="test", choices=("test", "train"), help="Fashion-MNIST split (default: test)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images of the split")
    parser.add_argument("--data-dir", type=Path, help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--batch-size", type=int, default=256, help="inference batch size (default: 256)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON (like metrics.json)")
    parser.add_argument("--verbose", action="store_true", help="show the traceback of an error")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Evaluate, print the report, exit 0 (2 on a user's mistake): ``main(["cnn", "--limit", "1000"])``."""
    from zoo.cli import import_keras, report_user_errors

    args = build_parser().parse_args(argv)
    import_keras(args.verbose)  # the native start-up logs would come before a one-line error
    return report_user_errors("scripts/evaluate.py", lambda: _evaluate(args), verbose=args.verbose)


def _evaluate(args: argparse.Namespace) -> int:
    from zoo.evaluation import evaluate_name

    metrics = evaluate_name(args.model, split=args.split, limit=args.limit, data_dir=args.data_dir, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        for key, value in metrics.items():
            print(f"{key}: {value * 100:.2f}%" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The training command line: ``scripts/train.py ARCH [flags]`` (and ``zoo train``).

Without ``--data`` it trains on Fashion-MNIST with the architecture's recipe
(:func:`zoo.training.train`); with ``--data DIR`` (one sub-folder per class) it fine-tunes on
the user's pictures (:func:`zoo.training.finetune.finetune`), from ``--init-from`` weights,
optionally with a ``--freeze-backbone`` linear probe first. Mistakes in the arguments, the
folder or the run folder end with one ``error:`` line (exit status 2) before anything is written.

Example:
    >>> build_parser(["cnn"]).parse_args(["cnn", "--data", "pics", "--init-from", "cnn.fmnist"]).init_from
    'cnn.fmnist'
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

import keras

from zoo.data.folder import DEFAULT_VAL_FRACTION
from zoo.hub import HubError, push_target
from zoo.preprocess import POLARITIES
from zoo.recipe import parse_recipe_settings
from zoo.training import backend_probe
from zoo.training.finetune import finalize_finetune, fit_finetune, prepare_finetune
from zoo.training.fit import DEFAULT_BACKUP_MINUTES, finalize_run, fit_run, prepare_run
from zoo.training.recipes import list_recipes
from zoo.training.run_dir import RunDir, default_run_dir
from zoo.training.transfer import AUTO

__all__ = ["BACKENDS", "build_parser", "main", "reexec_with_backend"]

BACKENDS = backend_probe.BACKENDS
#: ``--backend auto``: the fastest installed backend, by a short probe (zoo.training.backend_probe).
AUTO_BACKEND = "auto"
#: Recipe fields that ``--set`` leaves to their own flags (or that are not a run's to change).
SETTINGS_WITH_FLAGS = {
    "epochs": "use --epochs", "batch_size": "use --batch-size (it scales the learning rate)", "lr": "use --lr",
    "mixed_precision": "use --mixed-precision / --no-mixed-precision", "arch": "it is the ARCH argument",
    "task": "the architecture decides it", "model_overrides": "it changes the model, not the training",
    "notes": "it is the recipe's own description",
}
#: Flags that only mean something with ``--data`` (an image folder).
_FOLDER_FLAGS = ("freeze_backbone", "probe_epochs", "probe_lr", "val_fraction", "polarity")


def reexec_with_backend(argv: Sequence[str], command: Sequence[str]) -> None:
    """Restart ``command`` (e.g. ``[script]`` or ``["-m", "zoo.cli", "train"]``) with
    ``KERAS_BACKEND`` set when ``--backend`` asks for another backend than the environment's.

    Keras reads ``KERAS_BACKEND`` once, when it is imported, so the choice needs a fresh process.
    Returns when nothing needs to change (``--backend auto`` is decided later, by :func:`main`).

    Example:
        >>> reexec_with_backend(["cnn"], ["scripts/train.py"])   # no --backend: nothing happens
    """
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--backend", choices=(*BACKENDS, AUTO_BACKEND))
    backend = pre.parse_known_args(list(argv))[0].backend
    if backend and backend != AUTO_BACKEND and os.environ.get("KERAS_BACKEND") != backend:
        os.execve(sys.executable, [sys.executable, *command, *argv], {**os.environ, "KERAS_BACKEND": backend})


def build_parser(architectures: Sequence[str] | None = None, prog: str = "scripts/train.py") -> argparse.ArgumentParser:
    """The argument parser of the training command (``architectures``: the choices of ARCH).

    Example:
        >>> build_parser(["cnn"]).parse_args(["cnn", "--epochs", "2"]).epochs
        2
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,  # `--backe auto` would escape with_backend's rewrite and probe again after the re-exec
        description=(
            "Train a zoo model and write a run folder: config.json, metadata.json, model.safetensors "
            "(best epoch), last.safetensors, metrics.json, history.csv, plots and README.md. Without "
            "--data: Fashion-MNIST (validation carved from the train split, test split only for the final "
            "evaluation). With --data DIR: the pictures in DIR, one sub-folder per class (class names = "
            "folder names), usually from --init-from weights. The backend comes from KERAS_BACKEND."
        ),
        epilog="Unset flags take the recipe's value (zoo.training.get_recipe(ARCH); with --data "
        "zoo.training.finetune.finetune_recipe(ARCH)).",
    )
    parser.add_argument("arch", choices=list(architectures) if architectures is not None else None,
                        help="architecture to train (its recipe gives every default)")
    parser.add_argument("--backend", choices=(*BACKENDS, AUTO_BACKEND),
                        help="Keras backend to train on (default: $KERAS_BACKEND, else tensorflow); the weights "
                        "do not depend on it, the speed does (zoo.training.recipes says what was measured). "
                        "'auto' trains a few steps of ARCH's recipe model under each installed backend (up to "
                        "a minute or two each) and trains on the fastest; the recorded command names it")
    parser.add_argument("--epochs", type=int, help="number of epochs (default: the recipe's; with --data 10)")
    parser.add_argument("--batch-size", type=int, help="global batch size over all devices (default: the recipe's; "
                        "without --lr the learning rate scales with it)")
    parser.add_argument("--lr", type=float, help="peak learning rate after warm-up (default: the recipe's; with "
                        "--data and --init-from a tenth of it; with --freeze-backbone the rate of the unfrozen phase)")
    parser.add_argument("--limit", type=int,
                        help="use only the first N images of the Fashion-MNIST train and test split")
    parser.add_argument("--output", type=Path, help="run folder (default: runs/<arch>-<seed>; with --data "
                        "runs/<arch>-<folder name>-<seed>)")
    parser.add_argument("--set", dest="recipe_settings", action="append", default=[], metavar="FIELD=VALUE",
                        help="change one field of the recipe (repeatable), VALUE in JSON or a plain string: "
                        "--set weight_decay=1e-4, --set 'resolutions=[]' (no progressive resizing), "
                        "--set 'restarts=[[40,0.2]]'; see zoo.recipe.Recipe for the fields")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of initialisation, split, shuffling, augmentation (default: 0)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an unfinished run folder from its last backup (the end of an epoch, or a batch "
                        "inside one: see --backup-minutes); with another --epochs (and the run's resolutions and "
                        "restarts given by --set) it lengthens or shortens the run when the epochs begun train "
                        "the same")
    parser.add_argument("--backup-minutes", type=float, metavar="MINUTES",
                        help="also back up the training state in the middle of an epoch every MINUTES minutes, so that "
                        f"--resume continues at the batch where a killed run stopped (default: {DEFAULT_BACKUP_MINUTES:g}; "
                        "0: after every batch); it never changes what is trained")
    parser.add_argument("--overwrite", action="store_true", help="delete an existing run folder and train again")
    parser.add_argument("--push", metavar="REPO", help="upload the finished run folder to this Hub repo (zoo.push)")
    parser.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                        help="train with the mixed_bfloat16 dtype policy, or not (default: the recipe's 'auto': "
                        "mixed_bfloat16 where the device runs bfloat16 natively, see zoo.training.precision)")
    parser.add_argument("--distribute", action="store_true",
                        help="data-parallel over all local devices (JAX or TensorFlow)")
    parser.add_argument("--data-dir", type=Path, help="folder with the Fashion-MNIST IDX files (default: "
                        "$FASHION_MNIST_DIR if set, else /usr/share/datasets/fashion-mnist)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch (default: 1)")
    parser.add_argument("--init-from", metavar="NAME",
                        help="start from these weights (a registered name with weights such as resnet34.fmnist, "
                        "hf://namespace/name@rev, or a run folder) instead of a random initialisation: on "
                        "Fashion-MNIST every weight of the same model trains on under the recipe; with --data all "
                        "but the head, num_classes coming from the folder")
    own = parser.add_argument_group("training on your own pictures")
    own.add_argument("--data", type=Path, metavar="DIR",
                     help="image folder with one sub-folder of pictures (PNG, JPEG, BMP, WebP, TIFF) per class; the class names are the "
                     "sorted folder names")
    own.add_argument("--freeze-backbone", action="store_true",
                     help="first train the head alone on the frozen backbone (a linear probe), then every layer "
                     "at the lower --lr")
    own.add_argument("--probe-epochs", type=int, metavar="N",
                     help="epochs of the linear probe, counted in --epochs (default: half of them, at least 1; "
                     "equal to --epochs: a pure linear probe)")
    own.add_argument("--probe-lr", type=float, help="learning rate of the linear probe (default: 10 x --lr)")
    own.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                     help="share of the pictures held out for validation, stratified by class "
                     f"(default: {DEFAULT_VAL_FRACTION})")
    own.add_argument("--polarity", choices=(AUTO, *(p for p in POLARITIES if p), "none"), default=AUTO,
                     help="how pictures are presented: 'light_on_dark' inverts pictures with a light border "
                     "(Fashion-MNIST's look), 'none' keeps them (default 'auto': as the --init-from weights were "
                     "trained; 'none' from scratch)")
    return parser


def _reexec_on_fastest_backend(args: argparse.Namespace, argv: Sequence[str], reexec: Sequence[str]) -> None:
    """Probe every installed backend on the run's model, print the figures, restart on the fastest.

    Raises ``ValueError`` when no backend could train the probe.
    """
    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    # The run's own settings and length; a fine-tune (--data) trains every epoch at the input size.
    settings = list(args.recipe_settings)
    if args.data is not None and not any(item.partition("=")[0].strip() == "resolutions" for item in settings):
        settings.append("resolutions=[]")
    results = backend_probe.probe_backends(
        args.arch, batch_size=args.batch_size, mixed_precision=args.mixed_precision, log=log, recipe_settings=settings,
        epochs=args.epochs,
    )
    chosen = backend_probe.choose_backend(results)  # ValueError when no backend could train
    log(f"[zoo] training speed of {args.arch} by backend (a few steps on random inputs):\n"
        f"{backend_probe.format_results(results, chosen)}")
    os.execve(sys.executable, [sys.executable, *reexec, *backend_probe.with_backend(argv, chosen)],
              {**os.environ, "KERAS_BACKEND": chosen})


def _output_dir(args: argparse.Namespace) -> Path:
    """The run folder of the command: ``--output``, else ``runs/<arch>[-<pictures>]-<seed>``."""
    if args.output is not None:
        return args.output
    return default_run_dir(f"{args.arch}-{args.data.name}" if args.data is not None else args.arch, args.seed)


def _resumed_backend(args: argparse.Namespace) -> str | None:
    """The backend the run to resume began on (``None``: no run there yet, or none recorded)."""
    try:
        backend = RunDir(_output_dir(args)).read_marker().get("backend")
    except (OSError, ValueError):  # no readable run: the command's own checks say why
        return None
    return backend if backend in backend_probe.BACKENDS else None


def _folder_flags_without_data(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    defaults = {name: parser.get_default(name) for name in _FOLDER_FLAGS}
    return ["--" + name.replace("_", "-") for name in _FOLDER_FLAGS if getattr(args, name) != defaults[name]]


def main(
    argv: Sequence[str] | None = None, *, prog: str = "scripts/train.py", reexec: Sequence[str] | None = None
) -> int:
    """Parse ``argv`` and train; returns the exit status (0, or 2 for a mistake in the input).

    ``reexec``: the command that restarts this one under another backend when ``--backend``
    differs from the running one (``["-m", "zoo.cli", "train"]``); without it that is an error.

    Example:
        >>> main(["cnn", "--data", "pics", "--init-from", "cnn", "--freeze-backbone"])  # doctest: +SKIP
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(list_recipes(), prog=prog)
    args = parser.parse_args(argv)
    try:
        settings = parse_recipe_settings(args.recipe_settings, refused=SETTINGS_WITH_FLAGS)
    except ValueError as error:
        parser.exit(2, f"{prog}: error: --set: {error}\n")
    recorded = _resumed_backend(args) if args.backend == AUTO_BACKEND and args.resume else None
    if recorded:  # a run keeps the backend it began on (its record and card name one): nothing to probe
        print(f"[zoo] --backend auto with --resume: the run in {str(_output_dir(args))!r} trains on {recorded}",
              file=sys.stderr, flush=True)
        argv, args.backend = backend_probe.with_backend(argv, recorded), recorded
    if args.backend == AUTO_BACKEND:
        if not reexec:
            parser.exit(2, f"{prog}: error: --backend auto restarts the command under the backend it picks; "
                        "call it from the command line (scripts/train.py or zoo train).\n")
        try:
            _reexec_on_fastest_backend(args, argv, reexec)
        except ValueError as error:
            parser.exit(2, f"{prog}: error: --backend auto: {error}\n")
    if args.backend and args.backend != keras.backend.backend():
        if reexec:
            reexec_with_backend(argv, reexec)
        parser.exit(2, f"{prog}: error: --backend {args.backend} needs a new process (Keras runs on "
                    f"{keras.backend.backend()} here): run the command again with KERAS_BACKEND={args.backend}.\n")
    common = dict(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, resume=args.resume,
        overwrite=args.overwrite, mixed_precision=args.mixed_precision, distribute=args.distribute,
        verbose=args.verbose, recipe_overrides=settings or None,
    )
    try:
        if args.push is not None:
            push_target(args.push)  # now, not after training
        if args.data is not None:
            if args.limit is not None or args.data_dir is not None:
                raise ValueError(
                    "--limit and --data-dir are for Fashion-MNIST runs; with --data every picture of the folder "
                    f"is used. Received: --data {args.data}"
                )
            if args.backup_minutes is not None:
                raise ValueError(
                    "--backup-minutes is for Fashion-MNIST runs; a run on your own pictures is backed up at the end "
                    f"of every epoch. Received: --data {args.data} --backup-minutes {args.backup_minutes:g}"
                )
            output = _output_dir(args)
            plan = prepare_finetune(
                args.arch, data=args.data, output_dir=output,
                init_from=args.init_from, freeze_backbone=args.freeze_backbone, probe_epochs=args.probe_epochs,
                probe_lr=args.probe_lr, val_fraction=args.val_fraction,
                polarity=None if args.polarity == "none" else args.polarity, **common,
            )
        else:
            stray = _folder_flags_without_data(args, parser)
            if stray:
                raise ValueError(
                    f"{', '.join(stray)} fine-tune(s) on your own pictures and need(s) --data DIR (one sub-folder "
                    f"per class). Received: {' '.join(argv)}"
                )
            plan = prepare_run(
                args.arch, output_dir=_output_dir(args), limit=args.limit,
                data_dir=args.data_dir, backup_minutes=DEFAULT_BACKUP_MINUTES if args.backup_minutes is None
                else args.backup_minutes, init_from=args.init_from, **common,
            )
    except (ValueError, FileNotFoundError, FileExistsError, HubError) as error:  # HubError: --init-from hf://...
        parser.exit(2, f"{prog}: error: {error}\n")
    try:
        if args.data is not None:
            finalize_finetune(plan, fit_finetune(plan), push=args.push)
        else:
            finalize_run(plan, fit_run(plan), push=args.push)
    finally:
        plan.run.release()  # also when training fails: the folder is free for --resume in this process
    return 0


if __name__ == "__main__":
    reexec_with_backend(sys.argv[1:], ["-m", "zoo.training.cli"])
    sys.exit(main())

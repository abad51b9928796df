"""The ``zoo`` command: a thin layer over the library, one function per sub-command.

    zoo list [PATTERN] [--pretrained]          the catalog, without importing Keras
    zoo info NAME [--json]
    zoo predict MODEL IMAGE|FOLDER... [--top-k K] [--out DIR]
    zoo eval MODEL [--limit N]                 measured vs recorded metrics; exit 1 beyond tolerance
    zoo train ARCH [flags]                     = python scripts/train.py (fine-tuning with --data)
    zoo export MODEL --format onnx|litert|saved_model -o PATH
    zoo push DIR REPO / zoo pull REPO[@REV]
    zoo registry [--check]                     regenerate or check registry.json

MODEL is anything ``zoo.load`` takes: a registered name (``cnn``, ``cnn.fmnist``), a zoo
folder, or ``hf://namespace/name@revision``. The frameworks' start-up logs are hidden unless
``--verbose`` is given; Keras' own progress bars are kept.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from zoo.listing import catalog_models, format_info, format_table, model_rows, tag_entry

__all__ = ["build_parser", "main", "report_user_errors"]

_PACKAGE_DIR = Path(__file__).resolve().parent


@contextlib.contextmanager
def quiet_native_logs(enabled: bool = True) -> Iterator[None]:
    """Hide what TensorFlow, XLA and CUDA stubs print to the process' stderr while Keras and its
    backend are imported (those C++ logs ignore ``TF_CPP_MIN_LOG_LEVEL`` before absl starts).

    What was hidden is printed after all if the import fails, with every Python warning issued
    meanwhile; otherwise only zoo's own warnings (e.g. a plugin that failed to load) are shown,
    once stderr is back.

    Example:
        >>> with quiet_native_logs():
        ...     import keras
    """
    if not enabled:
        yield
        return
    previous = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # for the import only: children keep the user's
    sys.stderr.flush()
    saved = os.dup(2)
    caught: list[warnings.WarningMessage] = []
    failed = False
    try:
        with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings(record=True) as caught:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            except BaseException:
                failed = True
                os.dup2(saved, 2)
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace"))
                raise
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                if previous is None:
                    os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
    finally:  # recorded under the filters then in force; the frameworks' own stay hidden unless it failed
        for warning in caught:
            if failed or Path(warning.filename).resolve().is_relative_to(_PACKAGE_DIR):
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


def import_keras(verbose: bool = False) -> None:
    """Import Keras and its backend without the native start-up logs (unless ``verbose``), so a
    command's one-line error is the only thing it prints: for ``zoo`` and ``scripts/``.

    Example:
        >>> import_keras()
    """
    with quiet_native_logs(not verbose):
        import keras  # noqa: F401  imports the backend

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _cmd_list(args: argparse.Namespace) -> int:
    with quiet_native_logs(not args.verbose):  # Keras is imported only when plugins are installed
        rows = model_rows(args.pattern, pretrained=args.pretrained)
    if args.json:
        _print_json([vars(row) for row in rows])
    elif rows:
        print(format_table(rows))
    else:
        print(f"No model matches {args.pattern!r}.", file=sys.stderr)
    return 0 if rows else 1


def _cmd_info(args: argparse.Namespace) -> int:
    arch, _, tag = args.name.partition(".")
    with quiet_native_logs(not args.verbose):
        models = catalog_models()
    entry = models.get(arch)
    if entry is None or (tag and tag not in (entry.get("weights") or {})):
        known = list(models) + [f"{a}.{t}" for a, e in models.items() for t in e.get("weights") or {}]
        close = difflib.get_close_matches(args.name.lower(), known, n=3, cutoff=0.4)  # names are lower-case
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"Unknown model {args.name!r}.{hint} Registered: {sorted(models)}. Received: name={args.name!r}")
    details = {"name": arch, "tag": tag or entry.get("default_tag"), **tag_entry(entry, tag or entry.get("default_tag"))}
    if args.json:
        _print_json(details)
    else:
        print(format_info(args.name, details))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import_keras(args.verbose)
    from zoo.api import load
    from zoo.prediction import draw_box, list_pictures, predict
    from zoo.tasks import task_of

    images = list_pictures(args.images)  # a folder stands for the pictures in it
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out is a folder for the drawn boxes; {args.out!r} is a file. Received: --out {args.out!r}")
    model = load(args.model)
    task = task_of(model).name if args.out else None  # a .keras localizer predicts its boxes; draws with a record
    if args.out and task != "localization":
        raise ValueError(
            f"--out is where a localizer's boxes are drawn; {args.model!r} is a {task} model "
            f"and draws none. Received: --out {args.out!r}"
        )
    targets = [Path(args.out) / f"{Path(image).stem}.box.png" for image in images] if args.out else []
    clashes = sorted({str(t) for t in targets if targets.count(t) > 1})
    if clashes:
        raise ValueError(
            f"Pictures with the same name would write the same file: {clashes}. Received: {[str(i) for i in images]}"
        )
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{existing} exist; pass --overwrite to replace them. Received: --out {args.out!r}")
    predictions = predict(model, images, top_k=args.top_k)
    written = []
    for prediction, image, out in zip(predictions, images, targets or [None] * len(images)):
        if prediction.box is not None and out is not None:
            written.append(str(draw_box(image, prediction, out, overwrite=args.overwrite)))
    if args.json:
        _print_json([p.to_dict() for p in predictions])
        return 0
    for prediction in predictions:
        print(prediction.source)
        for label, probability in prediction.top_k:
            print(f"  {probability:7.2%}  {label}")
        if prediction.box is not None:
            print("  box (x0, y0, x1, y1): " + ", ".join(f"{v:.1f}" for v in prediction.box))
        if prediction.notes:
            print("  preprocessing: " + "; ".join(prediction.notes))
    for path in written:
        print(f"wrote {path}")
    if any(p.box is not None for p in predictions) and args.out is None:
        print("(pass --out DIR to write the pictures with their boxes drawn)")
    return 0


#: ``zoo train`` and ``zoo eval`` compute with the kernels of ``scripts/train.py`` and ``scripts/evaluate.py``:
#: TensorFlow's oneDNN CPU kernels on, unless the user set the variable (see scripts/train.py).
_ONEDNN = ("TF_ENABLE_ONEDNN_OPTS", "1")


def _cmd_eval(args: argparse.Namespace) -> int:
    os.environ.setdefault(*_ONEDNN)
    import_keras(args.verbose)
    from zoo.evaluation import compare_with_record

    report = compare_with_record(
        args.model, limit=args.limit, data_dir=args.data_dir, tolerance=args.tolerance, batch_size=args.batch_size,
        verbose=0 if args.json else "auto",
    )
    if args.json:
        _print_json(report.to_dict())
    else:
        print(report.format())
    return 0 if report.ok else 1


def _cmd_train(args: argparse.Namespace) -> int:
    os.environ.setdefault(*_ONEDNN)
    if "-h" not in args.train_args and "--help" not in args.train_args:
        import_keras(False)  # quiet start-up; a --backend other than this one restarts the command
    from zoo.training.cli import main as train_main

    return train_main(args.train_args, prog="zoo train", reexec=["-m", "zoo.cli", "train"])


def _cmd_export(args: argparse.Namespace) -> int:
    import_keras(args.verbose)
    from zoo.export import export_model

    options = {} if args.tolerance is None else {"tolerance": args.tolerance}
    result = export_model(args.model, args.format, args.output, overwrite=args.overwrite, **options)
    print(result.describe())
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    import_keras(args.verbose)
    from zoo.hub import HF_PREFIX, push, push_target

    repo = push_target(args.repo)
    sha = push(args.folder, repo, revision=args.revision, private=args.private,
               commit_message=args.message, replace_card=args.replace_card)
    print(f"pushed {args.folder} to {repo}@{sha}")
    print(f'load it with: zoo.load("{HF_PREFIX}{repo}@{sha}")')
    return 0


def _cmd_pull(args: argparse.Namespace) -> int:
    import_keras(args.verbose)
    from zoo.hub import parse_handle, pull

    repo_id, revision = parse_handle(args.repo)
    print(pull(repo_id, revision=revision))
    return 0


def _cmd_registry(args: argparse.Namespace) -> int:
    if not args.check and os.path.exists(args.path) and not args.overwrite:
        raise FileExistsError(f"{args.path!r} exists; pass --overwrite to regenerate it. Received: --path {args.path!r}")
    import_keras(args.verbose)
    from zoo.catalog import CatalogStaleError, check_catalog, write_catalog

    if not args.check:
        print(f"wrote {write_catalog(args.path)}")
        return 0
    try:
        check_catalog(args.path)
    except CatalogStaleError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``zoo`` argument parser (every sub-command, with its help).

    Example:
        >>> build_parser().parse_args(["predict", "cnn", "shirt.jpg", "--top-k", "3"]).top_k
        3
    """
    parser = argparse.ArgumentParser(prog="zoo", description="keras-zoo: models, weights and the Hub from one command.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", help="show the frameworks' start-up logs and tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = lambda name, **kw: commands.add_parser(name, parents=[common], **kw)  # noqa: E731
    model_help = "a registered name (cnn, cnn.fmnist), a zoo folder, or hf://namespace/name@revision"

    listing = add("list", help="list models (from registry.json; no Keras import)")
    listing.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'resnet*'")
    listing.add_argument("--pretrained", action="store_true", help="only arch.tag names whose weights are released")
    listing.add_argument("--json", action="store_true", help="print JSON rows")
    listing.set_defaults(run=_cmd_list)

    details = add("info", help="describe a model and its weight tags")
    details.add_argument("name", help="arch or arch.tag")
    details.add_argument("--json", action="store_true", help="print everything as JSON")
    details.set_defaults(run=_cmd_info)

    predicting = add("predict", help="top-k labels (and the localizer's box) of your pictures")
    predicting.add_argument("model", help=model_help)
    predicting.add_argument("images", nargs="+", help="picture files (PNG, JPEG, BMP, WebP, TIFF; any size, gray or RGB), or folders of them")
    predicting.add_argument("--top-k", type=int, default=5, help="labels shown per picture (default: 5)")
    predicting.add_argument("--out", help="folder for the pictures with their predicted boxes drawn (localizer)")
    predicting.add_argument("--overwrite", action="store_true", help="replace existing files in --out")
    predicting.add_argument("--json", action="store_true", help="print JSON")
    predicting.set_defaults(run=_cmd_predict)

    evaluating = add("eval", help="measure a model on the test split; compare with its record")
    evaluating.add_argument("model", help=model_help)
    evaluating.add_argument("--limit", type=int, help="only the first N test images (default: all 10,000)")
    evaluating.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files")
    evaluating.add_argument("--tolerance", type=float, default=0.005,
                            help="allowed absolute difference on the same images (default: 0.005); on a subset "
                                 "of the recorded split, at least 3 binomial standard errors")
    evaluating.add_argument("--batch-size", type=int, default=256)
    evaluating.add_argument("--json", action="store_true", help="print JSON")
    evaluating.set_defaults(run=_cmd_eval)

    training = commands.add_parser("train", help="train or fine-tune (python scripts/train.py --help for flags)",
                                   add_help=False)
    training.add_argument("train_args", nargs=argparse.REMAINDER, help="arguments of scripts/train.py")
    training.set_defaults(run=_cmd_train)

    exporting = add("export", help="export to ONNX, LiteRT or a SavedModel, checked against Keras")
    exporting.add_argument("model", help=model_help)
    exporting.add_argument("--format", required=True, help="onnx, litert or saved_model")
    exporting.add_argument("-o", "--output", required=True, help="file (onnx, litert) or folder (saved_model)")
    exporting.add_argument("--overwrite", action="store_true", help="replace an existing export")
    exporting.add_argument("--tolerance", type=float, default=None,
                           help="largest accepted difference from Keras' outputs (default: 1e-3)")
    exporting.set_defaults(run=_cmd_export)

    pushing = add("push", help="upload a zoo folder to the Hub (one commit)")
    pushing.add_argument("folder", help="a run or release folder")
    pushing.add_argument("repo", help="namespace/name (or hf://namespace/name)")
    pushing.add_argument("--revision", default="main")
    pushing.add_argument("--private", action="store_true")
    pushing.add_argument("--message", help="commit message")
    pushing.add_argument("--replace-card", action="store_true", help="replace the README.md already on the Hub")
    pushing.set_defaults(run=_cmd_push)

    pulling = add("pull", help="download a zoo repo into the HF cache, hashes checked")
    pulling.add_argument("repo", help="namespace/name[@revision]")
    pulling.set_defaults(run=_cmd_pull)

    registry = add("registry", help="regenerate registry.json (or --check it)")
    registry.add_argument("--path", default="registry.json")
    registry.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    registry.add_argument("--overwrite", action="store_true", help="replace an existing file")
    registry.set_defaults(run=_cmd_registry)
    return parser


#: Errors a user can fix: printed as one line, no traceback (zoo's own RuntimeErrors are added
#: in main: Hub, integrity and export errors).
_USER_ERRORS = (ValueError, OSError, ImportError)


def _is_user_error(error: BaseException) -> bool:
    if isinstance(error, _USER_ERRORS):
        return True
    return isinstance(error, RuntimeError) and type(error).__module__.split(".")[0] == "zoo"


def report_user_errors(prog: str, run: Callable[[], int], *, verbose: bool = False) -> int:
    """``run()``'s exit status; a mistake in the input prints one line and returns 2, no traceback.

    A mistake: ``ValueError``, ``OSError`` (a missing file), ``ImportError`` (a missing extra) or
    one of zoo's own errors (Hub, integrity, export). Other errors, and every error with
    ``verbose``, keep their traceback. The ``zoo`` command and ``scripts/*.py`` end this way.

    Example:
        >>> report_user_errors("zoo eval", lambda: int("x"))            # doctest: +SKIP
        zoo eval: error: invalid literal for int() with base 10: 'x' (--verbose shows the traceback)
        2
    """
    try:
        return run()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `zoo info cnn --json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        if verbose or not _is_user_error(error):
            raise
        print(f"{prog}: error: {error} (--verbose shows the traceback)", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``zoo`` command; returns the exit status.

    Example:
        >>> main(["list", "cnn*"])                      # doctest: +NORMALIZE_WHITESPACE
        name  params  input    task            metric      weights
        cnn   1.04M   28x28x1  classification  acc 93.97%  fmnist
        0
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:  # every argument after `train` is the training command's, --help included
        args = argparse.Namespace(command="train", run=_cmd_train, train_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    return report_user_errors(f"zoo {args.command}", lambda: args.run(args), verbose=getattr(args, "verbose", False))

if __name__ == "__main__":
    sys.exit(main())

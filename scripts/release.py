"""Stage a finished run as a release: weights/<arch>.<tag>/ plus its registry record.

Usage: python scripts/release.py runs/cnn-0 cnn.fmnist [--overwrite] [--notes TEXT]
       python scripts/release.py runs/resnet34-0 resnet34.fmnist --storage-dtype float16 --max-shard-mb 15
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's tools/ (not installed)

from zoo.cli import import_keras, report_user_errors  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Stage a finished run as a release: ``main(["runs/cnn-0", "cnn.fmnist", "--overwrite"])``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("run_dir", type=Path, help="a run folder made by scripts/train.py")
    parser.add_argument("name", help="the registered arch.tag the weights are released as")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing release folder")
    parser.add_argument("--notes", default="", help="a note stored in the release record and shown at the end of its model card")
    parser.add_argument("--storage-dtype", choices=("float32", "float16", "bfloat16"),
                        help="write the weights in this dtype instead of copying them; the staged files are "
                        "evaluated on the run's test images (the whole split unless it used --limit) and must stay within "
                        "0.05 points of the run")
    parser.add_argument("--max-shard-mb", type=float,
                        help="split the weights into shards of at most this many MiB of tensors (whole tensors "
                        "per shard) plus model.safetensors.index.json")
    parser.add_argument("--below-floor", action="store_true",
                        help="stage weights that score below the tag's release floor, or of a --limit run: a trial "
                        "staging only (scripts/gpu_release.py --dry-run), never one to commit")
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files (default: $FASHION_MNIST_DIR if set, "
                        "else /usr/share/datasets/fashion-mnist)")
    parser.add_argument("--verbose", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    if args.max_shard_mb is not None and args.max_shard_mb <= 0:
        parser.error(f"--max-shard-mb must be > 0. Received: {args.max_shard_mb}")
    import_keras(args.verbose)  # the native start-up logs would come before a one-line error
    return report_user_errors("scripts/release.py", lambda: _stage(args), verbose=args.verbose)


def _stage(args: argparse.Namespace) -> int:
    from tools.release import ROOT, stage_release
    from zoo.catalog import write_catalog

    release = stage_release(
        args.run_dir, args.name, overwrite=args.overwrite, notes=args.notes, data_dir=args.data_dir,
        storage_dtype=args.storage_dtype, allow_below_floor=args.below_floor,
        max_shard_size=None if args.max_shard_mb is None else int(args.max_shard_mb * 2**20),
    )
    write_catalog(ROOT / "registry.json")
    print(f"staged {args.name} in {release.local_dir} ({len(release.files)} files); registry.json regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())

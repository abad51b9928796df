"""Stage a finished run as a release: weights/<arch>.<tag>/ plus its registry record.

Usage: python scripts/release.py runs/cnn-0 cnn.fmnist [--overwrite] [--notes TEXT]
"""

import argparse
import sys
from pathlib import Path

from zoo.catalog import write_catalog
from zoo.release import ROOT, stage_release


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder made by scripts/train.py")
    parser.add_argument("name", help="the registered arch.tag the weights are released as")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing release folder")
    parser.add_argument("--notes", default="", help="a note stored in the release record")
    args = parser.parse_args(argv)
    release = stage_release(args.run_dir, args.name, overwrite=args.overwrite, notes=args.notes)
    write_catalog(ROOT / "registry.json")
    print(f"staged {args.name} in {release.local_dir} ({len(release.files)} files); registry.json regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())

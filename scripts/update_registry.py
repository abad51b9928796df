"""Regenerate ``registry.json`` from code; ``--check`` fails when the file is stale.

Usage: python scripts/update_registry.py [--check] [--path registry.json]
"""

import argparse
import sys
from pathlib import Path

from zoo.catalog import CatalogStaleError, check_catalog, write_catalog

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if registry.json is stale")
    parser.add_argument("--path", type=Path, default=ROOT / "registry.json")
    args = parser.parse_args(argv)
    if args.check:
        try:
            check_catalog(args.path)
        except CatalogStaleError as error:
            print(error, file=sys.stderr)
            return 1
        print(f"{args.path} is up to date")
        return 0
    print(f"wrote {write_catalog(args.path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

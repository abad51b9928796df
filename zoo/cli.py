"""A thin command line over the library: ``zoo list``, ``zoo info``, ``zoo registry``.

Training, evaluation and publishing live in ``scripts/`` (train.py, evaluate.py, publish.py).
"""

from __future__ import annotations

import argparse
import json
import sys

from zoo.api import info
from zoo.catalog import CatalogStaleError, check_catalog, write_catalog
from zoo.registry import list_models


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``zoo`` command.

    Example:
        $ zoo list "resnet*"
    """
    parser = argparse.ArgumentParser(prog="zoo", description="The keras-zoo model registry.")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="list registered models")
    listing.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'resnet*'")
    listing.add_argument("--pretrained", action="store_true", help="only arch.tag with released weights")
    details = commands.add_parser("info", help="print a model's spec as JSON")
    details.add_argument("name")
    registry = commands.add_parser("registry", help="regenerate registry.json (or --check it)")
    registry.add_argument("--path", default="registry.json")
    registry.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(list_models(args.pattern, pretrained=args.pretrained)))
    elif args.command == "info":
        print(json.dumps(info(args.name), indent=2))
    elif args.check:
        try:
            check_catalog(args.path)
        except CatalogStaleError as error:
            print(error, file=sys.stderr)
            return 1
    else:
        write_catalog(args.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

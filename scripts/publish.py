"""Push a run or release folder to the Hub; with --register, pin it in the registry.

Usage:
    python scripts/publish.py weights/cnn.fmnist keras-zoo/cnn.fmnist --register cnn.fmnist
    python scripts/publish.py runs/cnn-0 me/my-cnn --private
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's tools/ (not installed)

from zoo.cli import import_keras, report_user_errors  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Push a run or release folder to the Hub: ``main(["weights/cnn.fmnist", "keras-zoo/cnn.fmnist"])``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("folder", type=Path, help="run folder or weights/<arch>.<tag> release folder")
    parser.add_argument("repo_id", help="namespace/name on the Hub (or hf://namespace/name)")
    parser.add_argument("--revision", default="main", help="branch to commit to (default: main)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--message", help="commit message")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead")
    parser.add_argument("--replace-card", action="store_true", help="replace an existing README.md")
    parser.add_argument("--register", metavar="ARCH.TAG", help="pin the pushed commit for this released tag")
    parser.add_argument("--verbose", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    import_keras(args.verbose)  # the native start-up logs would come before a one-line error
    return report_user_errors("scripts/publish.py", lambda: _publish(args), verbose=args.verbose)


def _publish(args: argparse.Namespace) -> int:
    from tools.release import publish
    from zoo.hub import push_target

    sha = publish(
        args.folder, args.repo_id, register=args.register, revision=args.revision, private=args.private,
        commit_message=args.message, create_pr=args.create_pr, replace_card=args.replace_card,
    )
    repo = push_target(args.repo_id)
    print(f"pushed {args.folder} to {repo}@{sha}" + (f"; pinned for {args.register}" if args.register else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

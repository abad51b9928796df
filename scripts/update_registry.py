"""Regenerate ``registry.json`` from code; ``--check`` fails when the file is stale.

Usage: python scripts/update_registry.py [--check] [--path FILE [--overwrite]]
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's zoo, whichever zoo is installed: the file describes this code

from zoo.cli import main  # noqa: E402

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(arg == "--path" or arg.startswith("--path=") for arg in argv):
        argv += ["--path", str(ROOT / "registry.json")]
        if "--check" not in argv:
            argv.append("--overwrite")  # this script exists to regenerate the checkout's file
    # Another --path is the user's file: replaced only with their own --overwrite, like `zoo registry`.
    sys.exit(main(["registry", *argv]))
